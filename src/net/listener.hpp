#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "net/http_session.hpp"

namespace bc::net {

class worker;

// Accepts connections for one worker. Every worker has its own listener bound to the same port with
// SO_REUSEPORT, so the kernel spreads connections over threads and no accept crosses a thread.
class listener : public std::enable_shared_from_this<listener> {
 public:
  // Binds and listens; throws on failure (start-up only).
  listener(worker& w, const http_services& services, const boost::asio::ip::tcp::endpoint& endpoint);
  void run();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

 private:
  void do_accept();

  worker& w_;
  const http_services& services_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

}  // namespace bc::net
