#include "core/message_id.hpp"

#include <array>

#include "util/hex.hpp"

namespace bc::core {

message_id_generator::message_id_generator() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  rng_.seed(seq);
}

std::string message_id_generator::next(std::int64_t unix_ms) {
  if (unix_ms > last_ms_) {
    last_ms_ = unix_ms;
    counter_ = static_cast<std::uint16_t>(rng_() & 0x1ff);  // leave headroom for increments
  } else {
    // Same millisecond (or the clock stepped back): keep ids increasing by counting, and borrow the next
    // millisecond when the 12-bit counter runs out.
    if (++counter_ > 0xfff) {
      ++last_ms_;
      counter_ = 0;
    }
  }
  const auto ms = static_cast<std::uint64_t>(last_ms_);
  const std::uint64_t rand = rng_();
  std::array<std::uint8_t, 16> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  b[6] = static_cast<std::uint8_t>(0x70 | (counter_ >> 8));
  b[7] = static_cast<std::uint8_t>(counter_ & 0xff);
  b[8] = static_cast<std::uint8_t>(0x80 | ((rand >> 56) & 0x3f));
  for (int i = 9; i < 16; ++i) b[i] = static_cast<std::uint8_t>(rand >> (8 * (15 - i)));

  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    util::append_hex(out, b[i]);
  }
  return out;
}

}  // namespace bc::core
