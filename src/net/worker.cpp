#include "net/worker.hpp"

#include "net/ws_session.hpp"

namespace bc::net {

worker::worker(boost::asio::io_context& ioc, protocol::session_services& services, node_shared& shared)
    : ioc_(ioc), services_(services), shared_(shared), read_buffer_(64 * 1024 + 64), ticker_(ioc) {}

worker::~worker() = default;

void worker::add(ws_session& s) {
  s.next_ = first_;
  s.prev_ = nullptr;
  if (first_) first_->prev_ = &s;
  first_ = &s;
  ++sessions_;
}

void worker::remove(ws_session& s) {
  if (s.prev_)
    s.prev_->next_ = s.next_;
  else
    first_ = s.next_;
  if (s.next_) s.next_->prev_ = s.prev_;
  s.prev_ = s.next_ = nullptr;
  --sessions_;
}

void worker::flush_dirty() {
  // flush() may queue more (close after a drained close frame): loop until nothing is dirty.
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    for (auto& s : flushing_) s->flush_now();
    flushing_.clear();
  }
}

void worker::start_ticker(std::chrono::milliseconds period) {
  period_ = period;
  ticker_.expires_after(period_);
  ticker_.async_wait([this](boost::system::error_code ec) {
    if (!ec) on_tick();
  });
}

void worker::on_tick() {
  const auto now = std::chrono::steady_clock::now();
  for (ws_session* s = first_; s != nullptr;) {
    ws_session* next = s->next_;  // on_tick may remove s from the list
    s->on_tick(now);
    s = next;
  }
  flush_dirty();
  start_ticker(period_);
}

void worker::close_all() {
  // The ticker keeps running: it enforces the close-handshake deadline of every session closed here.
  stopping_ = true;
  for (ws_session* s = first_; s != nullptr;) {
    ws_session* next = s->next_;
    s->close_for_shutdown();
    s = next;
  }
  flush_dirty();
}

}  // namespace bc::net
