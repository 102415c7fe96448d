#pragma once
// One connection to one Redis server over Asio, plain TCP or TLS: pipelined commands in, replies out.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct redisReader;

namespace bc::broker {

class redis_tls;

// What a link connects to. `tls` non-null: TLS over the TCP connection, verified as `tls` says, with
// `server_name` (when not empty) as SNI and the name the certificate must carry (else `host`).
struct redis_link_target {
  std::string host;
  int port = 6379;
  std::shared_ptr<redis_tls> tls;
};

// The replacement for a hiredis redisAsyncContext, with the semantics the broker relies on, written over
// Asio so that the connection can be TLS (Debian's hiredis 0.14 has none). hiredis is still used, only for
// its reply parser (redisReader) and printf-style command formatting.
//
//   - Commands are queued in call order into an output buffer; at most one write is in flight, and what is
//     queued meanwhile (or within one handler: a flush is posted, not done inline) goes out in the next
//     write, so a burst of commands costs one syscall. Commands issued before the connection is up wait
//     for it.
//   - Replies arrive in order: each completes the oldest pending (callback, privdata); the callback gets the
//     `redisReply*`, freed when it returns.
//   - Pub/Sub: a (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE expects one confirmation per channel (an unsubscribe
//     without channels: until the count reaches 0), each handed to that command's callback; once Redis has
//     confirmed a subscription, `message`, `pmessage` and `smessage` pushes — and a confirmation nobody
//     asked for (Redis ends a sharded subscription whose slot moved with an unasked `sunsubscribe`) — go to
//     the callback of the last (P|S)SUBSCRIBE sent. Any other command answered in subscribed mode (PING's
//     ["pong", ""]) goes to its own callback, in order.
//   - Loss: when the connection fails (or close() is called) every pending callback runs once with a null
//     reply, in order, then the Pub/Sub callback once; only then is the close handler called (never after
//     close()). Commands issued from those callbacks are refused (-1).
//   - A callback may issue commands, call close(), or drop the last owner's reference: every operation in
//     flight keeps the link alive (shared_from_this) and finds it closed.
//
// Thread-safety: none; everything on the io_context's one thread.
class redis_link : public std::enable_shared_from_this<redis_link> {
 public:
  using callback_fn = void (*)(redis_link* link, void* reply, void* privdata);
  using open_handler = std::function<void()>;
  using close_handler = std::function<void(const std::string& why)>;

  static std::shared_ptr<redis_link> create(boost::asio::io_context& ioc, redis_link_target target);
  ~redis_link();
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  // Resolves, connects (TCP_NODELAY, keepalive), and with TLS completes the handshake; then `on_open`.
  // `on_close(why)` once if the attempt or, later, the connection fails.
  void connect(open_handler on_open, close_handler on_close);
  // Returns 0 when queued, -1 when the link is closed or the format is bad (as hiredis's REDIS_OK/ERR).
  int command(callback_fn cb, void* privdata, const char* fmt, ...);
  int command_argv(callback_fn cb, void* privdata, int argc, const char** argv, const std::size_t* argvlen);
  // Closes the connection: every pending callback runs with a null reply; the close handler is not called.
  void close();

  bool open() const { return state_ == state::open; }
  const redis_link_target& target() const { return target_; }
  // For tests: commands waiting for a reply.
  std::size_t pending() const { return pending_.size(); }

 private:
  using tcp = boost::asio::ip::tcp;
  enum class state { idle, connecting, open, closed };
  struct pending_reply {
    callback_fn fn;
    void* privdata;
    long confirmations;  // (P|S)(UN)SUBSCRIBE: confirmations still due; -1 until the count is 0; 0: any other
    int kind;            // which Pub/Sub command (redis_link.cpp's pubsub_kind), 0 for any other
  };

  redis_link(boost::asio::io_context& ioc, redis_link_target target);

  template <class F>
  void with_stream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(socket_);
    }
  }
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : socket_; }

  int queue(const char* cmd, std::size_t len, callback_fn cb, void* privdata, std::string_view name,
            long args);
  void on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results);
  void start_connect(const std::vector<tcp::endpoint>& endpoints);
  void on_connected(const boost::system::error_code& ec);
  void on_handshake(const boost::system::error_code& ec);
  void opened();
  void schedule_write();
  void do_write();
  void on_write(const boost::system::error_code& ec);
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void dispatch(void* reply);
  void run(callback_fn fn, void* privdata, void* reply);
  void fail(const std::string& why);
  void shut();
  std::string describe(const boost::system::error_code& ec, const char* what);

  boost::asio::io_context& ioc_;
  redis_link_target target_;
  tcp::resolver resolver_;
  tcp::socket socket_;  // without TLS
  std::optional<boost::asio::ssl::stream<tcp::socket>> tls_;
  state state_ = state::idle;
  open_handler on_open_;
  close_handler on_close_;
  redisReader* reader_;
  std::deque<pending_reply> pending_;
  callback_fn push_fn_ = nullptr;  // Pub/Sub messages: the last SUBSCRIBE's callback
  void* push_privdata_ = nullptr;
  long long plain_subs_ = 0;  // subscriptions Redis confirmed (channels and patterns): subscribed mode while
  long long sharded_subs_ = 0;  // either is above 0
  std::string out_;             // queued, not yet written
  std::string writing_;         // the write in flight
  bool write_in_flight_ = false;
  bool flush_posted_ = false;
  std::vector<char> in_;
};

}  // namespace bc::broker
