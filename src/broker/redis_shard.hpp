#pragma once
// One Redis instance of the Redis broker: its publish and subscribe connections and this node's channels on
// it.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

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
  std::uint64_t connect_failures = 0;  // attempts to (re)connect that failed before the connection was ready
  std::uint64_t channels = 0;          // channels this node is subscribed to on this shard
  std::uint64_t in_flight = 0;         // publishes accepted, not yet answered
};

// Publishing: one connection, PUBLISHes pipelined in call order. Their replies arrive in the same order, so
// the completions wait in a FIFO (`in_flight_`): a reply completes the oldest one `ok`; when the connection
// is lost hiredis runs every remaining callback with a null reply, completing them `unavailable`. A watchdog
// drops both connections when the oldest PUBLISH waits longer than `publish_timeout` (a hung Redis), so
// nothing waits forever; an idle publish connection sends a heartbeat PING through the same FIFO so that the
// watchdog also covers it.
//
// Subscribing: one connection holding a SUBSCRIBE for each channel with local interest (`channels_`). After
// every (re)connect the whole set is subscribed again in one pipeline, followed by the shard's anchor
// channel; the anchor's confirmation, the last to arrive, marks the connection ready. The anchor also keeps
// the connection's subscription count above zero, so hiredis 0.14 never leaves subscribed mode between an
// UNSUBSCRIBE and a re-SUBSCRIBE of the same channel (which would trip its assertions).
//
// Subscribe before publish: Redis orders nothing across two connections, so a PUBLISH sent right after this
// node's SUBSCRIBE of the same channel could overtake it and miss the node's own subscribers (a client that
// subscribes and then publishes would not get its message). A publish to a channel whose SUBSCRIBE is still
// unconfirmed (`unconfirmed_`) therefore waits in `held_` until the confirmation arrives, then goes out in
// order; later publishes to that channel queue behind it. If the subscribe connection closes, or a
// confirmation takes longer than `publish_timeout`, held publishes are sent anyway (the node's subscribers
// cannot receive anything then).
//
// Subscribe before reply: a client told "subscribed" expects every message published afterwards, on any node.
// Until Redis confirms the node's SUBSCRIBE, a message published on another node would not come back here, so
// the client's subscribe reply waits too (`waiters_`, see broker::await_subscribed), bounded the same way.
//
// Thread-safety: every member function runs on the broker thread, except the const ones (atomics).
class redis_shard {
 public:
  using message_handler =
      std::function<void(redis_shard& from, std::string_view redis_channel, std::string_view bytes)>;
  using publish_done = std::function<void(publish_status)>;

  redis_shard(boost::asio::io_context& ioc, std::size_t index, redis_endpoint endpoint,
              const redis_options& opts, message_handler on_message);
  ~redis_shard();
  redis_shard(const redis_shard&) = delete;
  redis_shard& operator=(const redis_shard&) = delete;

  void start();
  void stop();  // in-flight publishes complete `unavailable`

  void publish(std::string redis_channel, std::string envelope, publish_done done);
  void subscribe(const std::string& redis_channel);
  void unsubscribe(const std::string& redis_channel);
  // Calls `ready` once the channel's SUBSCRIBE is confirmed on the open subscribe connection (at once when
  // it is, or when no connection is open); at the latest when the connection closes or after publish_timeout.
  void await_subscribed(const std::string& redis_channel, std::function<void()> ready);
  void count_invalid() { invalid_.add(); }

  // Any thread.
  bool publish_ready() const { return pub_.ready(); }
  bool up() const { return pub_.ready() && sub_.ready(); }
  std::size_t index() const { return index_; }
  void count_rejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }
  redis_shard_stats stats() const;

 private:
  struct in_flight {
    publish_done done;  // empty for a heartbeat PING
    std::chrono::steady_clock::time_point sent;
    std::size_t bytes;
  };
  struct waiter {
    std::function<void()> ready;
    std::chrono::steady_clock::time_point since;
  };
  struct held {
    std::string envelope;
    publish_done done;
    std::chrono::steady_clock::time_point since;
  };

  void on_pub_open(redisAsyncContext* ac);
  void on_pub_close();
  void on_sub_open(redisAsyncContext* ac);
  void on_sub_close();
  void confirmed(const std::string& redis_channel);
  void send_publish(const std::string& redis_channel, const std::string& envelope, publish_done done);
  void release(const std::string& redis_channel);
  void release_all();
  void wake(const std::string& redis_channel);
  void wake_all();
  static void on_ping_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_publish_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_sub_reply(redisAsyncContext* ac, void* reply, void* privdata);
  void send_subscribe(redisAsyncContext* ac, const char* command, const std::string* first, std::size_t n);
  void do_watch();
  void on_watch();
  void check_subscribe_timeout(std::chrono::steady_clock::time_point now);
  void complete_front(publish_status status);

  const std::size_t index_;
  const redis_endpoint endpoint_;
  const redis_options& opts_;
  const std::string anchor_;  // a Redis channel no Broadcaster channel maps to
  message_handler on_message_;
  std::deque<in_flight> in_flight_;
  std::size_t in_flight_bytes_ = 0;
  std::chrono::steady_clock::time_point last_sent_{};
  std::unordered_set<std::string> channels_;  // Redis channel names with local interest
  std::unordered_map<std::string, unsigned>
      unconfirmed_;  // SUBSCRIBEs sent on the open connection, unanswered
  std::unordered_map<std::string, std::deque<held>> held_;
  std::unordered_map<std::string, std::vector<waiter>> waiters_;  // subscribe replies held until confirmed
  std::size_t held_count_ = 0;
  std::size_t held_bytes_ = 0;
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
  // Publishes refused before reaching the broker thread (written from any thread).
  std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace bc::broker
