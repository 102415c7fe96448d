#pragma once
// A TCP proxy in front of a test redis-server that can make the subscribe connections hang while the publish
// connections stay live, which no signal to redis-server can do (SIGSTOP or CLIENT PAUSE hang both).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bc::broker::redis_test {

// Forwards every connection to 127.0.0.1:target_port on one thread (poll). freeze_subscribers() makes every
// connection that has sent a SUBSCRIBE so far silent in both directions, with its sockets left open: to the
// broker it is a subscribe connection whose Redis stopped answering. Connections made later pass normally.
class freezing_proxy {
 public:
  explicit freezing_proxy(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("proxy: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~freezing_proxy() {
    stop_ = true;
    thread_.join();
    for (auto& p : pipes_) close_pipe(p);
    ::close(listen_fd_);
  }
  freezing_proxy(const freezing_proxy&) = delete;
  freezing_proxy& operator=(const freezing_proxy&) = delete;

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // Returns how many connections it froze. No byte passes on them once this returns.
  int freeze_subscribers() {
    std::lock_guard lock(m_);
    int n = 0;
    for (auto& p : pipes_) {
      if (p.subscriber && !p.frozen && p.client >= 0) {
        p.frozen = true;
        ++n;
      }
    }
    return n;
  }

 private:
  struct pipe {
    int client = -1;
    int server = -1;
    bool subscriber = false;
    bool frozen = false;
  };

  static sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    return a;
  }
  static bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
      const auto w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }
  static void close_pipe(pipe& p) {
    if (p.client >= 0) ::close(p.client);
    if (p.server >= 0) ::close(p.server);
    p.client = p.server = -1;
  }

  void accept_one() {
    const int c = ::accept(listen_fd_, nullptr, nullptr);
    if (c < 0) return;
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(target_port_);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(s);
      ::close(c);  // Redis is down: so is the proxied connection
      return;
    }
    pipes_.push_back({c, s});
  }

  // Under m_. False when the connection is over.
  bool forward(pipe& p, bool from_client) {
    char buf[65536];
    const auto n = ::recv(from_client ? p.client : p.server, buf, sizeof buf, 0);
    if (n <= 0) return false;
    if (from_client &&
        std::string_view(buf, static_cast<std::size_t>(n)).find("SUBSCRIBE") != std::string_view::npos) {
      p.subscriber = true;
    }
    return write_all(from_client ? p.server : p.client, buf, static_cast<std::size_t>(n));
  }

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      {
        std::lock_guard lock(m_);
        for (const auto& p : pipes_) {
          if (p.frozen || p.client < 0) continue;
          fds.push_back({p.client, POLLIN, 0});
          fds.push_back({p.server, POLLIN, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
      std::lock_guard lock(m_);
      if (fds[0].revents & POLLIN) accept_one();
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        for (auto& p : pipes_) {
          const bool from_client = p.client == fds[i].fd;
          if ((!from_client && p.server != fds[i].fd) || p.frozen || p.client < 0) continue;
          if (!forward(p, from_client)) close_pipe(p);
          break;
        }
      }
      std::erase_if(pipes_, [](const pipe& p) { return p.client < 0; });
    }
  }

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::vector<pipe> pipes_;  // guarded by m_
  std::thread thread_;
};

}  // namespace bc::broker::redis_test
