#include "app/shard.hpp"

#include <pthread.h>

#include <boost/asio/post.hpp>
#include <string>

namespace bc::app {

namespace {
// Bounded waits in a row without a hand-over before the thread goes back to waiting without limit. A timed
// wake-up that finds nothing is pure cost: once hand-overs come less often than the waits run out, waking
// the thread for each is cheaper (at 100 publishes/s, staying up meant 4x the context switches). Two, not
// one, so that a single long gap at a high rate does not cost a wake-up. A new shard starts there.
constexpr unsigned max_quiet_waits = 2;

thread_local const shard* this_thread_shard = nullptr;  // the shard whose thread this is, if any

// What a queued publication holds on to, for the inbox's bound: its frame pieces and what every publication
// costs besides (the control block, the inbox slot).
std::size_t queued_bytes(const core::publication& pub) {
  return pub.channel.size() + pub.head.size() + pub.tail.size() + 160;
}
}  // namespace

shard::shard(std::uint32_t index, engine::node& node, protocol::publisher& pub,
             const auth::jwt_verifier& verifier, protocol::session_limits limits, net::node_shared& shared,
             std::chrono::milliseconds handover_delay, std::size_t inbox_limit)
    : work_(ioc_.get_executor()),
      hub_(index, &node.interest_listener()),
      engine_(node, hub_),
      services_{engine_, pub, verifier, limits, stats_},
      worker_(ioc_, services_, shared),
      inbox_limit_(inbox_limit),
      handover_delay_(handover_delay),
      quiet_waits_(max_quiet_waits) {}

shard::~shard() {
  join();
  worker_.abort_all();
  // The listener's acceptor belongs to ioc_, which is declared (and so destroyed) after it: release our hold
  // now, while ioc_ is alive. A pending accept handler that still holds it lets go when ioc_ shuts down.
  listener.reset();
}

void shard::start() {
  thread_ = std::thread([this] { run(); });
  // Named for top -H, ps -L and perf (the kernel keeps 15 characters), from here rather than by the thread
  // itself, so that the name is there once start() returns.
  const std::string name = "bc-worker-" + std::to_string(hub_.shard_index());
  pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
}

// Asio's run(), one handler at a time, with a drain of the inbox posted whenever it holds something: behind
// the handlers already queued, as a post from the pusher would be, so that publications arriving while the
// thread is busy pile up and leave together (several frames per connection per write under overload).
// While hand-overs keep coming, the thread waits at most handover_delay_ for its own events and pushers leave
// it alone: on this kind of VM, waking a sleeping thread from another core (an IPI through the hypervisor,
// and the waker's eventfd write and epoll_ctl) costs as much as the deliveries it carries. Once they stop, it
// waits without limit and the next push wakes it with a post.
void shard::run() {
  this_thread_shard = this;
  for (;;) {
    if (!drain_posted_ && pending_.load()) {
      drain_posted_ = true;
      boost::asio::post(ioc_, [this] {
        drain_posted_ = false;
        // Running, not asleep: pushes from now on are seen by the loop without a wake-up post.
        asleep_.store(false);
        drain();
      });
    }
    if (handover_delay_.count() > 0 && quiet_waits_ < max_quiet_waits) {
      if (ioc_.run_one_for(handover_delay_) == 0 && !pending_.load()) ++quiet_waits_;
    } else {
      asleep_.store(true);
      if (!drain_posted_ && pending_.load()) {
        asleep_.store(false);
        continue;
      }
      ioc_.run_one();
      asleep_.store(false);
    }
    if (ioc_.stopped()) return;
  }
}

void shard::join() {
  if (thread_.joinable()) {
    work_.reset();
    // Behind what is queued: answers the broker posted while it stopped (publishes completed Unavailable)
    // still reach their connections.
    boost::asio::post(ioc_, [this] { ioc_.stop(); });
    thread_.join();
  }
}

void shard::push(core::publication_ptr pub) {
  {
    std::lock_guard lock(inbox_mutex_);
    const std::size_t bytes = inbox_bytes_.load(std::memory_order_relaxed) + queued_bytes(*pub);
    inbox_bytes_.store(bytes, std::memory_order_relaxed);
    if (bytes > inbox_peak_.load(std::memory_order_relaxed))
      inbox_peak_.store(bytes, std::memory_order_relaxed);
    inbox_.push_back(std::move(pub));
    // Only other threads' hand-overs are worth staying up for: our own are drained after the handler.
    if (this_thread_shard != this) handed_over_ = true;
    pending_.store(true);
  }
  // One post per sleep: whoever clears asleep_ sends it.
  if (asleep_.load() && asleep_.exchange(false)) {
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    boost::asio::post(ioc_, [] {});
  }
}

void shard::control(const broker::control_message& msg) {
  boost::asio::post(ioc_, [this, msg] { engine_.on_control(msg); });
}

void shard::drain() {
  {
    std::lock_guard lock(inbox_mutex_);
    draining_.swap(inbox_);
    inbox_bytes_.store(0, std::memory_order_relaxed);
    pending_.store(false);
    if (handed_over_) {
      quiet_waits_ = 0;
      handovers_.add();
    }
    handed_over_ = false;
  }
  for (const auto& pub : draining_) {
    // Every connection's queue holds a reference until its frame is written. With the shared control block,
    // all threads fanning out the same message would bounce its counter between cores on every delivery: this
    // thread's references share a control block of their own (the aliasing constructor), which holds one
    // reference to the shared one.
    const core::publication_ptr local(std::make_shared<core::publication_ptr>(pub), pub.get());
    hub_.deliver(local);
  }
  draining_.clear();
  worker_.flush_dirty();
}

}  // namespace bc::app
