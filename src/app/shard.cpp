#include "app/shard.hpp"

#include <pthread.h>

#include <boost/asio/post.hpp>
#include <string>

namespace bc::app {

shard::shard(std::uint32_t index, core::interest_listener* interest, protocol::publisher& pub,
             broker::broker& broker, const auth::jwt_verifier& verifier, protocol::session_limits limits,
             net::node_shared& shared)
    : work_(ioc_.get_executor()),
      hub_(index, interest),
      services_{hub_, pub, broker, verifier, limits, stats_},
      worker_(ioc_, services_, shared) {}

shard::~shard() {
  join();
  worker_.abort_all();
  // The listener's acceptor belongs to ioc_, which is declared (and so destroyed) after it: release our hold
  // now, while ioc_ is alive. A pending accept handler that still holds it lets go when ioc_ shuts down.
  listener.reset();
}

void shard::start() {
  thread_ = std::thread([this] {
    // Named for top -H, ps -L and perf; the kernel keeps 15 characters.
    const std::string name = "bc-worker-" + std::to_string(hub_.shard_index());
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    ioc_.run();
  });
}

void shard::join() {
  if (thread_.joinable()) {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
}

void shard::push(core::publication_ptr pub) {
  bool schedule = false;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_.push_back(std::move(pub));
    schedule = !drain_scheduled_;
    drain_scheduled_ = true;
  }
  if (schedule) boost::asio::post(ioc_, [this] { drain(); });
}

void shard::drain() {
  {
    std::lock_guard lock(inbox_mutex_);
    draining_.swap(inbox_);
    drain_scheduled_ = false;
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
