#include "net/listener.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/detail/socket_option.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "net/accepted_socket.hpp"
#include "net/worker.hpp"

namespace bc::net {

using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

listener::listener(worker& w, const http_services& services, const boost::asio::ip::tcp::endpoint& endpoint)
    : w_(w), services_(services), acceptor_(w.ioc()), protocol_(endpoint.protocol()) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
  acceptor_.set_option(reuse_port(true));
  // Linux copies TCP_NODELAY from the listening socket to every socket it accepts: set here once instead of
  // once per connection (a system call each, in a reconnect storm thousands per second).
  acceptor_.set_option(boost::asio::ip::tcp::no_delay(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(4096);
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

listener::~listener() {
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

bool listener::shed_one() {
  int fd = -1;
  if (spare_fd_ >= 0) {
    ::close(spare_fd_);
    fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ::close(fd);
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return false;  // nothing was waiting (accept4 reports EMFILE before it looks at the queue)
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
  return true;
}

void listener::run() {
  do_accept();
}

void listener::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

namespace {
constexpr int max_accepts_per_turn = 64;
}  // namespace

void listener::do_accept() {
  acceptor_.async_wait(boost::asio::socket_base::wait_read,
                       [self = shared_from_this()](boost::system::error_code ec) {
                         if (ec == boost::asio::error::operation_aborted || !self->acceptor_.is_open())
                           return;
                         if (ec) {
                           spdlog::warn("accept failed: {}", ec.message());
                           return self->back_off();
                         }
                         self->accept_ready();
                       });
}

void listener::accept_ready() {
  for (int i = 0; i < max_accepts_per_turn; ++i) {
    if (!acceptor_.is_open()) return;
    const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return do_accept();
      if (err == EINTR || err == ECONNABORTED) continue;  // the next one may be fine
      if (err == EMFILE || err == ENFILE) {
        if (shed_one()) continue;
        // Nothing to refuse now: wait for the next connection, or, without a spare descriptor to refuse it
        // with, back off.
        return spare_fd_ >= 0 ? do_accept() : back_off();
      }
      spdlog::warn("accept failed: {}", std::strerror(err));
      return back_off();
    }
    boost::system::error_code ec;
    accepted_socket s(w_.ioc());
    s.assign(protocol_, fd, ec);  // registers it with the thread's epoll
    if (ec) {
      ::close(fd);
      spdlog::warn("cannot register an accepted connection: {}", ec.message());
      continue;
    }
    s.assume_non_blocking();  // SOCK_NONBLOCK above
    std::make_shared<http_session>(w_, services_, std::move(s))->run();
  }
  // The backlog may hold more: the thread's other handlers first, then on.
  boost::asio::post(w_.ioc(), [self = shared_from_this()] { self->accept_ready(); });
}

void listener::back_off() {
  // Briefly, instead of spinning on a persistent error.
  auto timer = std::make_shared<boost::asio::steady_timer>(w_.ioc(), std::chrono::milliseconds(50));
  timer->async_wait([self = shared_from_this(), timer](boost::system::error_code) { self->do_accept(); });
}

}  // namespace bc::net
