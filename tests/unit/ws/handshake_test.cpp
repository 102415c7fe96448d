#include "net/ws/handshake.hpp"

#include <gtest/gtest.h>

namespace bc::ws {
namespace {

TEST(handshake, accept_key_rfc_6455_example) {
  // RFC 6455 section 1.3 (also checked against `openssl sha1 -binary | base64`).
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(handshake, accept_key_other_vectors) {
  EXPECT_EQ(accept_key("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");  // Wikipedia example
  const std::string a = accept_key("");
  EXPECT_EQ(a.size(), 28u);  // base64 of a 20-byte SHA-1
  EXPECT_EQ(a.back(), '=');
}

TEST(handshake, valid_client_keys) {
  EXPECT_TRUE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(is_valid_client_key("x3JJHMbDL1EzLkh9GBhXDw=="));
  EXPECT_TRUE(is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(is_valid_client_key("+/+/+/+/+/+/+/+/+/+/+w=="));
}

TEST(handshake, invalid_client_keys) {
  EXPECT_FALSE(is_valid_client_key(""));
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 chars
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25 chars
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQAA"));   // no padding: 18 bytes
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZ=Q="));   // padding in the wrong place
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZ-=="));   // not base64
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZ =="));   // space
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ==\n"));
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ-_"));  // base64url padding chars
}

}  // namespace
}  // namespace bc::ws
