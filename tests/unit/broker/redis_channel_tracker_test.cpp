#include "broker/redis_channel_tracker.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace bc::broker {
namespace {

// Records deliveries and gaps as one ordered log: "E:5" a message (epoch E, offset 5), "gap 7/3" a gap
// (last offset 7, 3 messages).
struct log_sink final : delivery_sink {
  std::vector<std::string> log;
  void deliver(core::message m) override { log.push_back(m.epoch + ":" + std::to_string(m.offset)); }
  void deliver_gap(std::string, std::uint64_t last, std::uint64_t count) override {
    log.push_back("gap " + std::to_string(last) + "/" + std::to_string(count));
  }
};

core::message msg(const std::string& epoch, std::uint64_t offset, const std::string& channel = "c") {
  core::message m;
  m.channel = channel;
  m.epoch = epoch;
  m.offset = offset;
  m.id = epoch + std::to_string(offset);
  return m;
}

// A fake Redis: fetches wait until the test answers them.
struct fixture : ::testing::Test {
  struct request {
    std::string channel, epoch;
    std::uint64_t first, count;
    bool any_epoch;
    redis_channel_tracker::range_done done;
  };
  log_sink sink;
  std::deque<request> pending;
  int idles = 0;
  redis_channel_tracker t{sink,
                          [this](const std::string& ch, const std::string& e, std::uint64_t first,
                                 std::uint64_t count, bool any, redis_channel_tracker::range_done done) {
                            pending.push_back({ch, e, first, count, any, std::move(done)});
                          },
                          "test"};
  fixture() {
    t.on_idle([this] { ++idles; });
    t.track("c");
  }
  // Answers the oldest fetch with the stream holding offsets [from, to] of `epoch`, the channel at `top`.
  void answer(const std::string& epoch, std::uint64_t top, std::uint64_t from, std::uint64_t to) {
    ASSERT_FALSE(pending.empty());
    auto req = std::move(pending.front());
    pending.pop_front();
    redis_channel_tracker::range r;
    r.ok = true;
    r.epoch = epoch;
    r.top = top;
    const std::uint64_t start = std::max(from, req.epoch == epoch ? req.first : 1);
    for (std::uint64_t o = start; o <= to && r.messages.size() < req.count; ++o)
      r.messages.push_back(msg(epoch, o));
    req.done(std::move(r));
  }
  void fail() {
    ASSERT_FALSE(pending.empty());
    auto req = std::move(pending.front());
    pending.pop_front();
    req.done({});
  }
  using log = std::vector<std::string>;
};

TEST_F(fixture, in_order_messages_pass_straight_through_and_duplicates_are_dropped) {
  t.on_message(msg("E", 7));  // the first message starts tracking, whatever its offset
  t.on_message(msg("E", 8));
  t.on_message(msg("E", 8));
  t.on_message(msg("E", 5));
  t.on_message(msg("E", 9));
  EXPECT_EQ(sink.log, (log{"E:7", "E:8", "E:9"}));
  EXPECT_EQ(t.duplicates(), 2u);
  EXPECT_TRUE(pending.empty());
}

TEST_F(fixture, a_jump_is_filled_from_the_stream_and_later_messages_wait_for_it) {
  t.on_message(msg("E", 1));
  t.on_message(msg("E", 5));
  t.on_message(msg("E", 6));
  EXPECT_FALSE(t.idle());
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending.front().first, 2u);
  EXPECT_EQ(pending.front().count, 3u);
  EXPECT_FALSE(pending.front().any_epoch);
  EXPECT_EQ(sink.log, (log{"E:1"}));
  answer("E", 6, 1, 6);
  EXPECT_EQ(sink.log, (log{"E:1", "E:2", "E:3", "E:4", "E:5", "E:6"}));
  EXPECT_TRUE(t.idle());
  EXPECT_EQ(idles, 1);
  EXPECT_EQ(t.repaired(), 3u);
  EXPECT_EQ(t.gaps(), 0u);
}

TEST_F(fixture, what_the_stream_no_longer_has_becomes_a_gap_in_its_place) {
  t.on_message(msg("E", 1));
  t.on_message(msg("E", 10));
  answer("E", 10, 6, 10);  // 2..5 trimmed
  EXPECT_EQ(sink.log, (log{"E:1", "gap 5/4", "E:6", "E:7", "E:8", "E:9", "E:10"}));
  EXPECT_EQ(t.gaps(), 1u);
  EXPECT_EQ(t.skipped(), 4u);
  EXPECT_EQ(t.repaired(), 4u) << "6..9; 10 came live";
}

