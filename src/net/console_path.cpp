#include "net/console_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>

#include "util/comma_list.hpp"
#include "util/hex.hpp"

namespace bc::net {

namespace {

constexpr std::size_t max_console_file = 32 * 1024 * 1024;

bool safe_segment(std::string_view segment) {
  return !segment.empty() && segment.front() != '.';
}

}  // namespace

std::optional<std::string> console_file_name(std::string_view rest) {
  if (rest.empty() || rest.front() != '/') return std::nullopt;
  rest.remove_prefix(1);
  if (rest.empty()) return "index.html";
  auto name = util::percent_decode(rest);
  if (!name) return std::nullopt;
  // Checked after the one decoding: "%252e" became "%2e" and is refused here rather than decoded again.
  for (const char c : *name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\' || c == '%' || u < 0x20 || u == 0x7f) return std::nullopt;
  }
  std::string_view left = *name;
  while (true) {
    const auto slash = left.find('/');
    if (!safe_segment(left.substr(0, slash))) return std::nullopt;
    if (slash == std::string_view::npos) break;
    left.remove_prefix(slash + 1);
  }
  return name;
}

std::optional<std::string> read_console_file(const std::filesystem::path& dir, std::string_view name) {
  std::error_code ec;
  const auto root = std::filesystem::canonical(dir, ec);
  if (ec) return std::nullopt;
  const auto file = std::filesystem::weakly_canonical(root / std::filesystem::path(name), ec);
  if (ec) return std::nullopt;
  // Strictly inside: every element of the root, then at least one more.
  const auto [r, f] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  if (r != root.end() || f == file.end()) return std::nullopt;
  // The canonical path has no symlinks left; O_NOFOLLOW refuses one swapped in since. O_NONBLOCK: opening a
  // FIFO must not hang the worker (fstat then refuses it).
  const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> body;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::size_t>(st.st_size) <= max_console_file) {
    std::string data(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
      const auto n = ::read(fd, data.data() + got, data.size() - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    data.resize(got);
    body = std::move(data);
  }
  ::close(fd);
  return body;
}

std::string console_etag(std::string_view body) {
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (const char c : body) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  char out[32];
  std::snprintf(out, sizeof out, "\"c-%016llx\"", static_cast<unsigned long long>(h));
  return out;
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  while (auto item = util::next_list_item(if_none_match)) {
    if (*item == "*") return true;
    if (item->starts_with("W/")) item->remove_prefix(2);
    if (!item->empty() && *item == etag) return true;
  }
  return false;
}

bool is_direct_host(std::string_view host) {
  if (host.starts_with('[')) {  // an IPv6 literal, with or without a port
    const auto close = host.find(']');
    return close != std::string_view::npos && (close + 1 == host.size() || host[close + 1] == ':');
  }
  host = host.substr(0, host.find(':'));
  if (host.empty()) return false;
  if (host.size() == 9) {
    std::string lower(host);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "localhost") return true;
  }
  // Dotted IPv4: four decimal numbers. A DNS name always has a letter or hyphen somewhere (a top-level domain
  // is never all digits).
  unsigned dots = 0;
  for (const char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace bc::net
