#pragma once
// A TCP socket that accept4(SOCK_NONBLOCK) made non-blocking, with Asio told so without a system call.

#include <boost/asio/ip/tcp.hpp>

namespace bc::net {

// Asio learns a socket's mode only by setting it: an ioctl per connection, at the first wait or through
// non_blocking(true) — a system call per connection in a reconnect storm. assume_non_blocking() records in
// Asio's reactive socket state (Debian's Boost 1.81) what that ioctl's success would record. Only for a
// descriptor that is non-blocking already; listener_test checks that Asio then treats it as such.
class accepted_socket : public boost::asio::ip::tcp::socket {
 public:
  using boost::asio::ip::tcp::socket::basic_stream_socket;
  void assume_non_blocking() {
    impl_.get_implementation().state_ |= boost::asio::detail::socket_ops::user_set_non_blocking |
                                         boost::asio::detail::socket_ops::internal_non_blocking;
  }
};

}  // namespace bc::net
