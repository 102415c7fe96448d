#include "net/listener.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

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
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

listener::~listener() {
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

void listener::shed_one() {
  if (spare_fd_ >= 0) {
    ::close(spare_fd_);
    const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ::close(fd);
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  ++shed_since_warning_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ >= std::chrono::seconds(1)) {
    spdlog::warn(
        "out of file descriptors: refused {} connection(s); raise the open-file limit or lower "
        "--max-connections",
        shed_since_warning_);
    last_warning_ = now;
    shed_since_warning_ = 0;
  }
}

void listener::run() {
  do_accept();
}

void listener::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void listener::do_accept() {
  acceptor_.async_accept([self = shared_from_this()](boost::system::error_code ec,
                                                     boost::asio::ip::tcp::socket s) {
    if (ec == boost::asio::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (ec == boost::asio::error::no_descriptors || ec.value() == ENFILE) {
      self->shed_one();
      return self->do_accept();
    }
    if (ec) {
      spdlog::warn("accept failed: {}", ec.message());
      // Back off briefly instead of spinning on a persistent error.
      auto timer = std::make_shared<boost::asio::steady_timer>(self->w_.ioc(), std::chrono::milliseconds(50));
      timer->async_wait([self, timer](boost::system::error_code) { self->do_accept(); });
      return;
    }
    std::make_shared<http_session>(self->w_, self->services_, std::move(s))->run();
    self->do_accept();
  });
}

}  // namespace bc::net
