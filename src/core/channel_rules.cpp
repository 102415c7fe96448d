#include "core/channel_rules.hpp"

namespace bc::core {

channel_rules::channel_rules(channel_options defaults, std::vector<channel_rule> rules)
    : defaults_(defaults), rules_(std::move(rules)) {}

channel_options channel_rules::for_channel(std::string_view channel) const {
  for (const auto& r : rules_) {
    if (!matches(r.pattern, channel)) continue;
    channel_options o = defaults_;
    if (r.history_size) o.history_size = *r.history_size;
    if (r.history_ttl) o.history_ttl = *r.history_ttl;
    if (r.presence) o.presence = *r.presence;
    if (r.join_leave) o.join_leave = *r.join_leave;
    if (r.join_leave_limit) o.join_leave_limit = *r.join_leave_limit;
    return o;
  }
  return defaults_;
}

bool channel_rules::any_history() const {
  if (defaults_.history_size > 0) return true;
  for (const auto& r : rules_) {
    if (r.history_size.value_or(0) > 0) return true;
  }
  return false;
}

// Glob with `*` only, iterative with one backtrack point: linear in practice, never exponential.
bool channel_rules::matches(std::string_view pattern, std::string_view channel) {
  std::size_t p = 0, c = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (c < channel.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = c;
    } else if (p < pattern.size() && pattern[p] == channel[c]) {
      ++p;
      ++c;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      c = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace bc::core
