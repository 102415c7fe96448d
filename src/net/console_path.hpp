#pragma once
// The console's URL-to-file rules, kept apart from the session so that they can be tested on their own.
//
// A request for {BASE}/console/<rest> names a console file only through console_file_name(): the embedded
// table is looked up by that exact name, and with an override directory (--console-dir) read_console_file()
// serves it only if it is a regular file that resolves inside the directory. Pure functions over strings and
// the filesystem: safe from any thread.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace bc::net {

// The file name that `rest` (the path after {BASE}/console, starting with '/') asks for, or nothing when it
// is not one. "/" is "index.html". The path is percent-decoded once and then checked: every segment must be
// non-empty and must not start with '.' (no "..", ".", dotfiles, absolute paths or "//"), and the result must
// hold no '\\', '%' (a second encoding), NUL or control character.
std::optional<std::string> console_file_name(std::string_view rest);

// The contents of `name` (from console_file_name) under `dir`, or nothing unless both resolve (symlinks
// followed, std::filesystem::canonical) to a regular file strictly inside the directory's own canonical path.
// Blocking file I/O: meant for the console's development override only.
std::optional<std::string> read_console_file(const std::filesystem::path& dir, std::string_view name);

// Whether a Host header value (host[:port]) names this machine by address or as "localhost", rather than by a
// DNS name. Dev tokens are handed out only to such requests: a hostile page that rebinds its own DNS name to
// 127.0.0.1 sends its own name as Host, so it cannot read one even though the browser thinks it same-origin.
bool is_direct_host(std::string_view host);

// A strong entity tag for `body`, quoted ("\"c-0123456789abcdef\"").
std::string console_etag(std::string_view body);

// Whether an If-None-Match header value names `etag` (weak comparison, RFC 9110 13.1.2; "*" matches).
bool etag_matches(std::string_view if_none_match, std::string_view etag);

}  // namespace bc::net
