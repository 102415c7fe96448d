#include "protocol/validation.hpp"

#include <gtest/gtest.h>

#include <string>

namespace bc::protocol {
namespace {

TEST(is_valid_channel, accepts_the_documented_examples) {
  EXPECT_TRUE(is_valid_channel("chat:room-42"));
  EXPECT_TRUE(is_valid_channel("user:abc_1"));
  EXPECT_TRUE(is_valid_channel("news"));
  EXPECT_TRUE(is_valid_channel("a"));
  EXPECT_TRUE(is_valid_channel("A:b:C:d"));
  EXPECT_TRUE(is_valid_channel("_"));
  EXPECT_TRUE(is_valid_channel("-"));
  EXPECT_TRUE(is_valid_channel("0"));
  EXPECT_TRUE(is_valid_channel("Zz09_-:x"));
}

TEST(is_valid_channel, length_limit_is_255) {
  EXPECT_TRUE(is_valid_channel(std::string(255, 'a')));
  EXPECT_FALSE(is_valid_channel(std::string(256, 'a')));
  EXPECT_FALSE(is_valid_channel(std::string(100'000, 'a')));
  // Separators count towards the length.
  std::string segments;
  while (segments.size() < 253) segments += "a:";
  segments += "b";  // 255 characters, ending in a non-empty segment
  ASSERT_EQ(segments.size(), 255u);
  EXPECT_TRUE(is_valid_channel(segments));
  EXPECT_FALSE(is_valid_channel(segments + "c"));
}

TEST(is_valid_channel, rejects_empty_and_empty_segments) {
  EXPECT_FALSE(is_valid_channel(""));
  EXPECT_FALSE(is_valid_channel(":"));
  EXPECT_FALSE(is_valid_channel("::"));
  EXPECT_FALSE(is_valid_channel("a::b"));
  EXPECT_FALSE(is_valid_channel(":a"));
  EXPECT_FALSE(is_valid_channel("a:"));
  EXPECT_FALSE(is_valid_channel("a:b:"));
}

TEST(is_valid_channel, rejects_other_characters) {
  for (const char* bad : {"a b", " a",  "a ",  "a/b",  "a.b", "a*",  "a>",  "a\"b", "a\\b", "a\tb", "a\nb",
                          "a+b", "a#b", "a?b", "a%20", "a@b", "a,b", "a=b", "[a]",  "{a}",  "a;b"}) {
    EXPECT_FALSE(is_valid_channel(bad)) << bad;
  }
  EXPECT_FALSE(is_valid_channel(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_channel("caf\xc3\xa9"));   // é
  EXPECT_FALSE(is_valid_channel("\xef\xbc\xa1"));  // fullwidth A
  EXPECT_FALSE(is_valid_channel("a\x80"));
  EXPECT_FALSE(is_valid_channel("\xff"));
  EXPECT_FALSE(is_valid_channel("a\x7f"));
}

TEST(is_valid_channel, every_single_byte_is_judged_by_the_alphabet) {
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool expected =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    EXPECT_EQ(is_valid_channel(std::string(1, ch)), expected) << "byte " << c;
    EXPECT_EQ(is_valid_channel("x" + std::string(1, ch) + "y"), expected || c == ':') << "byte " << c;
  }
}

TEST(is_valid_event, length_rules) {
  EXPECT_FALSE(is_valid_event(""));
  EXPECT_TRUE(is_valid_event("m"));
  EXPECT_TRUE(is_valid_event("message"));
  EXPECT_TRUE(is_valid_event(std::string(255, 'e')));
  EXPECT_FALSE(is_valid_event(std::string(256, 'e')));
}

TEST(is_valid_event, counts_characters_not_bytes) {
  auto repeat = [](std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  for (std::string_view ch :
       {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {  // é, €, an emoji: 2, 3, 4 bytes
    EXPECT_TRUE(is_valid_event(repeat(ch, 255))) << ch.size() << "-byte characters";
    EXPECT_FALSE(is_valid_event(repeat(ch, 256))) << ch.size() << "-byte characters";
    EXPECT_TRUE(is_valid_event(repeat(ch, 200) + std::string(55, 'e')));
    EXPECT_FALSE(is_valid_event(repeat(ch, 200) + std::string(56, 'e')));
  }
}

TEST(is_valid_event, any_bytes_are_allowed) {
  EXPECT_TRUE(is_valid_event("say \"hi\" / \\ :: \n"));
  EXPECT_TRUE(is_valid_event("caf\xc3\xa9"));
  EXPECT_TRUE(is_valid_event(std::string("\0", 1)));
}

}  // namespace
}  // namespace bc::protocol
