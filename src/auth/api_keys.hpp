// The API keys that authorize REST publishes (`Authorization: Bearer <key>`).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace bc::auth {

// Keys are compared byte for byte (trimming belongs to whoever parses API_KEYS). Only SHA-256 digests are
// kept, so every comparison is over 32 bytes whatever the key lengths, and check() compares against every key
// without an early exit: its timing reveals neither how much of a key matched nor which key did. Immutable
// after construction, so check() may run on any number of threads at once.
class api_keys {
 public:
  // Empty strings are ignored. Throws std::runtime_error only if OpenSSL cannot hash (out of memory).
  explicit api_keys(std::vector<std::string> keys);

  bool check(std::string_view presented) const;
  std::size_t size() const { return digests_.size(); }

 private:
  using digest = std::array<unsigned char, 32>;
  std::vector<digest> digests_;
};

}  // namespace bc::auth
