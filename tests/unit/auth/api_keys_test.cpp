#include "auth/api_keys.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bc::auth {
namespace {

TEST(ApiKeys, AcceptsEveryConfiguredKey) {
  const api_keys keys({"alpha-key", "beta-key", "gamma-key"});
  EXPECT_TRUE(keys.check("alpha-key"));
  EXPECT_TRUE(keys.check("beta-key"));
  EXPECT_TRUE(keys.check("gamma-key"));
}

TEST(ApiKeys, RejectsAnythingElse) {
  const api_keys keys({"alpha-key", "beta-key"});
  EXPECT_FALSE(keys.check("alpha-ke"));    // prefix
  EXPECT_FALSE(keys.check("alpha-key2"));  // extension
  EXPECT_FALSE(keys.check("Alpha-key"));   // case
  EXPECT_FALSE(keys.check(" alpha-key"));  // no trimming
  EXPECT_FALSE(keys.check("alpha-keybeta-key"));
  EXPECT_FALSE(keys.check(""));
}

TEST(ApiKeys, ComparesAllBytesIncludingNul) {
  const api_keys keys({std::string("ab\0cd", 5)});
  EXPECT_TRUE(keys.check(std::string_view("ab\0cd", 5)));
  EXPECT_FALSE(keys.check(std::string_view("ab\0ce", 5)));
  EXPECT_FALSE(keys.check("ab"));
}

TEST(ApiKeys, IgnoresEmptyKeys) {
  const api_keys keys({"", "real-key", ""});
  EXPECT_EQ(keys.size(), 1u);
  EXPECT_FALSE(keys.check(""));
  EXPECT_TRUE(keys.check("real-key"));
}

TEST(ApiKeys, NoKeysAcceptsNothing) {
  const api_keys none({});
  EXPECT_EQ(none.size(), 0u);
  EXPECT_FALSE(none.check(""));
  EXPECT_FALSE(none.check("anything"));
  const api_keys only_empty({""});
  EXPECT_EQ(only_empty.size(), 0u);
  EXPECT_FALSE(only_empty.check(""));
}

TEST(ApiKeys, LongKeysAreComparedInFull) {
  std::string key(4096, 'k');
  const api_keys keys({key});
  EXPECT_TRUE(keys.check(key));
  key.back() = 'x';
  EXPECT_FALSE(keys.check(key));
}

}  // namespace
}  // namespace bc::auth
