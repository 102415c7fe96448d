#include "util/enum_count.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace bc::util {
namespace {

enum class colour { red, green, blue };

constexpr std::string_view to_string(colour c) {
  switch (c) {
    case colour::red:
      return "red";
    case colour::green:
      return "green";
    case colour::blue:
      return "blue";
  }
  return {};
}

enum class nothing {};
constexpr std::string_view to_string(nothing) {
  return {};
}

TEST(enum_count, counts_the_named_values_from_zero) {
  static_assert(enum_count<colour>() == 3);
  static_assert(enum_count<nothing>() == 0);
  EXPECT_EQ(enum_count<colour>(), 3u);
}

}  // namespace
}  // namespace bc::util
