#include "core/message_id.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace bc::core {
namespace {

constexpr std::int64_t k_ms = 1'767'225'600'123;  // 2026-01-01T00:00:00.123Z

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// Checks the RFC 9562 text form of a version 7 UUID; returns an explanation of the first problem.
std::string uuid_v7_problem(const std::string& id) {
  if (id.size() != 36) return "length " + std::to_string(id.size());
  for (std::size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !is_lower_hex(id[i])) return "bad character at " + std::to_string(i);
  }
  if (id[14] != '7') return "version nibble is not 7";
  if (id[19] != '8' && id[19] != '9' && id[19] != 'a' && id[19] != 'b') return "variant is not 10xx";
  return {};
}

// The 48-bit unix millisecond timestamp in the first 12 hex digits.
std::int64_t embedded_ms(const std::string& id) {
  return static_cast<std::int64_t>(std::stoull(id.substr(0, 8) + id.substr(9, 4), nullptr, 16));
}

// The 12-bit rand_a / counter field.
unsigned counter_of(const std::string& id) {
  return static_cast<unsigned>(std::stoul(id.substr(15, 3), nullptr, 16));
}

TEST(message_id, has_the_uuid_v7_text_form) {
  message_id_generator g;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = g.next(k_ms + i / 10);
    ASSERT_EQ(uuid_v7_problem(id), "") << id;
  }
}

TEST(message_id, embeds_the_unix_milliseconds) {
  message_id_generator g;
  EXPECT_EQ(embedded_ms(g.next(k_ms)), k_ms);
  EXPECT_EQ(embedded_ms(g.next(k_ms + 1)), k_ms + 1);
  EXPECT_EQ(embedded_ms(g.next(k_ms + 86'400'000)), k_ms + 86'400'000);
  message_id_generator zero;
  const std::string first = zero.next(0);
  EXPECT_EQ(first.substr(0, 13), "00000000-0000");
  EXPECT_EQ(embedded_ms(first), 0);
  message_id_generator top;
  EXPECT_EQ(embedded_ms(top.next(0xFFFF'FFFF'FFFF)), 0xFFFF'FFFF'FFFF);  // the largest 48-bit value
}

TEST(message_id, known_timestamp_gives_known_prefix) {
  message_id_generator g;
  // 1767225600123 = 0x019B76DAA87B
  EXPECT_EQ(g.next(k_ms).substr(0, 14), "019b76da-a87b-");
}

TEST(message_id, strictly_increasing_across_milliseconds) {
  message_id_generator g;
  std::string last = g.next(k_ms);
  for (int i = 1; i < 1000; ++i) {
    const std::string id = g.next(k_ms + i);
    ASSERT_GT(id, last);  // fixed-width lowercase hex: text order is numeric order
    last = id;
  }
}

TEST(message_id, strictly_increasing_for_many_ids_in_one_millisecond) {
  // 20,000 ids in the same millisecond overflow the 12-bit counter several times; ids must keep increasing
  // (borrowing the following milliseconds) and stay well-formed.
  message_id_generator g;
  std::string last = g.next(k_ms);
  for (int i = 1; i < 20'000; ++i) {
    const std::string id = g.next(k_ms);
    ASSERT_GT(id, last) << "at " << i;
    ASSERT_EQ(uuid_v7_problem(id), "") << id;
    last = id;
  }
  // At most 4096 ids fit one millisecond, so 20,000 borrowed at least 4 and (starting at a counter <= 0x1ff)
  // at most 5 milliseconds.
  EXPECT_GE(embedded_ms(last), k_ms + 4);
  EXPECT_LE(embedded_ms(last), k_ms + 5);
}

TEST(message_id, same_millisecond_counts_up_by_one) {
  message_id_generator g;
  const std::string a = g.next(k_ms);
  const std::string b = g.next(k_ms);
  EXPECT_LE(counter_of(a), 0x1ffu);  // seeded low, leaving room to count
  EXPECT_EQ(counter_of(b), counter_of(a) + 1);
  EXPECT_EQ(embedded_ms(b), k_ms);
}

TEST(message_id, strictly_increasing_when_the_clock_steps_back) {
  message_id_generator g;
  const std::string a = g.next(k_ms);
  const std::string b = g.next(k_ms - 5000);  // NTP stepped the clock back five seconds
  const std::string c = g.next(k_ms - 4000);
  const std::string d = g.next(k_ms);
  const std::string e = g.next(k_ms + 1);
  EXPECT_GT(b, a);
  EXPECT_GT(c, b);
  EXPECT_GT(d, c);
  EXPECT_GT(e, d);
  // While the clock is behind, ids keep the last timestamp instead of going back in time.
  EXPECT_EQ(embedded_ms(b), k_ms);
  EXPECT_EQ(embedded_ms(c), k_ms);
  EXPECT_EQ(embedded_ms(e), k_ms + 1);
  for (const auto& id : {a, b, c, d, e}) EXPECT_EQ(uuid_v7_problem(id), "") << id;
}

TEST(message_id, long_clock_regression_with_many_ids_stays_increasing) {
  message_id_generator g;
  std::string last = g.next(k_ms);
  for (int i = 0; i < 10'000; ++i) {
    const std::string id = g.next(k_ms - 1 - i % 50);
    ASSERT_GT(id, last) << "at " << i;
    last = id;
  }
}

TEST(message_id, two_generators_do_not_collide) {
  // Both generators see exactly the same clock, the worst case for collisions: only the random bits differ.
  message_id_generator a, b;
  std::unordered_set<std::string> seen;
  seen.reserve(200'000);
  for (int i = 0; i < 100'000; ++i) {
    const std::int64_t ms = k_ms + i / 100;
    ASSERT_TRUE(seen.insert(a.next(ms)).second) << "collision at " << i;
    ASSERT_TRUE(seen.insert(b.next(ms)).second) << "collision at " << i;
  }
  EXPECT_EQ(seen.size(), 200'000u);
}

TEST(message_id, independently_seeded_generators_differ) {
  message_id_generator a, b;
  EXPECT_NE(a.next(k_ms), b.next(k_ms));
}

TEST(message_id, random_tail_varies) {
  // The 62 random bits must actually change between ids (not a constant or a counter only).
  message_id_generator g;
  std::unordered_set<std::string> tails;
  for (int i = 0; i < 1000; ++i) tails.insert(g.next(k_ms + i).substr(19));
  EXPECT_EQ(tails.size(), 1000u);
}

}  // namespace
}  // namespace bc::core
