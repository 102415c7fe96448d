#pragma once
// One connection (redis_link) to one Redis instance, kept up by reconnecting with backoff.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <spdlog/common.h>

#include "broker/redis_link.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_url.hpp"
#include "core/local_counter.hpp"

namespace bc::broker {

// Owns at most one redis_link at a time and re-creates it after every loss, waiting an
// exponential, jittered backoff between attempts. The connection is role-agnostic; its owner drives the
// protocol:
//
//   connect ──TCP (and TLS) up──> AUTH (when configured), then `on_open(link)`: the owner queues its
//           <──lost──── handshake; owner calls mark_ready() once it is answered (ready() turns true)
//   lost/drop: the link has run every pending callback with a null reply, then `on_close()`; retry after
//   backoff
//
// The endpoint's `tls` (a rediss:// entry) makes every connection TLS, with redis_options::tls_context.
//
// A handshake that does not complete within `connect_timeout` (an unreachable or hung server) is dropped and
// retried like any other failure.
//
// Thread-safety: everything runs on the io_context's one thread, except ready() and the counters, which any
// thread may read. The owner must keep this object alive until the io_context has finished running.
class redis_connection {
 public:
  using open_handler = std::function<void(redis_link*)>;
  using close_handler = std::function<void()>;

  redis_connection(boost::asio::io_context& ioc, const redis_endpoint& endpoint, const redis_options& opts,
                   std::string name, open_handler on_open, close_handler on_close);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  void start();
  void stop();  // closes the link (pending callbacks run with null replies) and stops reconnecting
  void mark_ready();
  // Closes the link now (its pending callbacks run with null replies) and reconnects after the backoff. Safe
  // from inside one of the link's callbacks, but drop_later is the habit there (the caller's own state may
  // not expect the null replies yet).
  void drop(const std::string& why);
  void drop_later(std::string why);
  // Drops the connection if there is one and connects again at once, without the backoff: the server moved
  // (a Sentinel failover), so waiting for the old one to come back would only lengthen the outage.
  void reconnect_now(const std::string& why);
  // Called after every loss and every failed attempt (while not stopped), before the retry is scheduled.
  void on_lost(std::function<void()> hook) { on_lost_ = std::move(hook); }
  // A callback got a null reply: the link is being torn down and will report the loss only after
  // every pending callback ran. Stop reporting ready() now, so that nobody answered `unavailable` sees it
  // still up.
  void going_down() { ready_.store(false, std::memory_order_relaxed); }

  // The link once it is up and AUTH is queued (commands may be sent); null otherwise.
  redis_link* open_context() const { return open_ ? link_.get() : nullptr; }
  bool ready() const { return ready_.load(std::memory_order_relaxed); }
  std::uint64_t reconnects() const { return reconnects_.get(); }
  // Attempts that ended before the connection was ready: refused, timed out, AUTH rejected.
  std::uint64_t connect_failures() const { return connect_failures_.get(); }
  const std::string& name() const { return name_; }
  // For logging a failure that repeats on every attempt while Redis stays misconfigured: loud on the first
  // attempt and about once a minute, quiet (debug) in between.
  spdlog::level::level_enum failure_level() const;

 private:
  static void on_auth_reply(redis_link* link, void* reply, void* privdata);

  void connect();
  void opened();
  void lost(const std::string& why);
  void schedule_retry();

  boost::asio::io_context& ioc_;
  const redis_endpoint& endpoint_;
  const redis_options& opts_;
  std::string name_;  // for logs: "redis shard 0 publish (127.0.0.1:6379)"
  open_handler on_open_;
  close_handler on_close_;
  std::function<void()> on_lost_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer handshake_timer_;

  std::shared_ptr<redis_link> link_;
  std::uint64_t generation_ = 0;  // one per link, so that late timers and posts find out they are stale
  bool open_ = false;
  bool stopped_ = true;
  bool ever_ready_ = false;
  bool established_ = false;  // this link was marked ready (unlike ready_, not cleared by going_down())
  std::atomic<bool> ready_{false};
  std::chrono::milliseconds backoff_;
  unsigned failures_in_row_ = 0;
  std::minstd_rand rng_;
  core::local_counter reconnects_;
  core::local_counter connect_failures_;
};

}  // namespace bc::broker
