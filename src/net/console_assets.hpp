#pragma once
// The web console's files, built into the binary at build time (cmake/embed_console.cmake writes the table
// from web/console and the compiled JS SDK). The server serves them from memory by exact name, so no request
// path ever becomes a filesystem path. Immutable after start-up: safe from any thread.

#include <cstddef>
#include <string_view>

namespace bc::net {

struct console_asset {
  std::string_view name;  // "index.html", "console.css", "console.js", "broadcaster.js"
  std::string_view body;
  std::string_view content_type;  // with charset for text
  std::string_view etag;          // quoted, from the file's SHA-256
};

// The embedded file called `name` exactly, or nullptr.
const console_asset* find_console_asset(std::string_view name);

// False when the build had no node/npm: broadcaster.js is then a stub that says the SDK is missing.
bool console_sdk_embedded();

namespace console_data {
// Defined in the generated console_assets_data.cpp.
extern const console_asset assets[];
extern const std::size_t asset_count;
extern const bool sdk_embedded;
}  // namespace console_data

}  // namespace bc::net
