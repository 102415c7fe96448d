#pragma once
// The inside of a double-quoted string that is valid both as JSON (RFC 8259 7) and as a TOML basic string.

#include <string_view>

#include "util/hex.hpp"

namespace bc::util {

// Appends `s` to `out` (a std::string or an fmt/spdlog memory buffer) with '"' and '\\' escaped, \n \r \t
// as such, and every other control character and DEL as \u00XX (TOML forbids them raw). Other bytes, UTF-8
// included, are copied as they are.
template <typename Out>
void append_escaped(Out& out, std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out.push_back('\\');
      out.push_back(c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
    } else if (u < 0x20 || u == 0x7f) {
      const char esc[] = {'\\', 'u', '0', '0', hex_digits[u >> 4], hex_digits[u & 0xf]};
      out.append(esc, esc + sizeof esc);
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace bc::util
