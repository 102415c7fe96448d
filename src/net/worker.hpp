#pragma once
// One network thread's state: its io_context, its sessions, its shared read buffer and the sessions with
// output waiting for this turn of the loop.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/local_counter.hpp"
#include "net/deflate_context.hpp"
#include "net/net_config.hpp"
#include "net/net_stats.hpp"
#include "net/send_batch.hpp"
#include "protocol/client_session.hpp"

namespace bc::net {

class ws_session;

// Node-wide, shared by all workers; everything in it is thread-safe or immutable after start.
struct node_shared {
  const net_config& config;
  std::atomic<std::size_t> connections{0};  // open WebSocket connections, for max_connections
  explicit node_shared(const net_config& c) : config(c) {}
};

// Owned by its thread; nothing here is touched from another thread.
class worker {
 public:
  worker(boost::asio::io_context& ioc, protocol::session_services& services, node_shared& shared);
  ~worker();

  boost::asio::io_context& ioc() { return ioc_; }
  protocol::session_services& services() { return services_; }
  const net_config& config() const { return shared_.config; }
  node_shared& shared() { return shared_; }
  net_stats& stats() { return stats_; }

  // permessage-deflate for every session of this thread that negotiated it.
  deflate_context& deflate() { return deflate_; }

  // Scratch space every session of this thread reads into: an idle connection holds no read buffer.
  std::uint8_t* read_buffer() { return read_buffer_.data(); }
  std::size_t read_buffer_size() const { return read_buffer_.size(); }

  // Sessions sit in a timer wheel by the time of their next deadline (auth, ping, idle, token expiry, close
  // handshake): a tick visits only those due, not every connection. add() schedules the first check;
  // reschedule() after anything that may bring a deadline forward (one moved later is found on the visit).
  void add(ws_session& s);
  void remove(ws_session& s);
  void reschedule(ws_session& s);

  // A session with new output registers here once; flush_dirty() then writes each of them once, so frames
  // queued in one turn of the loop leave in one gather-write per connection.
  void mark_dirty(std::shared_ptr<ws_session> s) { dirty_.push_back(std::move(s)); }
  void flush_dirty();

  // Starts the wheel turning: one slot per `period`, the granularity of every deadline.
  void start_ticker(std::chrono::milliseconds period);
  // Starts the close handshake (1001) on every session, after the answers to its publishes in flight; from
  // now on publishes (REST and WebSocket) answer Unavailable.
  void close_all();
  // Tears down every session still open, at once: for after the thread has stopped, before the io_context
  // dies. Its pending handlers still hold the sessions and are destroyed with the io_context, after this
  // worker and the hub are gone: a session torn down here touches neither then.
  void abort_all();
  bool stopping() const { return stopping_; }

  // REST publishes handed to the broker and not answered yet: shutdown waits for them. Written by this
  // thread only; read by the shutdown poll on another.
  void rest_publish_started() { rest_in_flight_.add(); }
  void rest_publish_done() { rest_in_flight_.sub(); }
  std::uint64_t rest_in_flight() const { return rest_in_flight_.get(); }

 private:
  void on_tick();
  void write_batched();
  void submit_batch();
  void link(ws_session& s, std::size_t slot);
  void unlink(ws_session& s);

  boost::asio::io_context& ioc_;
  protocol::session_services& services_;
  node_shared& shared_;
  net_stats stats_;
  std::vector<std::uint8_t> read_buffer_;
  deflate_context deflate_;
  std::vector<std::shared_ptr<ws_session>> dirty_;
  std::vector<std::shared_ptr<ws_session>> flushing_;
  std::unique_ptr<send_batch> batch_;  // opened on first use, while try_batch_
  struct batched_write {
    ws_session* session;
    std::size_t bytes;
  };
  std::vector<batched_write> batched_;  // the sessions in batch_, in order
  // Slot -> intrusive list of the sessions to visit when the wheel reaches it. Every open session is in
  // exactly one slot. A deadline beyond the wheel's span goes to its farthest slot and is looked at again.
  std::vector<ws_session*> wheel_;
  std::uint64_t tick_ = 0;  // ticks so far; the slot being visited is tick_ % wheel_.size()
  std::size_t sessions_ = 0;
  boost::asio::steady_timer ticker_;
  std::chrono::milliseconds period_{250};
  bool stopping_ = false;
  core::local_counter rest_in_flight_;
  bool try_batch_;  // false: io_uring off, refused or failed
};

}  // namespace bc::net
