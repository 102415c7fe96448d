#include "core/channel_rules.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace bc::core {
namespace {

using namespace std::chrono_literals;

bool m(std::string_view pattern, std::string_view channel) {
  return channel_rules::matches(pattern, channel);
}

TEST(channel_rules, exact_pattern_matches_only_itself) {
  EXPECT_TRUE(m("chat", "chat"));
  EXPECT_TRUE(m("chat:room-1", "chat:room-1"));
  EXPECT_FALSE(m("chat", "chats"));
  EXPECT_FALSE(m("chat", "cha"));
  EXPECT_FALSE(m("chat", "Chat"));
  EXPECT_FALSE(m("chat:room-1", "chat:room-2"));
}

TEST(channel_rules, star_as_suffix) {
  EXPECT_TRUE(m("chat:*", "chat:room"));
  EXPECT_TRUE(m("chat:*", "chat:"));       // `*` also matches nothing
  EXPECT_TRUE(m("chat:*", "chat:a:b:c"));  // and across ':'
  EXPECT_FALSE(m("chat:*", "chat"));
  EXPECT_FALSE(m("chat:*", "news:chat:x"));
}

TEST(channel_rules, star_as_prefix) {
  EXPECT_TRUE(m("*:private", "user:42:private"));
  EXPECT_TRUE(m("*:private", ":private"));
  EXPECT_FALSE(m("*:private", "user:42:private:x"));
  EXPECT_FALSE(m("*:private", "private"));
}

TEST(channel_rules, star_in_the_middle) {
  EXPECT_TRUE(m("user:*:inbox", "user:42:inbox"));
  EXPECT_TRUE(m("user:*:inbox", "user::inbox"));
  EXPECT_TRUE(m("user:*:inbox", "user:a:b:inbox"));
  EXPECT_FALSE(m("user:*:inbox", "user:42:outbox"));
  EXPECT_FALSE(m("user:*:inbox", "user:42:inbox:x"));
}

TEST(channel_rules, star_alone_matches_everything) {
  EXPECT_TRUE(m("*", "anything"));
  EXPECT_TRUE(m("*", "a:b:c"));
  EXPECT_TRUE(m("*", ""));
  EXPECT_TRUE(m("**", "x"));
}

TEST(channel_rules, several_stars) {
  EXPECT_TRUE(m("a*b*c", "abc"));
  EXPECT_TRUE(m("a*b*c", "a-x-b-y-c"));
  EXPECT_TRUE(m("a*b*c", "abbbc"));
  EXPECT_TRUE(m("*:*", "x:y"));
  EXPECT_FALSE(m("*:*", "xy"));
  EXPECT_FALSE(m("a*b*c", "acb"));
  EXPECT_FALSE(m("a*b*c", "abcd"));
  // Backtracking: the first `b` found is not the one that lets the rest match.
  EXPECT_TRUE(m("*ab*abc", "xabyabab-abc"));
  EXPECT_FALSE(m("*aaa*b", std::string(200, 'a')));
}

TEST(channel_rules, empty_channel_and_pattern) {
  EXPECT_TRUE(m("", ""));
  EXPECT_FALSE(m("", "x"));
  EXPECT_FALSE(m("x", ""));
  EXPECT_FALSE(m("x*", ""));
  EXPECT_TRUE(m("*", ""));
}

TEST(channel_rules, no_rules_gives_the_defaults) {
  const channel_rules none;
  EXPECT_EQ(none.for_channel("x").history_size, 0u);
  EXPECT_EQ(none.for_channel("x").history_ttl, 300s);
  EXPECT_FALSE(none.for_channel("x").presence);
  EXPECT_FALSE(none.any_history());

  const channel_rules defaults_only({10, 60s, true}, {});
  const auto o = defaults_only.for_channel("whatever");
  EXPECT_EQ(o.history_size, 10u);
  EXPECT_EQ(o.history_ttl, 60s);
  EXPECT_TRUE(o.presence);
  EXPECT_TRUE(defaults_only.any_history());
}

TEST(channel_rules, first_matching_rule_wins_and_unset_fields_come_from_the_defaults) {
  std::vector<channel_rule> rules;
  rules.push_back({"chat:vip:*", 1000, std::nullopt, std::nullopt, std::nullopt});
  rules.push_back({"chat:*", 50, 30s, true, std::nullopt});
  rules.push_back({"*", std::nullopt, std::nullopt, true, std::nullopt});
  const channel_rules r({5, 120s, false}, std::move(rules));

  const auto vip = r.for_channel("chat:vip:lounge");  // the first rule, though the second also matches
  EXPECT_EQ(vip.history_size, 1000u);
  EXPECT_EQ(vip.history_ttl, 120s);  // unset in the rule: the default, not the second rule's 30s
  EXPECT_FALSE(vip.presence);        // likewise

  const auto chat = r.for_channel("chat:general");
  EXPECT_EQ(chat.history_size, 50u);
  EXPECT_EQ(chat.history_ttl, 30s);
  EXPECT_TRUE(chat.presence);

  const auto other = r.for_channel("news");
  EXPECT_EQ(other.history_size, 5u);
  EXPECT_EQ(other.history_ttl, 120s);
  EXPECT_TRUE(other.presence);

  ASSERT_EQ(r.rules().size(), 3u);
  EXPECT_EQ(r.rules()[1].pattern, "chat:*");
  EXPECT_EQ(r.defaults().history_size, 5u);
}

TEST(channel_rules, no_matching_rule_gives_the_defaults) {
  const channel_rules r({0, 300s, false}, {{"chat:*", 10, 5s, true, std::nullopt}});
  const auto o = r.for_channel("news:1");
  EXPECT_EQ(o.history_size, 0u);
  EXPECT_EQ(o.history_ttl, 300s);
  EXPECT_FALSE(o.presence);
  EXPECT_EQ(r.for_channel("").history_size, 0u);
}

TEST(channel_rules, any_history_sees_rules_too) {
  EXPECT_TRUE(channel_rules({0, 300s, false}, {{"chat:*", 10, std::nullopt, std::nullopt, std::nullopt}})
                  .any_history());
  EXPECT_FALSE(channel_rules({0, 300s, false}, {{"chat:*", 0, 5s, true, std::nullopt}}).any_history());
  EXPECT_FALSE(
      channel_rules({0, 300s, false}, {{"chat:*", std::nullopt, 5s, true, std::nullopt}}).any_history());
  // A rule may also turn history off where the default keeps it; the default still counts.
  EXPECT_TRUE(
      channel_rules({10, 300s, false}, {{"*", 0, std::nullopt, std::nullopt, std::nullopt}}).any_history());
}

TEST(channel_rules, join_leave_is_on_by_default_and_a_rule_may_switch_it_off) {
  const channel_rules r({0, 300s, true}, {{"big:*", std::nullopt, std::nullopt, std::nullopt, false},
                                          {"off:*", std::nullopt, std::nullopt, false, std::nullopt}});
  EXPECT_TRUE(r.for_channel("chat").join_leave);
  EXPECT_TRUE(r.for_channel("chat").presence);
  EXPECT_FALSE(r.for_channel("big:1").join_leave);
  EXPECT_TRUE(r.for_channel("big:1").presence);  // presence stays; only the notifications are off
  EXPECT_FALSE(r.for_channel("off:1").presence);
}

TEST(channel_rules, join_leave_limit_defaults_to_1000_and_a_rule_may_change_it) {
  channel_rule huge;
  huge.pattern = "huge:*";
  huge.join_leave_limit = 0;
  channel_rule small;
  small.pattern = "small:*";
  small.join_leave_limit = 5;
  const channel_rules r({0, 300s, true}, {huge, small});
  EXPECT_EQ(r.for_channel("chat").join_leave_limit, 1000u);
  EXPECT_EQ(r.for_channel("huge:1").join_leave_limit, 0u);
  EXPECT_EQ(r.for_channel("small:1").join_leave_limit, 5u);
  channel_options o;
  o.join_leave_limit = 50;
  EXPECT_EQ(channel_rules(o, {}).for_channel("x").join_leave_limit, 50u);
}

}  // namespace
}  // namespace bc::core
