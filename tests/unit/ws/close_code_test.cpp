#include "net/ws/close_code.hpp"

#include <gtest/gtest.h>

namespace bc::ws {
namespace {

constexpr close_code all_codes[] = {
    close_code::normal,           close_code::going_away,       close_code::protocol_error,
    close_code::unsupported_data, close_code::no_status,        close_code::abnormal,
    close_code::invalid_payload,  close_code::policy_violation, close_code::message_too_big,
    close_code::internal_error,   close_code::token_expired,
};

TEST(close_code, values_match_rfc_6455_and_protocol) {
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::normal), 1000);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::going_away), 1001);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::protocol_error), 1002);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::unsupported_data), 1003);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::no_status), 1005);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::abnormal), 1006);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::invalid_payload), 1007);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::policy_violation), 1008);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::message_too_big), 1009);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::internal_error), 1011);
  EXPECT_EQ(static_cast<std::uint16_t>(close_code::token_expired), 4001);
}

TEST(close_code, valid_on_wire_is_constexpr) {
  static_assert(is_valid_close_code_on_wire(1000));
  SUCCEED();
}

TEST(close_code, valid_on_wire_boundaries) {
  for (std::uint16_t c :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4001, 4999}) {
    EXPECT_TRUE(is_valid_close_code_on_wire(c)) << c;
  }
  for (std::uint16_t c :
       {0, 1, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_FALSE(is_valid_close_code_on_wire(c)) << c;
  }
}

TEST(close_code, valid_on_wire_exhaustive) {
  for (std::uint32_t c = 0; c <= 0xFFFF; ++c) {
    const bool expected = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
    ASSERT_EQ(is_valid_close_code_on_wire(static_cast<std::uint16_t>(c)), expected) << c;
  }
}

TEST(close_code, our_codes_sendable_except_reporting_only_ones) {
  for (close_code c : all_codes) {
    const bool reporting_only = c == close_code::no_status || c == close_code::abnormal;
    EXPECT_EQ(is_valid_close_code_on_wire(static_cast<std::uint16_t>(c)), !reporting_only)
        << static_cast<std::uint16_t>(c);
  }
}

}  // namespace
}  // namespace bc::ws
