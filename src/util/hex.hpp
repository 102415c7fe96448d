#pragma once
// Hexadecimal digits both ways, and the percent-decoding (RFC 3986 2.1) built on them. Pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bc::util {

inline constexpr std::string_view hex_digits = "0123456789abcdef";

// Appends `byte` as two lower-case hex digits.
inline void append_hex(std::string& out, std::uint8_t byte) {
  out += hex_digits[byte >> 4];
  out += hex_digits[byte & 0xf];
}

// The value of one hex digit of either case, or -1.
constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes every %XX once ("%252e" gives "%2e"), '+' left as it is; nothing when a '%' is not followed by two
// hex digits.
inline std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace bc::util
