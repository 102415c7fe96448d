#include "net/ws/utf8.hpp"

#include <cstring>

namespace bc::ws {
namespace {

constexpr std::uint64_t high_bits = 0x8080808080808080ULL;

// Skips whole 8-byte ASCII blocks; chat-style JSON is almost all ASCII.
std::size_t skip_ascii(const unsigned char* p, std::size_t i, std::size_t n) {
  while (n - i >= 16) {
    std::uint64_t a;
    std::uint64_t b;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    if (((a | b) & high_bits) != 0) break;
    i += 16;
  }
  while (n - i >= 8) {
    std::uint64_t a;
    std::memcpy(&a, p + i, 8);
    if ((a & high_bits) != 0) break;
    i += 8;
  }
  return i;
}

}  // namespace

bool utf8_validator::feed(std::string_view piece) {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  const std::size_t n = piece.size();
  std::size_t i = 0;
  while (i < n) {
    if (need_ == 0) {
      i = skip_ascii(p, i, n);
      if (i == n) break;
      const unsigned char b = p[i++];
      if (b < 0x80) continue;
      if (b < 0xC2) {  // stray continuation byte, or C0/C1 (always overlong)
        failed_ = true;
      } else if (b < 0xE0) {
        need_ = 1;
      } else if (b < 0xF0) {
        need_ = 2;
        if (b == 0xE0) lo_ = 0xA0;  // E0 80..9F would be overlong
        if (b == 0xED) hi_ = 0x9F;  // ED A0..BF would be a surrogate
      } else if (b < 0xF5) {
        need_ = 3;
        if (b == 0xF0) lo_ = 0x90;  // F0 80..8F would be overlong
        if (b == 0xF4) hi_ = 0x8F;  // F4 90.. would exceed U+10FFFF
      } else {
        failed_ = true;
      }
    } else {
      const unsigned char b = p[i++];
      if (b < lo_ || b > hi_) {
        failed_ = true;
      } else {
        --need_;
        lo_ = 0x80;
        hi_ = 0xBF;
      }
    }
    if (failed_) return false;
  }
  return true;
}

bool is_valid_utf8(std::string_view text) {
  utf8_validator v;
  return v.feed(text) && v.complete();
}

}  // namespace bc::ws
