#pragma once
// What the server keeps per channel, by channel-name pattern: history size and age, presence. Set from
// HISTORY_SIZE / HISTORY_TTL / PRESENCE and the config file's [[channels]] rules (PROTOCOL "(ext) Channel
// positions, history and recovery", "(ext) Presence").

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bc::core {

struct channel_options {
  std::size_t history_size = 0;  // messages kept; 0 = no history (offsets and epochs are still assigned)
  std::chrono::seconds history_ttl{300};
  bool presence = false;
  // With presence: whether subscriptions may ask for join/leave notifications. A rule sets it false for
  // channels so large that a reconnect storm would become a join/leave storm (N joins x N members frames).
  bool join_leave = true;
  // Join/leave are announced only while the channel has at most this many members (0: no limit): past it,
  // each join would be one frame to each of thousands of members, and a reconnect storm N² frames.
  std::size_t join_leave_limit = 1000;
};

// One [[channels]] entry: the fields it sets; the others come from the global settings.
struct channel_rule {
  std::string pattern;  // `*` matches any run of characters (also none, also across ':'); the rest literally
  std::optional<std::size_t> history_size;
  std::optional<std::chrono::seconds> history_ttl;
  std::optional<bool> presence;
  std::optional<bool> join_leave;
  std::optional<std::size_t> join_leave_limit{};  // initialised: rules written as {pattern, …} stay complete
};

// Immutable after construction; any thread.
class channel_rules {
 public:
  channel_rules() = default;
  channel_rules(channel_options defaults, std::vector<channel_rule> rules);

  // The first rule whose pattern matches wins; fields it leaves unset come from the defaults.
  channel_options for_channel(std::string_view channel) const;
  const channel_options& defaults() const { return defaults_; }
  const std::vector<channel_rule>& rules() const { return rules_; }
  // True when some channel may keep history (the defaults or a rule): lets a broker skip all history work.
  bool any_history() const;

  static bool matches(std::string_view pattern, std::string_view channel);

 private:
  channel_options defaults_;
  std::vector<channel_rule> rules_;
};

}  // namespace bc::core
