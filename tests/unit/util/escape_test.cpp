#include "util/escape.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace bc::util {
namespace {

std::string escaped(std::string_view s) {
  std::string out = "<";
  append_escaped(out, s);
  return out + ">";
}

TEST(append_escaped, escapes_quotes_and_backslashes) {
  EXPECT_EQ(escaped(R"(say "hi" \o/)"), R"(<say \"hi\" \\o/>)");
}

TEST(append_escaped, writes_newline_return_and_tab_short_and_other_controls_as_u_escapes) {
  EXPECT_EQ(escaped("a\nb\rc\td"), R"(<a\nb\rc\td>)");
  EXPECT_EQ(escaped(std::string_view("\0\x01\x1f\x7f", 4)), R"(<\u0000\u0001\u001f\u007f>)");
  EXPECT_EQ(escaped("\b\f"), R"(<\u0008\u000c>)");
}

TEST(append_escaped, copies_everything_else) {
  EXPECT_EQ(escaped(""), "<>");
  EXPECT_EQ(escaped("plain ascii ~ /"), "<plain ascii ~ />");
  EXPECT_EQ(escaped("caf\xc3\xa9 \xff"), "<caf\xc3\xa9 \xff>");  // bytes >= 0x80 as they are
}

}  // namespace
}  // namespace bc::util
