#include "app/secret_strength.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bc::app {
namespace {

TEST(SecretStrength, StrongSecretsGiveNoWarning) {
  EXPECT_TRUE(
      weak_secret_warnings(std::string(32, 's'), {std::string(16, 'k'), std::string(40, 'k')}).empty());
  EXPECT_TRUE(weak_secret_warnings("", {}).empty());  // not configured: start-up refuses that on its own
}

TEST(SecretStrength, AShortJwtSecretIsNamedButNeitherItsValueNorItsLength) {
  const auto w = weak_secret_warnings(std::string(31, 'q'), {std::string(16, 'k')});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("JWT_SECRET"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("shorter than 32 bytes"), std::string::npos) << w[0];
  EXPECT_EQ(w[0].find("31"), std::string::npos) << w[0];
  EXPECT_EQ(w[0].find("qqq"), std::string::npos) << w[0];
}

TEST(SecretStrength, EachShortApiKeyIsNamedByPosition) {
  const auto w = weak_secret_warnings(std::string(64, 's'), {"abcdefghijklmnop", "x", "yyyyyyyyyyyyyyy"});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("API key 2 of 3 is shorter than 16 characters"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("API key 3 of 3 is shorter than 16"), std::string::npos) << w[1];
  for (const auto& line : w) {
    EXPECT_EQ(line.find("yyyy"), std::string::npos) << line;
    EXPECT_EQ(line.find("15"), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace bc::app
