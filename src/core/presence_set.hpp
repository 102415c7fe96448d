#pragma once
// Who is subscribed where, for presence (PROTOCOL "(ext) Presence"): per channel, its members (one per
// connection, keyed by client id) and how many of them each user has, so that presenceStats is O(1) and a
// presence answer walks at most the cap it is given.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bc::core {

// One connection's entry in a channel's presence.
struct presence_member {
  std::string client_id;  // unique across nodes (the node's id and a counter)
  std::string user;       // the token's sub
  std::string info;       // the token's info claim as JSON text; empty: none
};

struct presence_counts {
  std::uint64_t clients = 0;
  std::uint64_t users = 0;
};

// Not thread-safe: its owner locks (memory_broker keeps one per stripe of channels). Channels without members
// take no memory: an entry goes with its last member.
class presence_set {
 public:
  // Records `m` in `channel`. False when the client id was there already (nothing changes then).
  bool add(std::string_view channel, const presence_member& m);
  // Removes the client from `channel`, returning what it was recorded with; nullopt when it was not there.
  std::optional<presence_member> remove(std::string_view channel, std::string_view client_id);

  presence_counts counts(std::string_view channel) const;
  // At most `max` members of `channel` (in no particular order); `truncated` says there were more.
  std::vector<presence_member> members(std::string_view channel, std::size_t max, bool& truncated) const;

  std::size_t channel_count() const { return channels_.size(); }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;
  struct member_data {
    std::string user;
    std::string info;
  };
  struct channel_entry {
    string_map<member_data> clients;     // client id -> member
    string_map<std::uint32_t> per_user;  // user -> connections of that user in the channel
  };
  string_map<channel_entry> channels_;
};

}  // namespace bc::core
