#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace bc::core {

// Generates UUIDv7 ids (RFC 9562): 48 bits of unix milliseconds, then a counter seeded randomly each
// millisecond so ids from one generator are strictly increasing, then 62 random bits so ids from different
// generators (threads, nodes) do not collide. One generator per thread: it is not thread-safe.
class message_id_generator {
 public:
  message_id_generator();
  std::string next(std::int64_t unix_ms);

 private:
  std::mt19937_64 rng_;
  std::int64_t last_ms_ = -1;
  std::uint16_t counter_ = 0;  // 12 bits used
};

}  // namespace bc::core
