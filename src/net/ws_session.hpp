#pragma once
// One WebSocket connection after the handshake: RFC 6455 framing over the raw socket, the outbound queue
// and its slow-consumer policy, deadlines. The protocol logic lives in the client_session it owns.

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "net/byte_stream.hpp"
#include "net/net_stats.hpp"
#include "net/outbound_queue.hpp"
#include "net/ws/frame_parser.hpp"
#include "protocol/client_session.hpp"

namespace bc::net {

class worker;

// Lifetime: owned by shared_ptrs held in its pending I/O handlers (and the worker's dirty list); the worker's
// session list holds a raw pointer that teardown() removes. All members run on the worker's thread.
//
// Reading never holds a buffer per connection: the session waits for readability, then reads into the
// worker's shared buffer; only a frame split across reads is kept (by the parser). Writing is one
// non-blocking sendmsg over everything queued; when the kernel buffer is full it waits for writability.
//
// The lifecycle is one `state`; each transition is one function, which asserts the states it may leave:
//
//   from          event                                        to            function
//   open          shutdown, publishes still with the broker    draining      close_for_shutdown()
//   open/draining we close (error, timeout, policy, shutdown)  closing       start_close()
//   open/draining slow consumer or write error                 closing       drop_next_turn()
//   open/draining the client's close frame (we echo it)        peer_closed   start_close(.., peer_closed)
//   closing       our close frame written (queue drained)      half_closed   half_close()
//   closing/half_closed/peer_closed  the client's close frame  closed        teardown() from on_close()
//   peer_closed   our echoed close frame written               closed        teardown() from flush_now()
//   any           read/write error, close deadline, abort      closed        teardown() (once)
//
// From `closing` on nothing more is queued (replies, publications, pongs, pings) and on_tick() only enforces
// the close deadline. `closing` without a close frame is a connection being dropped: its teardown is posted
// (never run inside the hub's delivery loop) and its deadline, never set, is already past.
class ws_session final : public std::enable_shared_from_this<ws_session>,
                         public protocol::client_transport,
                         private ws::frame_handler {
 public:
  // `compression`: the handshake agreed on permessage-deflate (ws::negotiate_deflate).
  ws_session(worker& w, boost::asio::ip::tcp::socket socket, byte_stream io, bool compression = false);
  ~ws_session() override;

  // Starts reading; `initial` holds bytes that arrived with the handshake. The socket must be non-blocking
  // with TCP_NODELAY set (http_session::run does both).
  void start(std::string_view initial);

  // The handshake response, queued ahead of every frame.
  void send_raw(std::string bytes);

  // protocol::client_transport
  void send_text(std::string text) override;
  void send_publication(const core::publication_ptr& pub, std::uint64_t seq) override;
  void close(std::uint16_t code, std::string_view reason) override;
  std::function<void(std::function<void()>)> make_deferrer() override;

  void on_tick(std::chrono::steady_clock::time_point now);
  // When on_tick() next has something to check (the earliest deadline in the current state).
  std::chrono::steady_clock::time_point next_due(std::chrono::steady_clock::time_point now) const;
  void close_for_shutdown();
  void flush_now();

 private:
  friend class worker;

  // The lifecycle (see the table above); ordered, so that "closing or later" is one compare.
  enum class state : std::uint8_t {
    open,         // reading and writing
    draining,     // shutting down: the close frame waits for the answers to publishes in flight
    closing,      // our close frame is queued (or a teardown posted): nothing else is sent
    half_closed,  // our close frame is written and the write side shut: waiting for the client's
    peer_closed,  // the client closed first: our echo is queued, the teardown follows once it is written
    closed,       // torn down
  };

  void wait_readable();
  void on_readable(boost::system::error_code ec);
  bool consume_input(std::uint8_t* data, std::size_t len);
  bool write_now();
  // The worker's batched write (send_batch): the queue's leading buffers if this session may be written
  // now, then what the kernel took of them (bytes, or -errno).
  std::size_t gather_for_batch(iovec* iov, std::size_t max) const;
  void batch_written(int result, std::size_t requested);
  void wait_writable();
  void mark_dirty();
  // Transitions (see the table above).
  void start_close(std::uint16_t code, std::string_view reason, close_reason why, state to = state::closing);
  void drop_next_turn(close_reason why);
  void half_close();
  void teardown(close_reason why);
  close_reason gone_reason() const;
  void pause_or_resume_reading();

  // ws::frame_handler
  void on_message(ws::opcode op, std::string_view payload) override;
  void on_compressed_message(ws::opcode op, std::string_view deflated) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(std::uint16_t code, std::string_view reason) override;

  worker& w_;
  boost::asio::ip::tcp::socket socket_;
  byte_stream io_;
  ws::frame_parser parser_;
  outbound_queue out_;
  protocol::client_session session_;
  std::chrono::steady_clock::time_point opened_;
  std::chrono::steady_clock::time_point last_rx_;
  std::chrono::steady_clock::time_point close_deadline_{};
  close_reason close_why_ = close_reason::client_gone;
  state state_ = state::open;
  // Facts independent of the state and of each other:
  bool reading_ = false;            // a readability wait is pending
  bool writing_ = false;            // a writability wait is pending
  bool dirty_ = false;              // registered in the worker's dirty list
  bool consuming_ = false;          // handling input: the reader flushes once it is done with what it read
  bool read_paused_ = false;        // our own replies piled up: stop reading until they drain
  bool ping_outstanding_ = false;   // we pinged an idle client
  bool read_wants_write_ = false;   // TLS: a read must wait for writability first
  bool was_authenticated_ = false;  // counted in the authenticated gauge
  bool compression_ = false;        // permessage-deflate negotiated
  std::uint32_t dropped_ = 0;       // frames skipped under the drop policy, for rate-limited logging
  std::uint32_t wheel_slot_ = ~std::uint32_t{0};  // the worker's timer wheel: slot and list links
  ws_session* prev_ = nullptr;
  ws_session* next_ = nullptr;
  std::int64_t seen_expires_at_ = 0;  // the token expiry the wheel was last told about
};

}  // namespace bc::net
