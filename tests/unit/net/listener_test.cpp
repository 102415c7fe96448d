#include "net/listener.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

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

}  // namespace
}  // namespace bc::net
