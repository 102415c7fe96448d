// What one small send costs the sender on loopback, written one sendmsg per socket or many sockets per
// io_uring submission (src/net/send_batch), for BENCHMARKS.md. A child process reads every socket through
// epoll, as a client would; the sender's CPU (process clock) is measured per send, the variants alternating
// in every round so that a noisy neighbour hits them alike.
//
//   build/bench/loopback-sends [sockets=5000] [rounds=20] [burst=0] [gap_us=500]
//     burst=0: each round sends one 160-byte frame to every socket back to back (a fan-out; the reader is
//              busy throughout); io_uring submits 256 at a time.
//     burst=B: frames go out B sockets at a time, gap_us apart (the reader sleeps between bursts): a small
//              fan-out per event, as when a publish reaches 10 subscribers.
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

constexpr std::size_t frame_size = 160;
constexpr int ring_batch = 256;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

[[noreturn]] void read_everything(const std::vector<int>& fds) {
  const int ep = epoll_create1(0);
  for (int fd : fds) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
  }
  epoll_event events[256];
  static char buf[65536];
  for (;;) {
    const int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      if (read(events[i].data.fd, buf, sizeof buf) <= 0) _exit(0);
    }
  }
}

struct uring_sender {
  io_uring ring{};
  std::vector<msghdr> msgs;
  std::vector<iovec> iovs;
  explicit uring_sender(std::size_t n) : msgs(n), iovs(n) {
    if (io_uring_queue_init(ring_batch, &ring, 0) < 0) die("io_uring_queue_init");
  }
  // Sends `frame` to fds[from, to) in submissions of ring_batch.
  void send(const std::vector<int>& fds, std::size_t from, std::size_t to, char* frame) {
    for (std::size_t i = from; i < to; i += ring_batch) {
      const std::size_t end = std::min(to, i + ring_batch);
      for (std::size_t j = i; j < end; ++j) {
        iovs[j] = {frame, frame_size};
        msgs[j] = msghdr{};
        msgs[j].msg_iov = &iovs[j];
        msgs[j].msg_iovlen = 1;
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_sendmsg(sqe, fds[j], &msgs[j], MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      io_uring_submit_and_wait(&ring, static_cast<unsigned>(end - i));
      io_uring_cqe* cqe;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        if (cqe->res != static_cast<int>(frame_size)) die("io_uring send");
        ++seen;
      }
      io_uring_cq_advance(&ring, seen);
    }
  }
};

void send_each(const std::vector<int>& fds, std::size_t from, std::size_t to, char* frame) {
  for (std::size_t j = from; j < to; ++j) {
    iovec iov{frame, frame_size};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (sendmsg(fds[j], &m, MSG_NOSIGNAL) != static_cast<ssize_t>(frame_size)) die("sendmsg");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t sockets = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 5000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::size_t burst = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 0;
  const int gap_us = argc > 4 ? std::atoi(argv[4]) : 500;

  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  listen(listener, 4096);
  std::vector<int> client(sockets), server(sockets);
  const int one = 1;
  for (std::size_t i = 0; i < sockets; ++i) {
    client[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("connect");
    server[i] = accept(listener, nullptr, nullptr);
    setsockopt(server[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(server[i], F_SETFL, O_NONBLOCK);
  }
  const pid_t reader = fork();
  if (reader == 0) {
    for (int fd : server) close(fd);
    read_everything(client);
  }
  for (int fd : client) close(fd);

  char frame[frame_size];
  std::memset(frame, 'x', sizeof frame);
  uring_sender uring(sockets);
  double cpu[2] = {0, 0};
  const char* names[2] = {"sendmsg per socket", "io_uring, 256 per submit"};
  for (int r = 0; r < rounds; ++r) {
    for (int v = 0; v < 2; ++v) {
      const std::size_t step = burst ? burst : sockets;
      if (!burst) usleep(30'000);  // the reader drains and goes to sleep
      for (std::size_t i = 0; i < sockets; i += step) {
        if (burst) usleep(static_cast<useconds_t>(gap_us));
        const double start = cpu_seconds();
        const std::size_t end = std::min(sockets, i + step);
        if (v == 0)
          send_each(server, i, end, frame);
        else
          uring.send(server, i, end, frame);
        cpu[v] += cpu_seconds() - start;
      }
    }
  }
  const double sends = static_cast<double>(sockets) * rounds;
  std::printf("%zu sockets, %d rounds, %s\n", sockets, rounds, burst ? "bursts" : "one fan-out per round");
  if (burst) std::printf("burst %zu sockets every %d us\n", burst, gap_us);
  for (int v = 0; v < 2; ++v)
    std::printf("  %-26s %6.3f us of sender CPU per send\n", names[v], cpu[v] / sends * 1e6);
  std::printf("  ratio io_uring/sendmsg     %6.3f\n", cpu[1] / cpu[0]);
  kill(reader, SIGTERM);
  waitpid(reader, nullptr, 0);
}
