#pragma once
// The Redis broker over a Redis Cluster: one shard per primary, each channel on the primary that owns its
// slot, following the slot map as it changes (resharding, a node joining or leaving, a failover).

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/broker.hpp"
#include "broker/redis_cluster_slots.hpp"
#include "broker/redis_connection.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_shard.hpp"
#include "broker/redis_url.hpp"

namespace bc::broker {

// Topology: one connection (to a seed, then to any primary it learnt of) asks `CLUSTER SHARDS` (Redis 7;
// `CLUSTER SLOTS` when the server does not know it) when it opens, every `cluster_refresh`, every
// `cluster_refresh_degraded` while some slot has no primary that is up, and at once (coalesced) on a hint
// from a shard: MOVED/ASK/CLUSTERDOWN, a `sunsubscribe` pushed by Redis, a lost connection, a connection that
// found a replica. Each primary serving slots gets a redis_shard (publish + subscribe connection, scripts,
// tracker, presence) of its own; one that serves none any more is stopped.
//
// Routing: a channel's slot is crc16 of its hash tag (redis_cluster_slots.hpp) — its keys `P{C}:…` and its
// sharded Pub/Sub channel `P{C}` share it — and its shard is the primary owning that slot. When a slot
// changes hands, every channel of it with local interest moves: released by the old shard (its position, and
// publishes held for its unconfirmed subscription, go along), adopted by the new one (SSUBSCRIBE, then a
// position check: what was published meanwhile is delivered from the stream or reported as a gap), and so
// do this node's presence members of it (re-added silently on the new primary). A publish, read or presence
// command for a slot without a known primary answers `unavailable`.
//
// Redirections: a publish answered MOVED or ASK did not run. MOVED updates the slot's owner at once (moving
// the slot's channels, as a new slot map would) and has the map read again; ASK names the node for this one
// command. Either way the publish is sent again (ASK: after ASKING, on the named node), at most
// `max_redirects` times, and in order: each channel's publishes are counted while in flight, and once one
// came back redirected, the channel's later publishes queue behind it until every earlier one has been
// answered or redirected too; then all go out again in their original order (`flows_`).
//
// The control channel (server API) is the sharded `P{!control}`, held by the shard owning its slot.
//
// Thread-safety: everything on the broker thread, except healthy(), describe() and stats(), which take
// `mutex_` (held only to copy, never across I/O).
class redis_cluster {
 public:
  using publish_done = std::function<void(publish_status)>;

  redis_cluster(boost::asio::io_context& ioc, redis_endpoint seeds, const redis_options& opts,
                delivery_sink& sink);
  ~redis_cluster();
  redis_cluster(const redis_cluster&) = delete;
  redis_cluster& operator=(const redis_cluster&) = delete;

  void start();
  void stop();

  // The broker's operations, on the broker thread, `channel` the Broadcaster channel.
  void publish(const std::string& channel, redis_publish_request req, publish_done done);
  void subscribe(const std::string& channel);
  void unsubscribe(const std::string& channel);
  void await_subscribed(const std::string& channel, std::function<void()> ready);
  void history(history_request req, std::function<void(history_result)> done);
  void add_presence(presence_target target, core::presence_member m);
  void remove_presence(const presence_target& target, const std::string& client_id);
  void presence(const presence_target& target, std::size_t max, std::function<void(presence_result)> done);
  void presence_stats(const presence_target& target, std::function<void(presence_stats_result)> done);
  void control(std::string envelope, publish_done done);

  // Any thread.
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }
  std::string describe() const;
  std::vector<redis_shard_stats> stats() const;

 private:
  struct query;
  redis_shard* owner(const std::string& channel) const;
  void on_topo_open(redis_link* ac);
  void ask(redis_link* ac);
  static void on_topology_reply(redis_link* ac, void* reply, void* privdata);
  void refresh(const std::string& why);
  void apply(std::vector<redis_cluster_slots::node_slots> nodes);
  redis_shard* shard_at(const std::string& host, int port);
  void place_channels();
  void retire_idle_shards();
  void update_health();
  void do_tick();
  void next_seed();
  struct queued {
    redis_publish_request req;
    publish_done done;           // wraps the caller's with finished()
    redis_shard* ask = nullptr;  // ASK: the node to send it to, after ASKING
  };
  struct flow {
    std::size_t outstanding = 0;                         // sent to a shard, neither answered nor redirected
    std::deque<queued> redirected;                       // came back MOVED/ASK, in the order they were sent
    std::deque<queued> waiting;                          // published since the first of those
    std::chrono::steady_clock::time_point not_before{};  // TRYAGAIN: not sent again before
  };
  void send(const std::string& channel, redis_publish_request req, publish_done done, redis_shard* ask);
  void finished(const std::string& channel);
  void on_redirect(const redis_shard::redirection& to, redis_publish_request req, publish_done done);
  void flush(const std::string& channel);
  static constexpr unsigned max_redirects = 5;

  boost::asio::io_context& ioc_;
  const redis_endpoint seeds_;
  const redis_options& opts_;
  delivery_sink& sink_;
  redis_endpoint topo_endpoint_;  // the node asked for the slot map; read by topo_ on every connect
  std::size_t seed_at_ = 0;
  redis_connection topo_;
  bool stopped_ = true;
  bool asking_ = false;                             // a CLUSTER SHARDS/SLOTS is unanswered
  bool again_ = false;                              // a hint came meanwhile: ask again once it is answered
  bool use_slots_ = false;                          // the server does not know CLUSTER SHARDS
  std::chrono::steady_clock::time_point hinted_{};  // the last hint: refresh quickly for a while after it
  std::chrono::steady_clock::time_point asked_at_{};
  boost::asio::steady_timer tick_;
  std::vector<redis_host> known_;  // seeds and every primary seen, to ask when the current one is lost

  std::map<std::string, std::unique_ptr<redis_shard>> shards_;  // by address; guarded by mutex_ for stats()
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::unique_ptr<redis_shard>>> retired_;
  std::array<redis_shard*, redis_cluster_slots::slot_count> slots_{};
  bool covered_ = false;                                   // every slot has a primary
  std::size_t next_index_ = 0;                             // shard numbers, for logs and metrics
  std::unordered_set<std::string> channels_;               // channels with local interest
  std::unordered_map<std::string, redis_shard*> placed_;   // channel -> the shard it is subscribed on
  std::unordered_map<std::string, redis_shard*> present_;  // channel -> the shard keeping its members
  redis_shard* control_ = nullptr;                         // holds the control channel
  // Members added before their slot had a known primary (before the first map): added once it has one.
  std::vector<std::pair<presence_target, core::presence_member>> unplaced_members_;
  std::unordered_map<std::string, flow> flows_;  // channels with publishes in flight or queued
  std::uint64_t maps_ = 0;                       // slot maps applied
  mutable std::mutex mutex_;
  std::atomic<bool> healthy_{false};
};

}  // namespace bc::broker
