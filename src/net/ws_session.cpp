#include "net/ws_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <cassert>
#include <cerrno>

#include "net/worker.hpp"
#include "net/ws/close_code.hpp"
#include "net/ws/frame_writer.hpp"
#include "net/ws/utf8.hpp"
#include "protocol/time_format.hpp"

namespace bc::net {

namespace {
constexpr auto close_handshake_timeout = std::chrono::seconds(3);
constexpr int max_reads_per_wakeup = 8;  // fairness between connections of one thread
constexpr std::size_t max_iov = 256;
}  // namespace

ws_session::ws_session(worker& w, boost::asio::ip::tcp::socket socket, byte_stream io, bool compression)
    : w_(w),
      socket_(std::move(socket)),
      io_(std::move(io)),
      parser_(w.config().max_message_size, compression),
      session_(w.services(), *this),
      opened_(std::chrono::steady_clock::now()),
      last_rx_(opened_),
      compression_(compression) {
  w_.add(*this);
  w_.stats().connections.add();
  w_.stats().accepted.add();
  if (spdlog::should_log(spdlog::level::debug)) {
    boost::system::error_code ec;
    const auto peer = socket_.remote_endpoint(ec);
    spdlog::debug("connection opened peer={}:{}", peer.address().to_string(), peer.port());
  }
}

ws_session::~ws_session() {
  if (state_ != state::closed) teardown(close_reason::client_gone);
}

void ws_session::start(std::string_view initial) {
  // The socket comes from the http_session, which made it non-blocking and set TCP_NODELAY already: two
  // system calls per connection saved in a reconnect storm.
  if (!initial.empty()) {
    std::string copy(initial);  // the parser unmasks in place
    if (!consume_input(reinterpret_cast<std::uint8_t*>(copy.data()), copy.size())) return w_.flush_dirty();
  }
  w_.flush_dirty();
  if (state_ != state::closed) wait_readable();
}

void ws_session::wait_readable() {
  if (reading_ || state_ == state::closed || read_paused_) return;
  reading_ = true;
  socket_.async_wait(boost::asio::socket_base::wait_read,
                     [self = shared_from_this()](boost::system::error_code ec) { self->on_readable(ec); });
}

void ws_session::on_readable(boost::system::error_code ec) {
  reading_ = false;
  if (state_ == state::closed) return;
  if (ec) return teardown(gone_reason());
  bool more = false;  // stopped with input possibly left: come back without waiting for readiness
  for (int i = 0; i < max_reads_per_wakeup; ++i) {
    std::size_t n = 0;
    const auto r = io_.read(w_.read_buffer(), w_.read_buffer_size(), n);
    if (r == io_result::ok) {
      w_.stats().bytes_in.add(n);
      if (!consume_input(w_.read_buffer(), n)) break;
      more = i + 1 == max_reads_per_wakeup || io_.pending();
      if (n < w_.read_buffer_size() && !io_.pending()) break;  // drained the socket
      continue;
    }
    if (r == io_result::want_read) break;
    if (r == io_result::want_write) {
      read_wants_write_ = true;
      break;
    }
    return teardown(gone_reason());
  }
  w_.flush_dirty();
  pause_or_resume_reading();
  if (read_wants_write_) return wait_writable();
  if (more && state_ != state::closed && !read_paused_) {
    reading_ = true;
    boost::asio::post(w_.ioc(), [self = shared_from_this()] { self->on_readable({}); });
    return;
  }
  wait_readable();
}

// Returns false when the connection is closing and reading should stop.
bool ws_session::consume_input(std::uint8_t* data, std::size_t len) {
  last_rx_ = std::chrono::steady_clock::now();
  ping_outstanding_ = false;
  consuming_ = true;
  auto result = parser_.feed(std::span<std::uint8_t>(data, len), *this);
  consuming_ = false;
  if (!result.ok) {
    const auto why = result.error == ws::close_code::message_too_big   ? close_reason::message_too_big
                     : result.error == ws::close_code::invalid_payload ? close_reason::invalid_utf8
                                                                       : close_reason::protocol_error;
    start_close(static_cast<std::uint16_t>(result.error), result.reason, why);
    return false;
  }
  if (parser_.idle()) parser_.release_memory();
  return state_ < state::peer_closed;  // not once the client closed, nor after the teardown
}

void ws_session::on_message(ws::opcode op, std::string_view payload) {
  if (state_ >= state::closing) return;
  if (op == ws::opcode::text) {
    session_.on_text(payload);
  } else {
    session_.on_binary();
  }
  if (session_.authenticated() != was_authenticated_) {
    was_authenticated_ = session_.authenticated();
    w_.stats().authenticated.add();
  }
  if (session_.expires_at() != seen_expires_at_) {
    // Authenticated or refreshed: the token's expiry may come before the deadline the wheel holds.
    seen_expires_at_ = session_.expires_at();
    if (state_ < state::closing) w_.reschedule(*this);
  }
}

void ws_session::on_compressed_message(ws::opcode op, std::string_view deflated) {
  if (state_ >= state::closing) return;
  std::string_view payload;
  // Bounded by the same maximum as a plain message: a decompression bomb stops at max + 1 bytes.
  switch (w_.deflate().inflate(deflated, w_.config().max_message_size, payload)) {
    case ws::message_inflater::status::ok:
      break;
    case ws::message_inflater::status::too_big:
      return start_close(static_cast<std::uint16_t>(ws::close_code::message_too_big), "message too big",
                         close_reason::message_too_big);
    case ws::message_inflater::status::corrupt:
      return start_close(static_cast<std::uint16_t>(ws::close_code::protocol_error),
                         "invalid compressed data", close_reason::protocol_error);
  }
  if (op == ws::opcode::text && !ws::is_valid_utf8(payload)) {
    return start_close(static_cast<std::uint16_t>(ws::close_code::invalid_payload),
                       "text message is not valid UTF-8", close_reason::invalid_utf8);
  }
  on_message(op, payload);
}

void ws_session::on_ping(std::string_view payload) {
  if (state_ >= state::closing) return;
  out_.push_control(static_cast<std::uint8_t>(ws::opcode::pong), payload);
  mark_dirty();
}

void ws_session::on_pong(std::string_view) {}

void ws_session::on_close(std::uint16_t code, std::string_view) {
  if (state_ >= state::closing) {
    // Our close was answered: the handshake is complete (a no-op once torn down).
    return teardown(close_why_);
  }
  // Echo the code (RFC 6455 5.5.1) and close once it is written.
  const std::uint16_t echo = code == static_cast<std::uint16_t>(ws::close_code::no_status)
                                 ? static_cast<std::uint16_t>(ws::close_code::normal)
                                 : code;
  start_close(echo, {}, close_reason::client_close, state::peer_closed);
}

void ws_session::send_raw(std::string bytes) {
  out_.push_raw(std::move(bytes));
  mark_dirty();
}

void ws_session::send_text(std::string text) {
  if (state_ >= state::closing) return;
  // Replies are this connection's alone: compressed here, per message, when big enough to be worth it.
  if (compression_) {
    if (std::string deflated = w_.deflate().deflate_message(text); !deflated.empty()) {
      out_.push_compressed_text(std::move(deflated));
      return mark_dirty();
    }
  }
  out_.push_text(std::move(text));
  mark_dirty();
}

void ws_session::send_publication(const core::publication_ptr& pub, std::uint64_t seq) {
  if (state_ >= state::closing) return;
  // Compressed once per publication for every subscriber on every thread (deflate_context); per delivery
  // only the seq's stored block is written.
  const std::string* deflated = compression_ ? &w_.deflate().deflated_tail(*pub) : nullptr;
  if (deflated && deflated->empty()) deflated = nullptr;
  const std::size_t size = deflated ? outbound_queue::compressed_frame_bytes(*pub, seq, deflated->size())
                                    : outbound_queue::publication_frame_bytes(*pub, seq);
  // The limit is on what the client has not taken: before judging, hand the kernel what it will accept now
  // (frames queued earlier in this batch would otherwise count against a client that reads at full speed).
  if (!out_.empty() && out_.bytes() + size > w_.config().outbound_buffer && !writing_) {
    if (!write_now()) return;
  }
  if (!out_.empty() && out_.bytes() + size > w_.config().outbound_buffer) {
    if (w_.config().slow_policy == slow_consumer_policy::drop) {
      // The seq was consumed by the hub already, so the client sees the gap.
      w_.stats().dropped.add();
      if (dropped_++ % 1000 == 0) {
        spdlog::warn("slow consumer: dropped {} message(s), {} bytes queued, policy=drop", dropped_,
                     out_.bytes());
      }
      return;
    }
    w_.stats().dropped.add();
    spdlog::warn("slow consumer: {} bytes queued, policy=disconnect", out_.bytes());
    return drop_next_turn(close_reason::slow_consumer);  // not inside the hub's delivery loop: next turn
  }
  if (deflated) {
    out_.push_compressed_publication(pub, seq, *deflated);
  } else {
    out_.push_publication(pub, seq);
  }
  w_.stats().deliveries.add();
  mark_dirty();
}

void ws_session::close(std::uint16_t code, std::string_view reason) {
  const bool server_api = code == static_cast<std::uint16_t>(ws::close_code::disconnected_by_server);
  start_close(code, reason, server_api ? close_reason::server_api : close_reason::policy);
}

std::function<void(std::function<void()>)> ws_session::make_deferrer() {
  return [weak = weak_from_this(), &ioc = w_.ioc()](std::function<void()> fn) {
    // dispatch runs inline when the broker answers on this thread already (the memory broker does).
    boost::asio::dispatch(ioc, [weak, fn = std::move(fn)] {
      auto self = weak.lock();
      if (!self || self->state_ == state::closed) return;
      fn();
      if (self->state_ == state::draining) self->close_for_shutdown();
      // An answer completed inline while the requests of one read are handled (the embedded broker answers
      // a subscribe at once) waits for the reader's flush: the replies to `auth` and `subscribe` sent
      // together leave in one write, not one each (a send and a client wake-up less per connection in a
      // storm).
      if (!self->consuming_) self->w_.flush_dirty();
    });
  };
}

void ws_session::mark_dirty() {
  if (dirty_ || state_ == state::closed) return;
  dirty_ = true;
  w_.mark_dirty(shared_from_this());
}

// Writes as much of the queue as the socket takes now. Returns false on a write error, after arranging the
// teardown for the next loop turn (this may run inside the hub's delivery loop, which must not be disturbed).
bool ws_session::write_now() {
  iovec iov[max_iov];
  while (!out_.empty() && !writing_) {
    std::size_t n = 0;
    const auto r = io_.write(iov, out_.gather(iov, max_iov), n);
    if (r == io_result::ok) {
      out_.consume(n);
      w_.stats().bytes_out.add(n);
      continue;
    }
    if (r == io_result::want_write || r == io_result::want_read) {
      wait_writable();
      return true;
    }
    drop_next_turn(gone_reason());
    return false;
  }
  return true;
}

std::size_t ws_session::gather_for_batch(iovec* iov, std::size_t max) const {
  // TLS goes through OpenSSL's records: flush_now() writes it.
  if (state_ == state::closed || writing_ || io_.tls() || out_.empty()) return 0;
  return out_.gather(iov, max);
}

void ws_session::batch_written(int result, std::size_t requested) {
  if (result > 0) {
    out_.consume(static_cast<std::size_t>(result));
    w_.stats().bytes_out.add(static_cast<std::size_t>(result));
    if (static_cast<std::size_t>(result) < requested) wait_writable();  // the socket buffer is full
  } else if (result == -EAGAIN) {
    wait_writable();
  }
  // Other errors: flush_now() next meets them again through sendmsg and tears down with the right reason.
}

void ws_session::flush_now() {
  dirty_ = false;
  if (state_ == state::closed || writing_) return;
  if (!write_now() || !out_.empty()) return;
  if (state_ == state::peer_closed) return teardown(close_why_);  // our echo is out: the handshake is done
  if (state_ == state::closing) half_close();
  pause_or_resume_reading();
}

void ws_session::wait_writable() {
  if (writing_) return;
  writing_ = true;
  socket_.async_wait(boost::asio::socket_base::wait_write,
                     [self = shared_from_this()](boost::system::error_code ec) {
                       self->writing_ = false;
                       if (ec || self->state_ == state::closed) return;
                       self->flush_now();
                       if (self->read_wants_write_ && self->state_ != state::closed) {
                         self->read_wants_write_ = false;
                         self->on_readable({});
                         return;
                       }
                       self->w_.flush_dirty();
                     });
}

void ws_session::pause_or_resume_reading() {
  // A client that floods requests without reading the replies gets no more reads until they drain.
  const std::size_t cap = w_.config().outbound_buffer;
  if (!read_paused_ && out_.bytes() > cap) {
    read_paused_ = true;
  } else if (read_paused_ && out_.bytes() <= cap / 2) {
    read_paused_ = false;
    wait_readable();
  }
}

// open/draining -> closing (we close first) or peer_closed (echoing the client's close); a no-op from closing
// on, so that every caller may ask.
void ws_session::start_close(std::uint16_t code, std::string_view reason, close_reason why, state to) {
  if (state_ >= state::closing) return;
  assert(state_ == state::open || state_ == state::draining);
  assert(to == state::closing || to == state::peer_closed);
  state_ = to;
  close_why_ = why;
  close_deadline_ = std::chrono::steady_clock::now() + close_handshake_timeout;
  session_.drop_subscriptions();
  out_.push_control(static_cast<std::uint8_t>(ws::opcode::close),
                    ws::make_close_payload(static_cast<ws::close_code>(code), reason));
  mark_dirty();
  w_.reschedule(*this);  // the close-handshake deadline
  // Replies and publications still queued go first: a drained close frame means the client got them all.
  read_paused_ = false;
}

// open/draining -> closing with no close frame: the connection is dropped (slow consumer, write error). Not
// from inside the hub's delivery loop, which may be running: the teardown is posted to the next turn. From
// closing or peer_closed (a write error while closing) the state stays and the teardown is posted all the
// same.
void ws_session::drop_next_turn(close_reason why) {
  assert(state_ != state::closed && state_ != state::half_closed);
  if (state_ < state::closing) state_ = state::closing;
  boost::asio::post(w_.ioc(), [self = shared_from_this(), why] { self->teardown(why); });
}

// closing -> half_closed: our close frame is out; wait (bounded by the deadline) for the client's.
void ws_session::half_close() {
  assert(state_ == state::closing);
  state_ = state::half_closed;
  io_.shutdown_send();
}

void ws_session::close_for_shutdown() {
  session_.begin_drain();
  // Publishes already with the broker are answered before the close frame (bounded: the broker answers each
  // within its own timeout, and the server's shutdown timeout ends everything).
  // open -> draining; the deferrer calls again after each answer, and the last one moves on to closing.
  if (session_.publishes_in_flight() > 0) {
    if (state_ == state::open) state_ = state::draining;
    return;
  }
  start_close(static_cast<std::uint16_t>(ws::close_code::going_away), "server shutting down",
              close_reason::shutdown);
}

void ws_session::on_tick(std::chrono::steady_clock::time_point now) {
  if (state_ == state::closed) return;
  const auto& cfg = w_.config();
  if (state_ >= state::closing) {
    if (now >= close_deadline_) teardown(close_why_);
    return;
  }
  if (!session_.authenticated()) {
    if (now - opened_ >= cfg.auth_timeout) {
      start_close(static_cast<std::uint16_t>(ws::close_code::policy_violation), "authentication timeout",
                  close_reason::auth_timeout);
    }
    return;
  }
  if (session_.expires_at() != 0 && protocol::now_unix_ms() / 1000 >= session_.expires_at()) {
    start_close(static_cast<std::uint16_t>(ws::close_code::token_expired), "token expired",
                close_reason::token_expired);
    return;
  }
  if (now - last_rx_ >= cfg.idle_timeout) {
    start_close(static_cast<std::uint16_t>(ws::close_code::going_away), "idle timeout",
                close_reason::idle_timeout);
  } else if (!ping_outstanding_ && now - last_rx_ >= cfg.idle_timeout / 2) {
    ping_outstanding_ = true;
    out_.push_control(static_cast<std::uint8_t>(ws::opcode::ping), {});
    mark_dirty();
  }
}

std::chrono::steady_clock::time_point ws_session::next_due(std::chrono::steady_clock::time_point now) const {
  const auto& cfg = w_.config();
  if (state_ >= state::closing) return close_deadline_;
  if (!session_.authenticated()) return opened_ + cfg.auth_timeout;
  auto due = last_rx_ + (ping_outstanding_ ? cfg.idle_timeout : cfg.idle_timeout / 2);
  if (const std::int64_t exp = session_.expires_at(); exp != 0) {
    // Clamped, so that no arithmetic overflows whatever the token said: a day is beyond the wheel anyway.
    constexpr std::int64_t day_s = 24 * 3600;
    const std::int64_t now_s = protocol::now_unix_ms() / 1000;
    const std::int64_t left_s = std::min(exp, now_s + day_s) - now_s;
    due = std::min(due, now + std::chrono::seconds(std::max<std::int64_t>(left_s, 0)));
  }
  return due;
}

// Why the connection is ending when the peer hangs up: if we had started a close (for a frame error, a rate
// limit, a timeout), that reason stands, whether or not the client answered our close frame.
close_reason ws_session::gone_reason() const {
  return state_ >= state::closing ? close_why_ : close_reason::client_gone;
}

// any state -> closed, once.
void ws_session::teardown(close_reason why) {
  if (state_ == state::closed) return;
  state_ = state::closed;
  session_.drop_subscriptions();
  boost::system::error_code ec;
  socket_.close(ec);
  w_.remove(*this);
  w_.stats().connections.sub();
  if (was_authenticated_) w_.stats().authenticated.sub();
  w_.stats().closed[static_cast<std::size_t>(why)].add();
  w_.shared().connections.fetch_sub(1, std::memory_order_relaxed);
  if (why == close_reason::slow_consumer || why == close_reason::protocol_error ||
      why == close_reason::policy) {
    spdlog::warn("connection closed reason={}", to_string(why));
  } else {
    spdlog::debug("connection closed reason={}", to_string(why));
  }
}

}  // namespace bc::net
