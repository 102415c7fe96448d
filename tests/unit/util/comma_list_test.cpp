#include "util/comma_list.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace bc::util {
namespace {

std::vector<std::string> items(std::string_view list) {
  std::vector<std::string> out;
  while (const auto item = next_list_item(list)) out.emplace_back(*item);
  EXPECT_TRUE(list.empty());
  return out;
}

using list = std::vector<std::string>;

TEST(next_list_item, splits_on_commas_and_trims_spaces_and_tabs) {
  EXPECT_EQ(items("gzip, chunked"), (list{"gzip", "chunked"}));
  EXPECT_EQ(items(" \ta b\t ,c"), (list{"a b", "c"}));  // inner white space stays
  EXPECT_EQ(items("one"), (list{"one"}));
}

TEST(next_list_item, skips_empty_elements) {
  EXPECT_EQ(items(""), list{});
  EXPECT_EQ(items(" , ,\t"), list{});
  EXPECT_EQ(items(",a,,b,"), (list{"a", "b"}));
}

TEST(next_list_item, leaves_the_rest_of_the_list) {
  std::string_view l = "a, b, c";
  EXPECT_EQ(next_list_item(l), "a");
  EXPECT_EQ(l, " b, c");
  static_assert([] {
    std::string_view s = ",x";
    return *next_list_item(s) == "x" && s.empty();
  }());
}

}  // namespace
}  // namespace bc::util
