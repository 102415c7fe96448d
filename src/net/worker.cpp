#include "net/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "net/ws_session.hpp"

namespace bc::net {

namespace {
constexpr std::size_t wheel_slots = 512;  // 128 s at the default 250 ms tick
constexpr std::uint32_t no_slot = ~std::uint32_t{0};
// Below this many connections to write, one sendmsg each: batching 5 per turn (scenario c) measured no
// better through the ring, and small flushes (replies, a few subscribers) keep the simpler path.
constexpr std::size_t min_batch = 16;
}  // namespace

worker::worker(boost::asio::io_context& ioc, protocol::session_services& services, node_shared& shared)
    : ioc_(ioc),
      services_(services),
      shared_(shared),
      read_buffer_(64 * 1024 + 64),
      deflate_(shared.config.compression_min_size, shared.config.compression_level),
      wheel_(wheel_slots, nullptr),
      ticker_(ioc),
      try_batch_(shared.config.io_uring) {}

worker::~worker() = default;

void worker::add(ws_session& s) {
  ++sessions_;
  reschedule(s);
}

void worker::remove(ws_session& s) {
  if (s.wheel_slot_ == no_slot) return;
  unlink(s);
  --sessions_;
}

void worker::reschedule(ws_session& s) {
  if (s.state_ == ws_session::state::closed) return;  // torn down: out of the wheel for good
  if (s.wheel_slot_ != no_slot) unlink(s);
  const auto now = std::chrono::steady_clock::now();
  const auto wait = s.next_due(now) - now;
  // Round up: visiting a little early only costs a look and a new slot; at least one slot ahead, so that a
  // session rescheduled during a visit is not visited twice in one tick.
  const auto ticks = wait <= wait.zero() ? 1 : (wait + period_ - std::chrono::nanoseconds(1)) / period_;
  const auto ahead = static_cast<std::uint64_t>(std::clamp<std::int64_t>(ticks, 1, wheel_slots - 1));
  link(s, static_cast<std::size_t>((tick_ + ahead) % wheel_slots));
}

void worker::link(ws_session& s, std::size_t slot) {
  s.wheel_slot_ = static_cast<std::uint32_t>(slot);
  s.prev_ = nullptr;
  s.next_ = wheel_[slot];
  if (s.next_) s.next_->prev_ = &s;
  wheel_[slot] = &s;
}

void worker::unlink(ws_session& s) {
  if (s.prev_)
    s.prev_->next_ = s.next_;
  else
    wheel_[s.wheel_slot_] = s.next_;
  if (s.next_) s.next_->prev_ = s.prev_;
  s.prev_ = s.next_ = nullptr;
  s.wheel_slot_ = no_slot;
}

void worker::flush_dirty() {
  // flush() may queue more (close after a drained close frame): loop until nothing is dirty.
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    if (try_batch_ && flushing_.size() >= min_batch) write_batched();
    for (auto& s : flushing_) s->flush_now();  // the rest of each queue, closing, TLS, errors
    flushing_.clear();
  }
}

void worker::write_batched() {
  if (!batch_) {
    // Opened here, on the thread that submits, the first time a fan-out is large enough.
    std::string why;
    batch_ = send_batch::open(why);
    if (!batch_) {
      try_batch_ = false;
      static std::once_flag logged;
      std::call_once(logged, [&] {
        spdlog::warn("io_uring unavailable ({}): writing with one sendmsg per connection", why);
      });
      return;
    }
  }
  for (auto& s : flushing_) {
    iovec* iov = batch_->next_iov();
    const std::size_t n = s->gather_for_batch(iov, send_batch::max_iov);
    if (n == 0) continue;
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) bytes += iov[i].iov_len;
    batch_->add(s->socket_.native_handle(), n);
    batched_.push_back({s.get(), bytes});
    if (batch_->full()) {
      submit_batch();
      if (!batch_) return;
    }
  }
  submit_batch();
}

void worker::submit_batch() {
  const auto results = batch_->submit();
  stats_.batched_sends.add(results.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    batched_[i].session->batch_written(results[i], batched_[i].bytes);
  }
  batched_.clear();
  if (batch_->failed()) {
    spdlog::warn("io_uring submission failed: writing with one sendmsg per connection from now on");
    batch_.reset();
    try_batch_ = false;
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
  const std::size_t slot = ++tick_ % wheel_slots;
  while (ws_session* s = wheel_[slot]) {
    const auto keep = s->shared_from_this();  // a teardown below must not end it while we look at it
    unlink(*s);
    s->on_tick(now);  // may tear it down (remove() then finds it unlinked) or reschedule it already
    if (s->state_ != ws_session::state::closed) reschedule(*s);
  }
  flush_dirty();
  start_ticker(period_);
}

void worker::close_all() {
  // The ticker keeps running: it enforces the close-handshake deadline of every session closed here.
  // Collected first: closing moves a session to another slot.
  stopping_ = true;
  std::vector<std::shared_ptr<ws_session>> all;
  all.reserve(sessions_);
  for (ws_session* head : wheel_) {
    for (ws_session* s = head; s != nullptr; s = s->next_) all.push_back(s->shared_from_this());
  }
  for (auto& s : all) s->close_for_shutdown();
  flush_dirty();
}

void worker::abort_all() {
  for (ws_session* head : wheel_) {
    while (head != nullptr) {
      ws_session* s = head;
      head = s->next_;
      s->teardown(close_reason::shutdown);  // unlinks s
    }
  }
}

}  // namespace bc::net
