#pragma once
// A summary of the channels one hub holds, readable from any thread: the publishing side asks it whether a
// shard may have subscribers of a channel before waking that shard's thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

namespace bc::core {

// A counting Bloom filter with one hash function. Written only by the owning hub's thread, read by any.
//
// Why: a publish to a channel whose subscribers all sit on one shard would otherwise wake every worker
// thread, and a cross-thread wake-up costs more than delivering a small message (see BENCHMARKS.md). A false
// positive costs one useless wake-up, as before; a false negative cannot happen for a channel the hub held
// when the reader looked (the bit is set before the subscriber's acknowledgement is written).
class channel_filter {
 public:
  static constexpr unsigned bits_log2 = 16;
  static constexpr std::size_t bit_count = std::size_t{1} << bits_log2;

  channel_filter() : counts_(bit_count, 0) {}
  channel_filter(const channel_filter&) = delete;
  channel_filter& operator=(const channel_filter&) = delete;

  // One hash per publish, shared by every shard's filter.
  static std::uint64_t hash(std::string_view channel) { return std::hash<std::string_view>{}(channel); }

  // Owner thread only.
  void add(std::uint64_t h);
  void remove(std::uint64_t h);

  // Any thread.
  bool may_contain(std::uint64_t h) const {
    const std::size_t i = index(h);
    return (words_[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1U;
  }

 private:
  static std::size_t index(std::uint64_t h) {
    // Fold the high bits in: std::hash of a short string can vary little in its low bits.
    return static_cast<std::size_t>((h ^ (h >> 29) ^ (h >> 47)) & (bit_count - 1));
  }

  std::array<std::atomic<std::uint64_t>, bit_count / 64> words_{};
  // Channels per bit. A counter that reaches its maximum stays there and keeps its bit set for good: a false
  // positive forever is harmless, a counter that wrapped to zero would be a lost message.
  std::vector<std::uint16_t> counts_;
};

}  // namespace bc::core
