#pragma once
// The Redis broker: Broadcaster nodes sharing one or more Redis instances act as one service.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "broker/redis_cluster.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_shard.hpp"
#include "broker/redis_url.hpp"

namespace bc::broker {

// A publish goes to Redis (one atomic script on the channel's shard that gives it the channel's next offset,
// keeps it in the channel's stream when the channel has history, and PUBLISHes it; redis_scripts.hpp) and
// comes back to every node subscribed to that channel, this one included, which checks its offset against
// the last one delivered (redis_channel_tracker.hpp: jumps are repaired from the stream or reported as gaps),
// rebuilds the frame and hands it to its delivery_sink. A node subscribes
// in Redis only to channels with local subscribers (subscribe/unsubscribe from channel_interest).
//
// Concurrency: one broker thread runs its own io_context and owns every Redis connection, shard and channel
// set. Callers on any thread hand work over with `post`, in call order, so publishes from one thread to one
// channel reach Redis in order on one connection, and come back in order on one subscribe connection. Nothing
// but the counters and up-flags (atomics) is read from other threads. The post gate (`gate_`) is held only
// around `post`, so that stop() can tell exactly which work was accepted and must still complete.
//
// Guarantees (see broker.hpp): `done` is called exactly once, on the broker thread or inline (fast refusal
// when either connection of the shard is down or the broker stopped); `ok` means Redis answered the PUBLISH
// and, when this node has subscribers on the channel, the message has come back to it (redis_shard.hpp).
//
// Presence lives on the channel's shard (redis_presence.hpp): this node's members in Redis with an expiry it
// refreshes, join / leave on the channel's Pub/Sub channel, never taking an offset. Control messages go
// through shard 0, to every node (this one included) on a node-wide Pub/Sub channel.
//
// Redis Cluster (redis_cluster.hpp): the shards are the cluster's primaries, found and followed on the broker
// thread, so every operation is posted there and routed by the channel's slot (no refusal on the caller's
// thread).
class redis_broker final : public broker {
 public:
  redis_broker(delivery_sink& sink, std::vector<redis_endpoint> shards, redis_options opts = {});
  ~redis_broker() override;

  void start() override;
  void stop() override;
  void publish(core::message msg, std::function<void(publish_status)> done) override;
  void subscribe(std::string_view channel) override;
  void unsubscribe(std::string_view channel) override;
  bool await_subscribed(std::string_view channel, std::function<void()> ready) override;
  void history(history_request req, std::function<void(history_result)> done) override;
  void add_presence(std::string channel, core::presence_member m, bool announce) override;
  void remove_presence(std::string channel, core::presence_member m, bool announce) override;
  void presence(std::string channel, std::size_t max, std::function<void(presence_result)> done) override;
  void presence_stats(std::string channel, std::function<void(presence_stats_result)> done) override;
  void control(control_message msg, std::function<void(publish_status)> done) override;
  bool healthy() const override;          // every shard has both connections up
  std::string describe() const override;  // "redis 2 shards, 2 up"

  std::vector<redis_shard_stats> stats() const;  // any thread
  void append_metrics(std::string& out) const override;

  // The shard of a channel: FNV-1a (64-bit) of the channel name, mapped to [0, shards) by Jump Consistent
  // Hash (Lamping & Veach), as Centrifugo shards its Redis engine. Stable across nodes, restarts and
  // versions; adding an instance to the end of the list moves only about 1/N of the channels.
  static std::size_t shard_of(std::string_view channel, std::size_t shards);

 private:
  template <class Handler>
  bool post_if_accepting(Handler&& h);
  redis_shard& shard_for(std::string_view channel) { return *shards_[shard_of(channel, shards_.size())]; }
  // Whether the channel's rule lets its members' leaves be announced (when a read finds them expired).
  bool announces(std::string_view channel) const;
  std::size_t join_leave_limit(std::string_view channel) const;
  redis_publish_request make_request(const core::message& msg) const;
  presence_target presence_target_of(const std::string& channel, bool announce) const;
  // Cluster: posts `fn(done)` to the broker thread, or answers `unavailable` once stopping.
  void cluster_publish(core::message msg, std::function<void(publish_status)> done);
  template <class Done, class Fn>
  void on_cluster(Done done, Fn fn);

  delivery_sink& sink_;
  const redis_options opts_;
  const bool any_history_ = opts_.channels.any_history();
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::unique_ptr<redis_shard>> shards_;  // after ioc_: destroyed before it
  // With a redis+cluster:// URL instead of shards_: routes every operation on the broker thread.
  std::unique_ptr<redis_cluster> cluster_;
  std::thread thread_;
  std::mutex gate_;
  bool accepting_ = true;  // guarded by gate_; false once stop() began
};

// The factory the server calls for `--broker redis`: parses REDIS_URL (throws std::invalid_argument naming a
// bad entry) and builds the broker.
std::unique_ptr<broker> make_redis_broker(delivery_sink& sink, std::string_view redis_url,
                                          redis_options opts = {});

}  // namespace bc::broker
