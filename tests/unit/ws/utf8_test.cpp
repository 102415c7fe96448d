#include "net/ws/utf8.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

namespace bc::ws {
namespace {

// Independent reference: decode by bit patterns, then reject overlongs, surrogates and > U+10FFFF.
bool reference_valid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<std::uint8_t>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      n = 1;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      n = 3;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated
    for (std::size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<std::uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const std::uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

bool valid_split(std::string_view s, std::size_t cut) {
  utf8_validator v;
  return v.feed(s.substr(0, cut)) && v.feed(s.substr(cut)) && v.complete();
}

TEST(utf8, ascii_and_empty) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("hello"));
  EXPECT_TRUE(is_valid_utf8(std::string_view("\0", 1)));
  EXPECT_TRUE(is_valid_utf8(std::string(1000, 'a')));
  EXPECT_TRUE(is_valid_utf8("{\"id\":1,\"method\":\"subscribe\",\"params\":{\"channel\":\"news\"}}"));
}

TEST(utf8, valid_multibyte) {
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));      // euro sign
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(is_valid_utf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000, smallest 4-byte
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));  // emoji
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the maximum
  EXPECT_TRUE(
      is_valid_utf8("Gr\xC3\xBC\xC3\x9F"
                    "e \xE4\xB8\x96\xE7\x95\x8C"));
}

TEST(utf8, overlong_forms_rejected) {
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));  // '/' as 2 bytes
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));
}

TEST(utf8, surrogates_rejected) {
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xAF\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xED\xB0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));              // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));  // CESU-8 pair
}

TEST(utf8, above_max_code_point_rejected) {
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF7\xBF\xBF\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));  // 5-byte form
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

TEST(utf8, truncated_and_stray_bytes_rejected) {
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(is_valid_utf8("abc\xF0\x9F"));
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(
      is_valid_utf8("a\xBF"
                    "b"));
  EXPECT_FALSE(
      is_valid_utf8("\xE2\x82"
                    "a"));                      // sequence cut short by ASCII
  EXPECT_FALSE(is_valid_utf8("\xC3\xA9\xA9"));  // one continuation too many
}

TEST(utf8, bad_byte_found_at_every_position_of_ascii_run) {
  // Exercises the 8/16-byte fast path and its tail at every alignment.
  for (std::size_t len = 1; len < 70; ++len) {
    for (std::size_t at = 0; at < len; ++at) {
      std::string s(len, 'x');
      s[at] = '\xFF';
      ASSERT_FALSE(is_valid_utf8(s)) << len << " " << at;
      s[at] = '\xC3';
      ASSERT_FALSE(is_valid_utf8(s)) << len << " " << at;  // lead byte followed by ASCII or end
    }
  }
}

TEST(utf8, all_one_and_two_byte_inputs_match_reference) {
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(one), reference_valid(one)) << a;
    for (int b = 0; b < 256; ++b) {
      const std::string two{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_EQ(is_valid_utf8(two), reference_valid(two)) << a << " " << b;
    }
  }
}

TEST(utf8, all_three_byte_inputs_with_non_ascii_lead_match_reference) {
  for (int a = 0x80; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0; c < 256; ++c) {
        const char s[3] = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)};
        const std::string_view v(s, 3);
        ASSERT_EQ(is_valid_utf8(v), reference_valid(v)) << a << " " << b << " " << c;
      }
    }
  }
}

TEST(utf8, four_byte_leads_match_reference) {
  for (int a = 0xF0; a < 0xF8; ++a) {
    for (int b = 0x70; b < 0xD0; ++b) {
      for (int c : {0x00, 0x7F, 0x80, 0xBF, 0xC0}) {
        for (int d : {0x41, 0x80, 0x9F, 0xBF, 0xC2}) {
          const char s[4] = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                             static_cast<char>(d)};
          const std::string_view v(s, 4);
          ASSERT_EQ(is_valid_utf8(v), reference_valid(v)) << a << " " << b << " " << c << " " << d;
        }
      }
    }
  }
}

TEST(utf8, random_strings_match_reference) {
  std::mt19937 rng(12345);
  // Biased towards bytes that form or nearly form valid sequences.
  const std::uint8_t alphabet[] = {'a',  'z',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                   0xC2, 0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5, 0xFF};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(alphabet) - 1);
  std::uniform_int_distribution<std::size_t> length(0, 40);
  for (int iter = 0; iter < 200000; ++iter) {
    std::string s(length(rng), ' ');
    for (char& ch : s) ch = static_cast<char>(alphabet[pick(rng)]);
    ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << iter;
  }
}

TEST(utf8, validator_accepts_sequences_split_anywhere) {
  const std::string s =
      "a\xC3\xA9z\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF" + std::string(20, 'q') + "\xE2\x82\xAC";
  ASSERT_TRUE(is_valid_utf8(s));
  for (std::size_t cut = 0; cut <= s.size(); ++cut) EXPECT_TRUE(valid_split(s, cut)) << cut;
}

TEST(utf8, validator_rejects_invalid_split_anywhere) {
  for (std::string_view bad :
       {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ab\xE2\x82", "\xF0\x80\x80\xAF"}) {
    for (std::size_t cut = 0; cut <= bad.size(); ++cut) EXPECT_FALSE(valid_split(bad, cut)) << cut;
  }
}

TEST(utf8, validator_is_sticky_and_resettable) {
  utf8_validator v;
  EXPECT_TRUE(v.feed("\xE2\x82"));
  EXPECT_FALSE(v.complete());  // open sequence
  EXPECT_TRUE(v.feed("\xAC"));
  EXPECT_TRUE(v.complete());
  EXPECT_FALSE(v.feed("\xFF"));
  EXPECT_FALSE(v.feed("ok"));  // stays failed
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.feed("ok"));
  EXPECT_TRUE(v.complete());
}

}  // namespace
}  // namespace bc::ws
