#pragma once
// One Redis instance of the Redis broker: its publish and subscribe connections and this node's channels on it.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "broker/broker.hpp"
#include "broker/redis_connection.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_url.hpp"
#include "core/local_counter.hpp"

struct redisAsyncContext;

namespace bc::broker {

// A point-in-time copy of one shard's state and counters (for metrics and tests).
struct redis_shard_stats {
  std::string address;
  bool publish_up = false;
  bool subscribe_up = false;
  std::uint64_t published = 0;         // PUBLISHes Redis acknowledged
  std::uint64_t publish_failures = 0;  // publishes answered `unavailable`
  std::uint64_t received = 0;          // messages that arrived from Redis
  std::uint64_t invalid = 0;           // messages dropped: not a readable envelope
  std::uint64_t reconnects = 0;        // connections (publish or subscribe) re-established after a loss
  std::uint64_t channels = 0;          // channels this node is subscribed to on this shard
  std::uint64_t in_flight = 0;         // PUBLISHes sent, reply not yet received
};

// Publishing: one connection, PUBLISHes pipelined in call order. Their replies arrive in the same order, so the
// completions wait in a FIFO (`in_flight_`): a reply completes the oldest one `ok`; when the connection is lost
// hiredis runs every remaining callback with a null reply, completing them `unavailable`. A watchdog drops both
// connections when the oldest PUBLISH waits longer than `publish_timeout` (a hung Redis), so nothing waits forever.
//
// Subscribing: one connection holding a SUBSCRIBE for each channel with local interest (`channels_`). After
// every (re)connect the whole set is subscribed again in one pipeline, followed by the shard's anchor channel;
// the anchor's confirmation, the last to arrive, marks the connection ready. The anchor also keeps the
// connection's subscription count above zero, so hiredis 0.14 never leaves subscribed mode between an
// UNSUBSCRIBE and a re-SUBSCRIBE of the same channel (which would trip its assertions).
//
// Thread-safety: every member function runs on the broker thread, except the const ones (atomics).
class redis_shard {
 public:
  using message_handler = std::function<void(redis_shard& from, std::string_view redis_channel,
                                             std::string_view bytes)>;
  using publish_done = std::function<void(publish_status)>;

  redis_shard(boost::asio::io_context& ioc, std::size_t index, redis_endpoint endpoint, const redis_options& opts,
              message_handler on_message);
  ~redis_shard();
  redis_shard(const redis_shard&) = delete;
  redis_shard& operator=(const redis_shard&) = delete;

  void start();
  void stop();  // in-flight publishes complete `unavailable`

  void publish(const std::string& redis_channel, const std::string& envelope, publish_done done);
  void subscribe(const std::string& redis_channel);
  void unsubscribe(const std::string& redis_channel);
  void count_invalid() { invalid_.add(); }

  // Any thread.
  bool publish_ready() const { return pub_.ready(); }
  bool up() const { return pub_.ready() && sub_.ready(); }
  std::size_t index() const { return index_; }
  void count_rejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }
  redis_shard_stats stats() const;

 private:
  struct in_flight {
    publish_done done;
    std::chrono::steady_clock::time_point sent;
  };

  void on_pub_open(redisAsyncContext* ac);
  void on_pub_close();
  void on_sub_open(redisAsyncContext* ac);
  static void on_ping_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_publish_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_sub_reply(redisAsyncContext* ac, void* reply, void* privdata);
  void send_subscribe(redisAsyncContext* ac, const char* command, const std::string* first, std::size_t n);
  void do_watch();
  void on_watch();

  const std::size_t index_;
  const redis_endpoint endpoint_;
  const redis_options& opts_;
  const std::string anchor_;  // a Redis channel no Broadcaster channel maps to
  message_handler on_message_;
  std::deque<in_flight> in_flight_;
  std::unordered_set<std::string> channels_;  // Redis channel names with local interest
  boost::asio::steady_timer watchdog_;
  bool stopped_ = true;
  redis_connection pub_;
  redis_connection sub_;

  core::local_counter published_;
  core::local_counter failures_;
  core::local_counter received_;
  core::local_counter invalid_;
  core::local_counter channel_count_;
  core::local_counter in_flight_count_;
  std::atomic<std::uint64_t> rejected_{0};  // publishes refused before reaching the broker thread (any thread)
};

}  // namespace bc::broker
