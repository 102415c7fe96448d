#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>

#include "net/http_session.hpp"

namespace bc::net {

class worker;

// Accepts connections for one worker. Every worker has its own listener bound to the same port with
// SO_REUSEPORT, so the kernel spreads connections over threads and no accept crosses a thread.
//
// Accepting is a readiness wait on the listening socket followed by accept4() calls until the backlog is
// empty (at most max_accepts_per_turn before the thread's other handlers get their turn): in a reconnect
// storm one wake-up takes many connections, each accepted non-blocking and close-on-exec in the one call,
// without an Asio operation and a handler of its own.
class listener : public std::enable_shared_from_this<listener> {
 public:
  // Binds and listens; throws on failure (start-up only).
  listener(worker& w, const http_services& services, const boost::asio::ip::tcp::endpoint& endpoint);
  ~listener();
  void run();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

 private:
  void do_accept();
  // Accepts what the backlog holds, up to a bound, then yields to the other handlers of the thread.
  void accept_ready();
  void back_off();
  // Refuses one pending connection while descriptors run out; false when none was pending.
  bool shed_one();

  worker& w_;
  const http_services& services_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp protocol_;  // of the accepted sockets
  // A descriptor held in reserve: when accept fails for lack of descriptors, it is released to accept and
  // immediately close one pending connection, so clients get a prompt refusal instead of hanging in the
  // queue.
  int spare_fd_ = -1;
  std::chrono::steady_clock::time_point last_warning_{};
  std::uint64_t shed_since_warning_ = 0;
};

}  // namespace bc::net
