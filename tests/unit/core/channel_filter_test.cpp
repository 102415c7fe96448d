#include "core/channel_filter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace bc::core {
namespace {

// Two hashes that land on the same bit, found by trying: the filter's index is private, so collisions are
// observed through may_contain().
std::pair<std::uint64_t, std::uint64_t> colliding_pair() {
  channel_filter probe;
  const auto first = channel_filter::hash("chan:0");
  probe.add(first);
  for (int i = 1;; ++i) {
    const auto h = channel_filter::hash("chan:" + std::to_string(i));
    if (probe.may_contain(h)) return {first, h};
  }
}

TEST(channel_filter, empty_contains_nothing) {
  channel_filter f;
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(f.may_contain(channel_filter::hash("c" + std::to_string(i))));
}

TEST(channel_filter, added_channel_is_contained_until_removed) {
  channel_filter f;
  const auto h = channel_filter::hash("news");
  f.add(h);
  EXPECT_TRUE(f.may_contain(h));
  f.remove(h);
  EXPECT_FALSE(f.may_contain(h));
}

TEST(channel_filter, no_false_negatives_and_few_false_positives) {
  channel_filter f;
  for (int i = 0; i < 1000; ++i) f.add(channel_filter::hash("room:" + std::to_string(i)));
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(f.may_contain(channel_filter::hash("room:" + std::to_string(i))));
  int false_positives = 0;
  for (int i = 0; i < 10000; ++i)
    false_positives += f.may_contain(channel_filter::hash("other:" + std::to_string(i)));
  // 1000 of 65536 bits set: about 1.5 % expected; 5 % would mean a poor spread of the hash.
  EXPECT_LT(false_positives, 500);
}

TEST(channel_filter, shared_bit_stays_set_while_either_channel_remains) {
  const auto [a, b] = colliding_pair();
  channel_filter f;
  f.add(a);
  f.add(b);
  f.remove(a);
  EXPECT_TRUE(f.may_contain(b));
  f.remove(b);
  EXPECT_FALSE(f.may_contain(b));
}

TEST(channel_filter, removing_more_than_added_does_not_underflow) {
  channel_filter f;
  const auto h = channel_filter::hash("x");
  f.remove(h);
  f.add(h);
  EXPECT_TRUE(f.may_contain(h));
}

TEST(channel_filter, saturated_counter_keeps_its_bit_forever) {
  channel_filter f;
  const auto h = channel_filter::hash("busy");
  for (int i = 0; i < 65535; ++i) f.add(h);
  f.add(h);  // beyond the counter's range: must not wrap to zero
  for (int i = 0; i < 70000; ++i) f.remove(h);
  EXPECT_TRUE(f.may_contain(h));
}

// Under TSan this checks the cross-thread contract: one writer, any number of readers, no data race; and a
// channel that stays added is never reported absent while others come and go.
TEST(channel_filter, readers_see_a_stable_channel_while_the_owner_churns_others) {
  channel_filter f;
  const auto stable = channel_filter::hash("stable");
  f.add(stable);
  std::atomic<bool> done{false};
  std::atomic<int> misses{0};
  std::thread reader([&] {
    while (!done.load()) {
      if (!f.may_contain(stable)) misses.fetch_add(1);
    }
  });
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 100; ++i) f.add(channel_filter::hash("churn:" + std::to_string(i)));
    for (int i = 0; i < 100; ++i) f.remove(channel_filter::hash("churn:" + std::to_string(i)));
  }
  done = true;
  reader.join();
  EXPECT_EQ(misses.load(), 0);
  EXPECT_TRUE(f.may_contain(stable));
}

}  // namespace
}  // namespace bc::core
