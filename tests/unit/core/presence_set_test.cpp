#include "core/presence_set.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace bc::core {
namespace {

presence_member member(std::string id, std::string user, std::string info = {}) {
  return {std::move(id), std::move(user), std::move(info)};
}

TEST(presence_set, counts_clients_and_distinct_users) {
  presence_set p;
  EXPECT_TRUE(p.add("chat", member("c1", "alice")));
  EXPECT_TRUE(p.add("chat", member("c2", "alice")));
  EXPECT_TRUE(p.add("chat", member("c3", "bob")));
  EXPECT_TRUE(p.add("news", member("c1", "alice")));
  EXPECT_EQ(p.counts("chat").clients, 3u);
  EXPECT_EQ(p.counts("chat").users, 2u);
  EXPECT_EQ(p.counts("news").clients, 1u);
  EXPECT_EQ(p.counts("news").users, 1u);
  EXPECT_EQ(p.counts("other").clients, 0u);
  EXPECT_EQ(p.counts("other").users, 0u);
}

TEST(presence_set, the_same_client_twice_changes_nothing) {
  presence_set p;
  EXPECT_TRUE(p.add("chat", member("c1", "alice", "1")));
  EXPECT_FALSE(p.add("chat", member("c1", "alice", "2")));
  EXPECT_EQ(p.counts("chat").clients, 1u);
  bool truncated = true;
  auto all = p.members("chat", 10, truncated);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].info, "1");
  EXPECT_FALSE(truncated);
}

TEST(presence_set, a_user_counts_until_its_last_connection_leaves) {
  presence_set p;
  p.add("chat", member("c1", "alice"));
  p.add("chat", member("c2", "alice"));
  p.add("chat", member("c3", "bob"));
  auto gone = p.remove("chat", "c1");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->user, "alice");
  EXPECT_EQ(p.counts("chat").clients, 2u);
  EXPECT_EQ(p.counts("chat").users, 2u);
  p.remove("chat", "c2");
  EXPECT_EQ(p.counts("chat").clients, 1u);
  EXPECT_EQ(p.counts("chat").users, 1u);
}

TEST(presence_set, removing_what_is_not_there_is_nullopt) {
  presence_set p;
  EXPECT_FALSE(p.remove("chat", "c1"));
  p.add("chat", member("c1", "alice"));
  EXPECT_FALSE(p.remove("chat", "c2"));
  EXPECT_FALSE(p.remove("news", "c1"));
  EXPECT_EQ(p.counts("chat").clients, 1u);
}

TEST(presence_set, a_channel_goes_with_its_last_member) {
  presence_set p;
  p.add("chat", member("c1", "alice"));
  p.add("news", member("c1", "alice"));
  EXPECT_EQ(p.channel_count(), 2u);
  p.remove("chat", "c1");
  EXPECT_EQ(p.channel_count(), 1u);
  p.remove("news", "c1");
  EXPECT_EQ(p.channel_count(), 0u);
}

TEST(presence_set, members_carry_user_and_info) {
  presence_set p;
  p.add("chat", member("c1", "alice", R"({"name":"Alice"})"));
  p.add("chat", member("c2", "bob"));
  bool truncated = true;
  auto all = p.members("chat", 10, truncated);
  EXPECT_FALSE(truncated);
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.client_id < b.client_id; });
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].client_id, "c1");
  EXPECT_EQ(all[0].user, "alice");
  EXPECT_EQ(all[0].info, R"({"name":"Alice"})");
  EXPECT_EQ(all[1].user, "bob");
  EXPECT_EQ(all[1].info, "");
}

TEST(presence_set, members_are_capped_and_say_so) {
  presence_set p;
  for (int i = 0; i < 10; ++i) p.add("chat", member("c" + std::to_string(i), "u" + std::to_string(i % 3)));
  bool truncated = false;
  EXPECT_EQ(p.members("chat", 4, truncated).size(), 4u);
  EXPECT_TRUE(truncated);
  EXPECT_EQ(p.members("chat", 10, truncated).size(), 10u);
  EXPECT_FALSE(truncated);
  EXPECT_EQ(p.members("chat", 0, truncated).size(), 0u);
  EXPECT_TRUE(truncated);
  EXPECT_EQ(p.members("none", 5, truncated).size(), 0u);
  EXPECT_FALSE(truncated);
  EXPECT_EQ(p.counts("chat").users, 3u);
}

}  // namespace
}  // namespace bc::core
