#include "net/listener.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/detail/socket_option.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <thread>

#include "net/worker.hpp"

namespace bc::net {

using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

listener::listener(worker& w, const http_services& services, const boost::asio::ip::tcp::endpoint& endpoint)
    : w_(w), services_(services), acceptor_(w.ioc()) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
  acceptor_.set_option(reuse_port(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(4096);
}

void listener::run() { do_accept(); }

void listener::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void listener::do_accept() {
  acceptor_.async_accept([self = shared_from_this()](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
    if (ec == boost::asio::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (ec) {
      // Typically EMFILE: out of descriptors. Back off briefly instead of spinning on the error.
      spdlog::warn("accept failed: {}", ec.message());
      auto timer = std::make_shared<boost::asio::steady_timer>(self->w_.ioc(), std::chrono::milliseconds(50));
      timer->async_wait([self, timer](boost::system::error_code) { self->do_accept(); });
      return;
    }
    std::make_shared<http_session>(self->w_, self->services_, std::move(s))->run();
    self->do_accept();
  });
}

}  // namespace bc::net
