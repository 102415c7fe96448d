#include "protocol/time_format.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace bc::protocol {
namespace {

TEST(format_rfc3339_ms, epoch) {
  EXPECT_EQ(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
}

TEST(format_rfc3339_ms, known_date_with_milliseconds) {
  EXPECT_EQ(format_rfc3339_ms(1'767'268'800'123), "2026-01-01T12:00:00.123Z");
  EXPECT_EQ(format_rfc3339_ms(951'827'696'789), "2000-02-29T12:34:56.789Z");
}

TEST(format_rfc3339_ms, leap_day) {
  EXPECT_EQ(format_rfc3339_ms(1'709'251'199'999), "2024-02-29T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(1'709'251'200'000), "2024-03-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(1'709'164'800'000), "2024-02-29T00:00:00.000Z");
}

TEST(format_rfc3339_ms, year_2100_is_not_a_leap_year) {
  EXPECT_EQ(format_rfc3339_ms(4'107'542'399'999), "2100-02-28T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(4'107'542'400'000), "2100-03-01T00:00:00.000Z");
}

TEST(format_rfc3339_ms, milliseconds_are_zero_padded) {
  EXPECT_EQ(format_rfc3339_ms(999), "1970-01-01T00:00:00.999Z");
  EXPECT_EQ(format_rfc3339_ms(1), "1970-01-01T00:00:00.001Z");
  EXPECT_EQ(format_rfc3339_ms(10), "1970-01-01T00:00:00.010Z");
  EXPECT_EQ(format_rfc3339_ms(100), "1970-01-01T00:00:00.100Z");
  EXPECT_EQ(format_rfc3339_ms(1000), "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(format_rfc3339_ms(1'767'268'800'000 + 999), "2026-01-01T12:00:00.999Z");
}

TEST(format_rfc3339_ms, end_of_day_and_year) {
  EXPECT_EQ(format_rfc3339_ms(86'399'999), "1970-01-01T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(946'684'799'999), "1999-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
}

TEST(format_rfc3339_ms, before_the_epoch_rounds_down) {
  EXPECT_EQ(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(format_rfc3339_ms, always_24_characters) {
  for (std::int64_t ms :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{1'767'268'800'123}, std::int64_t{4'107'542'400'000}}) {
    EXPECT_EQ(format_rfc3339_ms(ms).size(), 24u) << ms;
  }
}

TEST(now_unix_ms, follows_the_system_clock) {
  using namespace std::chrono;
  const auto before = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  const auto now = now_unix_ms();
  const auto after = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  EXPECT_GE(now, before);
  EXPECT_LE(now, after);
}

}  // namespace
}  // namespace bc::protocol
