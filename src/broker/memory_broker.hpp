#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>

#include "broker/broker.hpp"
#include "core/channel_rules.hpp"
#include "core/presence_set.hpp"

namespace bc::broker {

// The embedded single-node broker: a publish goes straight to this node's fan-out.
//
// It is each channel's ordering point: under the channel's stripe lock a publish takes the channel's next
// offset and is handed to the sink, so that offsets reach the sink in order; a publish the sink refuses gives
// its offset back. Channels keep their history in a ring bounded by the channel's rule (count, age) and by
// one node-wide byte budget (`history_memory_limit`): when the budget is full, a publish trims the oldest
// messages of its own channel first, then of other channels in the same stripe.
//
// A channel's state (epoch, offset, history) lives while it has history or was used within
// max(history_ttl, idle_keep); an evicted channel comes back with a new epoch, which tells a client resuming
// from the old one that its position means nothing any more.
//
// Presence is the node's own: members in a presence_set per stripe of channels (its own locks, apart from
// publishing's), and a join / leave or a control message goes straight to this node's sink.
class memory_broker final : public broker {
 public:
  static constexpr std::size_t default_history_memory_limit = 256u << 20;

  explicit memory_broker(delivery_sink& sink, core::channel_rules rules = {},
                         std::size_t history_memory_limit = default_history_memory_limit);

  void start() override {}
  // From here on publishes answer `unavailable` (as the Redis broker's do), and the node is not healthy.
  void stop() override { stopped_.store(true, std::memory_order_relaxed); }
  void publish(core::message msg, std::function<void(publish_status)> done) override;
  void subscribe(std::string_view) override {}
  void unsubscribe(std::string_view) override {}
  void history(history_request req, std::function<void(history_result)> done) override;
  void add_presence(std::string channel, core::presence_member m, bool announce) override;
  void remove_presence(std::string channel, core::presence_member m, bool announce) override;
  void presence(std::string channel, std::size_t max, std::function<void(presence_result)> done) override;
  void presence_stats(std::string channel, std::function<void(presence_stats_result)> done) override;
  void control(control_message msg, std::function<void(publish_status)> done) override;
  bool healthy() const override { return !stopped_.load(std::memory_order_relaxed); }
  std::string describe() const override { return "memory"; }
  void append_metrics(std::string& out) const override;

  // For tests: bytes held in history, channels with state.
  std::size_t history_bytes() const { return history_bytes_.load(std::memory_order_relaxed); }
  std::size_t channel_count() const;

  // How long a channel without history keeps its position after its last use.
  static constexpr std::chrono::seconds idle_keep{3600};

 private:
  using clock = std::chrono::steady_clock;
  struct entry {
    core::message msg;
    clock::time_point at;
    std::size_t bytes;
  };
  struct channel_state {
    std::string epoch;
    std::uint64_t offset = 0;
    core::channel_options opts;
    std::deque<entry> history;  // offsets offset-history.size()+1 … offset
    clock::time_point used;
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct stripe {
    mutable std::mutex mutex;
    std::unordered_map<std::string, channel_state, string_hash, std::equal_to<>> channels;
    std::mt19937_64 random;
    std::uint32_t ops_since_sweep = 0;
  };
  static constexpr std::size_t stripe_count = 64;
  struct presence_stripe {
    mutable std::mutex mutex;
    core::presence_set members;
  };
  presence_stripe& presence_stripe_of(std::string_view channel);
  void announce(core::message::kind type, std::string channel, core::presence_member m);
  // Whether a join/leave in a channel of `members` members is announced (channel_options::join_leave_limit);
  // counts the ones that are not.
  bool within_join_leave_limit(std::string_view channel, std::uint64_t members);

  stripe& stripe_of(std::string_view channel);
  channel_state& state_of(stripe& s, std::string_view channel, clock::time_point now);
  void trim(channel_state& c, clock::time_point now);
  void pop_oldest(channel_state& c);
  void sweep(stripe& s, clock::time_point now);

  delivery_sink& sink_;
  const core::channel_rules rules_;
  const bool any_history_;
  const std::size_t history_memory_limit_;
  std::atomic<bool> stopped_{false};
  std::atomic<std::size_t> history_bytes_{0};
  std::atomic<std::uint64_t> history_trimmed_for_memory_{0};
  std::atomic<std::uint64_t> join_leave_suppressed_{0};
  std::array<stripe, stripe_count> stripes_;
  std::array<presence_stripe, stripe_count> presence_;
};

}  // namespace bc::broker
