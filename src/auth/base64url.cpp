#include "auth/base64url.hpp"

#include <array>
#include <cstdint>

namespace bc::auth {
namespace {

constexpr std::string_view k_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t k_invalid = 0xff;

// Indexed by every possible byte, so no input can read out of bounds.
constexpr std::array<std::uint8_t, 256> k_values = [] {
  std::array<std::uint8_t, 256> values{};
  values.fill(k_invalid);
  for (std::size_t i = 0; i < k_alphabet.size(); ++i)
    values[static_cast<unsigned char>(k_alphabet[i])] = static_cast<std::uint8_t>(i);
  return values;
}();

}  // namespace

std::string base64url_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  const auto byte = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(data[i]));
  };
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += k_alphabet[n >> 18];
    out += k_alphabet[n >> 12 & 63];
    out += k_alphabet[n >> 6 & 63];
    out += k_alphabet[n & 63];
  }
  const std::size_t rest = data.size() - i;
  if (rest == 0) return out;
  const std::uint32_t n = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
  out += k_alphabet[n >> 18];
  out += k_alphabet[n >> 12 & 63];
  if (rest == 2) out += k_alphabet[n >> 6 & 63];
  return out;
}

bool base64url_decode(std::string_view text, char* out) {
  if (text.size() % 4 == 1) return false;
  const auto value = [&](std::size_t i) -> std::uint32_t {
    return k_values[static_cast<unsigned char>(text[i])];
  };
  // k_invalid is the only table value with bit 7 set, so one test covers a whole group.
  constexpr std::uint32_t k_invalid_bit = 0x80;
  std::size_t i = 0;
  for (; i + 4 <= text.size(); i += 4) {
    const std::uint32_t a = value(i), b = value(i + 1), c = value(i + 2), d = value(i + 3);
    if ((a | b | c | d) & k_invalid_bit) return false;
    const std::uint32_t n = a << 18 | b << 12 | c << 6 | d;
    *out++ = static_cast<char>(n >> 16);
    *out++ = static_cast<char>(n >> 8 & 0xff);
    *out++ = static_cast<char>(n & 0xff);
  }
  const std::size_t rest = text.size() - i;  // 0, 2 or 3
  if (rest == 0) return true;
  const std::uint32_t a = value(i), b = value(i + 1), c = rest == 3 ? value(i + 2) : 0;
  if ((a | b | c) & k_invalid_bit) return false;
  const std::uint32_t n = a << 18 | b << 12 | c << 6;
  *out++ = static_cast<char>(n >> 16);
  if (rest == 3) *out = static_cast<char>(n >> 8 & 0xff);
  // The unused low bits must be zero: otherwise several spellings would decode to the same bytes.
  return (n & (rest == 3 ? 0xffu : 0xffffu)) == 0;
}

bool base64url_decode(std::string_view text, std::string& out) {
  out.resize(base64url_decoded_size(text.size()));
  return base64url_decode(text, out.data());
}

}  // namespace bc::auth
