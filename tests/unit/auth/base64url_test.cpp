#include "auth/base64url.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>

namespace bc::auth {
namespace {

std::string decode_or_die(std::string_view text) {
  std::string out;
  EXPECT_TRUE(base64url_decode(text, out)) << text;
  return out;
}

bool decodes(std::string_view text) {
  std::string out;
  return base64url_decode(text, out);
}

// RFC 4648 §10 test vectors, unpadded.
TEST(Base64url, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64url, DecodesRfc4648Vectors) {
  EXPECT_EQ(decode_or_die(""), "");
  EXPECT_EQ(decode_or_die("Zg"), "f");
  EXPECT_EQ(decode_or_die("Zm8"), "fo");
  EXPECT_EQ(decode_or_die("Zm9v"), "foo");
  EXPECT_EQ(decode_or_die("Zm9vYg"), "foob");
  EXPECT_EQ(decode_or_die("Zm9vYmE"), "fooba");
  EXPECT_EQ(decode_or_die("Zm9vYmFy"), "foobar");
}

TEST(Base64url, UsesTheUrlSafeAlphabet) {
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("\xff\xff\xff"), "____");
  EXPECT_EQ(base64url_encode("\xfb\xef\xbe"), "----");
  EXPECT_EQ(decode_or_die("-_8"), "\xfb\xff");
}

TEST(Base64url, RoundTripsEveryByteAtEveryLength) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    const std::string encoded = base64url_encode(data);
    EXPECT_EQ(encoded.size(), (data.size() * 4 + 2) / 3);
    EXPECT_EQ(base64url_decoded_size(encoded.size()), data.size());
    EXPECT_EQ(decode_or_die(encoded), data);
    data += static_cast<char>(i * 7 + 3);
  }
}

TEST(Base64url, RejectsPadding) {
  EXPECT_FALSE(decodes("Zg=="));
  EXPECT_FALSE(decodes("Zm8="));
  EXPECT_FALSE(decodes("Zg="));
  EXPECT_FALSE(decodes("Zm9v===="));
  EXPECT_FALSE(decodes("="));
}

TEST(Base64url, RejectsCharactersOutsideTheAlphabet) {
  EXPECT_FALSE(decodes("Zm9+"));  // standard base64 '+'
  EXPECT_FALSE(decodes("Zm9/"));  // standard base64 '/'
  EXPECT_FALSE(decodes("Zm 9v"));
  EXPECT_FALSE(decodes("Zm9v\n"));
  EXPECT_FALSE(decodes("Zm9."));
  EXPECT_FALSE(decodes(std::string_view("Zm\0v", 4)));
  EXPECT_FALSE(decodes("Zm\x80v"));
  EXPECT_FALSE(decodes("Zm\xffv"));
  // The same in a final group of 2 or 3 characters.
  for (const char* text : {"*A", "A*", "AA*", "A*A", "Zm9vA.", "Zm9v/A", "Zm9vQ+", "Zm9vA\xff"}) {
    EXPECT_FALSE(decodes(text)) << text;
  }
}

TEST(Base64url, RejectsImpossibleLength) {
  EXPECT_FALSE(decodes("A"));  // zero bits, so only the length rule refuses them
  EXPECT_FALSE(decodes("AAAAA"));
  EXPECT_FALSE(decodes("Zm9vY"));
}

// Only the canonical spelling decodes: "Zh" would otherwise be a second spelling of "f" ("Zg").
TEST(Base64url, RejectsNonZeroTrailingBits) {
  EXPECT_FALSE(decodes("Zh"));
  EXPECT_FALSE(decodes("Zm9"));
  EXPECT_FALSE(decodes("Zm-"));
  EXPECT_TRUE(decodes("Zm8"));
}

TEST(Base64url, PointerOverloadWritesExactlyTheDecodedSize) {
  char buffer[8];
  std::fill(std::begin(buffer), std::end(buffer), '#');
  ASSERT_TRUE(base64url_decode("Zm9vYmE", buffer));
  EXPECT_EQ(std::string(buffer, 8), "fooba###");
}

TEST(Base64url, DecodedSize) {
  EXPECT_EQ(base64url_decoded_size(0), 0u);
  EXPECT_EQ(base64url_decoded_size(2), 1u);
  EXPECT_EQ(base64url_decoded_size(3), 2u);
  EXPECT_EQ(base64url_decoded_size(4), 3u);
  EXPECT_EQ(base64url_decoded_size(43), 32u);  // an HS256 signature
}

}  // namespace
}  // namespace bc::auth
