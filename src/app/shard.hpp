#pragma once
// One worker thread: its io_context, its hub (channel index), its network state and its inbox.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/hub.hpp"
#include "net/listener.hpp"
#include "net/worker.hpp"
#include "protocol/client_session.hpp"
#include "protocol/session_stats.hpp"

namespace bc::app {

class shard {
 public:
  shard(std::uint32_t index, core::interest_listener* interest, protocol::publisher& pub,
        broker::broker& broker, const auth::jwt_verifier& verifier, protocol::session_limits limits,
        net::node_shared& shared);
  ~shard();

  // Called from any thread. Publications queue up and the shard drains them all in one task: one post per
  // burst, not per message, and every connection they touch is written once per drain.
  void push(core::publication_ptr pub);

  void start();  // runs the thread
  void join();

  boost::asio::io_context& ioc() { return ioc_; }
  net::worker& worker() { return worker_; }
  core::hub& hub() { return hub_; }
  protocol::session_stats& stats() { return stats_; }
  std::shared_ptr<net::listener> listener;

 private:
  void drain();

  boost::asio::io_context ioc_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  core::hub hub_;
  protocol::session_stats stats_;
  protocol::session_services services_;
  net::worker worker_;
  std::thread thread_;

  // The inbox: the only lock on the delivery path, held for a push_back or a swap, never during delivery.
  std::mutex inbox_mutex_;
  std::vector<core::publication_ptr> inbox_;
  bool drain_scheduled_ = false;
  std::vector<core::publication_ptr> draining_;  // drain()'s batch, kept to reuse its capacity
};

}  // namespace bc::app
