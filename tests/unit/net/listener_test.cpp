#include "net/listener.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "net/accepted_socket.hpp"

namespace bc::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The listener sets TCP_NODELAY on the listening socket only, and http_session no longer sets it per
// connection: this holds only because Linux copies the option to every accepted socket. Checked here with
// the same Asio calls, so that a kernel that stops doing so fails a test instead of delaying small frames.
TEST(Listener, AcceptedSocketsInheritNoDelay) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc);
  acceptor.open(tcp::v4());
  acceptor.set_option(tcp::no_delay(true));
  acceptor.bind({asio::ip::make_address("127.0.0.1"), 0});
  acceptor.listen();
  tcp::socket client(ioc);
  client.connect(acceptor.local_endpoint());
  tcp::socket accepted = acceptor.accept();
  tcp::no_delay option;
  accepted.get_option(option);
  EXPECT_TRUE(option.value());

  tcp::acceptor plain(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket other(ioc);
  other.connect(plain.local_endpoint());
  plain.accept().get_option(option);
  EXPECT_FALSE(option.value());  // the option is what makes the difference, not a default
}

// The listener tells Asio that accept4's sockets are non-blocking instead of setting it again (an ioctl per
// connection). If Asio's state did not take the flags, a read with nothing to read would block here (the test
// would hang and time out) instead of answering would_block, and non_blocking() would say false.
TEST(Listener, AcceptedSocketIsNonBlockingForAsioWithoutASystemCall) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket client(ioc);
  client.connect(acceptor.local_endpoint());
  const int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ASSERT_GE(fd, 0);
  accepted_socket s(ioc);
  s.assign(tcp::v4(), fd);
  EXPECT_FALSE(s.non_blocking());
  s.assume_non_blocking();
  EXPECT_TRUE(s.non_blocking());
  EXPECT_TRUE(s.native_non_blocking());
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  char byte = 0;
  boost::system::error_code ec;
  EXPECT_EQ(s.read_some(asio::buffer(&byte, 1), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);
  // Moved into a plain tcp::socket (as http_session holds it), the state goes along.
  tcp::socket moved(std::move(s));
  EXPECT_TRUE(moved.non_blocking());
  client.write_some(asio::buffer("x", 1));
  moved.non_blocking(false);  // blocking again: the byte is there, read it
  EXPECT_EQ(moved.read_some(asio::buffer(&byte, 1)), 1u);
  EXPECT_EQ(byte, 'x');
}

}  // namespace
}  // namespace bc::net
