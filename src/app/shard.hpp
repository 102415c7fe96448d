#pragma once
// One worker thread: its io_context, its hub (channel index), its network state and its inbox.

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/hub.hpp"
#include "core/local_counter.hpp"
#include "engine/local_thread.hpp"
#include "engine/node.hpp"
#include "engine/thread_engine.hpp"
#include "net/listener.hpp"
#include "net/worker.hpp"
#include "protocol/client_session.hpp"
#include "protocol/session_stats.hpp"

namespace bc::app {

class shard final : public engine::local_thread {
 public:
  shard(std::uint32_t index, engine::node& node, protocol::publisher& pub, const auth::jwt_verifier& verifier,
        protocol::session_limits limits, net::node_shared& shared, std::chrono::milliseconds handover_delay,
        std::size_t inbox_limit = 0);
  ~shard() override;

  // Called from any thread. Publications queue up and the shard drains them all in one task, so every
  // connection they touch is written once per drain. Waking a sleeping thread is what a hand-over costs most
  // on a VM (see run()): while other threads keep handing over, they do not wake this one; it takes their
  // publications when it wakes for its own work, or after handover_delay at most.
  void push(core::publication_ptr pub) override;
  bool may_have(std::uint64_t channel_hash) const override { return hub_.may_have(channel_hash); }

  // The inbox holds inbox_limit bytes or more (never with a limit of 0). Any thread; a hint, since other
  // threads push meanwhile: the limit is exceeded by at most what they push between the check and the push.
  bool inbox_full() const override {
    return inbox_limit_ != 0 && inbox_bytes_.load(std::memory_order_relaxed) >= inbox_limit_;
  }
  std::size_t inbox_bytes() const { return inbox_bytes_.load(std::memory_order_relaxed); }
  // The most the inbox ever held: how close the node came to --inbox-limit.
  std::size_t inbox_peak() const { return inbox_peak_.load(std::memory_order_relaxed); }
  // Publishes refused because this inbox was full; publications from the broker queued over the limit after
  // the longest wait. Rare events, counted from any thread.
  void count_refused() override { refused_.fetch_add(1, std::memory_order_relaxed); }
  void count_overflow() override { overflows_.fetch_add(1, std::memory_order_relaxed); }
  // Posted behind what the thread has queued; the thread's engine finds the user's connections.
  void control(const broker::control_message& msg) override;
  std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  std::uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }

  void start();  // runs the thread
  void join();

  boost::asio::io_context& ioc() { return ioc_; }
  net::worker& worker() { return worker_; }
  core::hub& hub() { return hub_; }
  protocol::session_stats& stats() { return stats_; }
  // Hand-overs: drains that took another thread's publications; wake-ups: the pushes that found the thread
  // in (or running a handler from) a wait without limit and posted to wake it; the rest found it lingering.
  std::uint64_t handovers() const { return handovers_.get(); }
  std::uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }
  // True while the thread waits without a time limit, so that the next push must wake it. For tests.
  bool waiting_unbounded() const { return asleep_.load(); }
  std::shared_ptr<net::listener> listener;

 private:
  void run();
  void drain();

  boost::asio::io_context ioc_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  core::hub hub_;
  engine::thread_engine engine_;
  protocol::session_stats stats_;
  protocol::session_services services_;
  net::worker worker_;
  std::thread thread_;

  // The inbox: the only lock on the delivery path, held for a push_back or a swap, never during delivery.
  std::mutex inbox_mutex_;
  std::vector<core::publication_ptr> inbox_;
  std::vector<core::publication_ptr> draining_;  // drain()'s batch, kept to reuse its capacity
  bool handed_over_ = false;                     // the inbox holds another thread's push (under inbox_mutex_)
  std::atomic<std::size_t> inbox_bytes_{0};      // written under inbox_mutex_, read by anyone
  std::atomic<std::size_t> inbox_peak_{0};       // the same
  const std::size_t inbox_limit_;
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> overflows_{0};
  // A pusher sets pending_ then reads asleep_; the thread sets asleep_ then reads pending_ (both seq_cst), so
  // a publication pushed while the thread goes to sleep is either seen by it or followed by a wake-up post.
  std::atomic<bool> pending_{false};
  std::atomic<bool> asleep_{false};           // in a wait with no time limit: a pusher must wake it
  std::chrono::milliseconds handover_delay_;  // 0: every hand-over wakes the thread at once
  // The thread's own: a drain task is queued, and bounded waits in a row that found no hand-over.
  bool drain_posted_ = false;
  unsigned quiet_waits_;
  core::local_counter handovers_;
  std::atomic<std::uint64_t> wakeups_{0};
};

}  // namespace bc::app