TEST_F(fixture, history_off_or_redis_unreachable_makes_the_whole_range_a_gap) {
  t.on_message(msg("E", 1));
  t.on_message(msg("E", 4));
  answer("E", 4, 1, 0);  // empty stream
  t.on_message(msg("E", 7));
  fail();
  EXPECT_EQ(sink.log, (log{"E:1", "gap 3/2", "E:4", "gap 6/2", "E:7"}));
  EXPECT_EQ(t.skipped(), 4u);
}

TEST_F(fixture, a_new_epoch_counts_from_zero) {
  t.on_message(msg("E", 41));
  t.on_message(msg("F", 1));
  t.on_message(msg("G", 3));
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending.front().epoch, "G");
  EXPECT_EQ(pending.front().first, 1u);
  answer("G", 3, 1, 3);
  EXPECT_EQ(sink.log, (log{"E:41", "F:1", "G:1", "G:2", "G:3"}));
}

TEST_F(fixture, the_epoch_changing_during_a_repair_reports_the_rest_of_the_old_one) {
  t.on_message(msg("E", 1));
  t.on_message(msg("E", 4));
  t.on_message(msg("F", 1));
  answer("F", 1, 1, 1);
  EXPECT_EQ(sink.log, (log{"E:1", "gap 3/2", "E:4", "F:1"}));
}

TEST_F(fixture, long_ranges_take_several_reads) {
  t.on_message(msg("E", 1));
  const std::uint64_t n = redis_channel_tracker::max_fetch * 2 + 10;
  t.on_message(msg("E", n + 2));
  int reads = 0;
  while (!pending.empty()) {
    answer("E", n + 2, 1, n + 2);
    ++reads;
  }
  EXPECT_EQ(reads, 3);
  ASSERT_EQ(sink.log.size(), n + 2);
  for (std::uint64_t o = 1; o <= n + 2; ++o) ASSERT_EQ(sink.log[o - 1], "E:" + std::to_string(o));
}

TEST_F(fixture, a_check_after_a_reconnect_fetches_what_was_published_meanwhile) {
  t.on_message(msg("E", 1));
  t.track("idle");  // never received anything: no position to check
  t.check_all();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_TRUE(pending.front().any_epoch);
  t.on_message(msg("E", 5));  // arrives during the check: held
  answer("E", 4, 1, 4);
  EXPECT_EQ(sink.log, (log{"E:1", "E:2", "E:3", "E:4", "E:5"}));
  EXPECT_TRUE(pending.empty());
}

TEST_F(fixture, a_check_that_finds_a_new_epoch_delivers_it_from_its_start) {
  t.on_message(msg("E", 9));
  t.check_all();
  answer("F", 3, 2, 3);  // 1 already trimmed
  EXPECT_EQ(sink.log, (log{"E:9", "gap 1/1", "F:2", "F:3"}));
  t.on_message(msg("F", 3));  // came on the new connection too: a duplicate
  t.on_message(msg("F", 4));
  EXPECT_EQ(sink.log.back(), "F:4");
  EXPECT_EQ(t.duplicates(), 1u);
}

TEST_F(fixture, a_check_during_a_repair_runs_after_it) {
  t.on_message(msg("E", 1));
  t.on_message(msg("E", 3));
  t.check_all();
  ASSERT_EQ(pending.size(), 1u);
  answer("E", 5, 1, 5);
  ASSERT_EQ(pending.size(), 1u) << "the check, now";
  answer("E", 5, 1, 5);
  EXPECT_EQ(sink.log, (log{"E:1", "E:2", "E:3", "E:4", "E:5"}));
}

TEST_F(fixture, untracking_during_a_repair_drops_what_was_held) {
  t.on_message(msg("E", 1));
  t.on_message(msg("E", 3));
  t.untrack("c");
  EXPECT_TRUE(t.idle());
  t.track("c");
  answer("E", 3, 1, 3);  // the old tracking's answer: ignored
  t.on_message(msg("E", 8));
  EXPECT_EQ(sink.log, (log{"E:1", "E:8"}));
}

TEST_F(fixture, untracked_channels_and_messages_without_a_position_pass_through) {
  t.on_message(msg("E", 5, "other"));
  t.on_message(msg("", 0));
  t.on_message(msg("E", 1));
  EXPECT_EQ(sink.log, (log{"E:5", ":0", "E:1"}));
}

}  // namespace
}  // namespace bc::broker
