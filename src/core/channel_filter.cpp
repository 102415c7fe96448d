#include "core/channel_filter.hpp"

#include <limits>

namespace bc::core {

namespace {
constexpr std::uint16_t saturated = std::numeric_limits<std::uint16_t>::max();
}

void channel_filter::add(std::uint64_t h) {
  const std::size_t i = index(h);
  auto& count = counts_[i];
  if (count == saturated) return;
  if (count++ == 0) words_[i / 64].fetch_or(std::uint64_t{1} << (i % 64), std::memory_order_release);
}

void channel_filter::remove(std::uint64_t h) {
  const std::size_t i = index(h);
  auto& count = counts_[i];
  if (count == saturated || count == 0) return;
  if (--count == 0) words_[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_release);
}

}  // namespace bc::core
