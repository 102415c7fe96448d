#include "core/presence_set.hpp"

#include <algorithm>

namespace bc::core {

bool presence_set::add(std::string_view channel, const presence_member& m) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) it = channels_.emplace(std::string(channel), channel_entry{}).first;
  auto& entry = it->second;
  if (!entry.clients.emplace(m.client_id, member_data{m.user, m.info}).second) return false;
  auto user = entry.per_user.find(std::string_view(m.user));
  if (user == entry.per_user.end()) {
    entry.per_user.emplace(m.user, 1);
  } else {
    ++user->second;
  }
  return true;
}

std::optional<presence_member> presence_set::remove(std::string_view channel, std::string_view client_id) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return std::nullopt;
  auto& entry = it->second;
  auto client = entry.clients.find(client_id);
  if (client == entry.clients.end()) return std::nullopt;
  presence_member out{client->first, std::move(client->second.user), std::move(client->second.info)};
  entry.clients.erase(client);
  auto user = entry.per_user.find(std::string_view(out.user));
  if (user != entry.per_user.end() && --user->second == 0) entry.per_user.erase(user);
  if (entry.clients.empty()) channels_.erase(it);
  return out;
}

presence_counts presence_set::counts(std::string_view channel) const {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return {};
  return {it->second.clients.size(), it->second.per_user.size()};
}

std::vector<presence_member> presence_set::members(std::string_view channel, std::size_t max,
                                                   bool& truncated) const {
  truncated = false;
  std::vector<presence_member> out;
  auto it = channels_.find(channel);
  if (it == channels_.end()) return out;
  const auto& clients = it->second.clients;
  truncated = clients.size() > max;
  out.reserve(std::min(max, clients.size()));
  for (const auto& [id, m] : clients) {
    if (out.size() == max) break;
    out.push_back({id, m.user, m.info});
  }
  return out;
}

}  // namespace bc::core
