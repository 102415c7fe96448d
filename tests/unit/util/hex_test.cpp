#include "util/hex.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace bc::util {
namespace {

TEST(append_hex, writes_two_lower_case_digits_per_byte) {
  std::string out;
  for (const std::uint8_t b : {0x00, 0x09, 0xa5, 0xff}) append_hex(out, b);
  EXPECT_EQ(out, "0009a5ff");
}

TEST(hex_value, reads_both_cases_and_refuses_the_rest) {
  static_assert(hex_value('0') == 0 && hex_value('9') == 9);
  EXPECT_EQ(hex_value('a'), 10);
  EXPECT_EQ(hex_value('F'), 15);
  for (const char c : {'g', 'G', '/', ':', '@', '`', ' ', '\0'}) EXPECT_EQ(hex_value(c), -1) << int(c);
  for (std::size_t i = 0; i < hex_digits.size(); ++i) EXPECT_EQ(hex_value(hex_digits[i]), int(i));
}

TEST(percent_decode, decodes_each_escape_once) {
  EXPECT_EQ(percent_decode("chat%3Alobby"), "chat:lobby");
  EXPECT_EQ(percent_decode("chat%3alobby"), "chat:lobby");
  EXPECT_EQ(percent_decode("a%20b+c"), "a b+c");  // '+' is not a space here
  EXPECT_EQ(percent_decode("%252e"), "%2e");      // decoded once
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("plain"), "plain");
}

TEST(percent_decode, refuses_a_percent_without_two_hex_digits) {
  for (const char* bad : {"%", "%4", "a%", "a%4", "%zz", "%4g", "%%41"})
    EXPECT_EQ(percent_decode(bad), std::nullopt) << bad;
}

}  // namespace
}  // namespace bc::util
