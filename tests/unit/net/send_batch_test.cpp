#include "net/send_batch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace bc::net {
namespace {

// A connected loopback TCP pair: `out` is the non-blocking sending end (as the server's sockets are).
struct tcp_pair {
  int out = -1;
  int in = -1;
  ~tcp_pair() {
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
  }
};

std::unique_ptr<tcp_pair> connect_pair(int listener, const sockaddr_in& addr) {
  auto p = std::make_unique<tcp_pair>();
  p->in = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(::connect(p->in, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  p->out = ::accept(listener, nullptr, nullptr);
  EXPECT_GE(p->out, 0);
  ::fcntl(p->out, F_SETFL, O_NONBLOCK);
  return p;
}

class send_batch_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    batch_ = send_batch::open(why);
    if (!batch_) GTEST_SKIP() << "io_uring unavailable here: " << why;
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_), 0);
    socklen_t len = sizeof addr_;
    ASSERT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr_), &len), 0);
    ASSERT_EQ(::listen(listener_, 64), 0);
  }
  void TearDown() override {
    if (listener_ >= 0) ::close(listener_);
  }

  std::string read_exactly(int fd, std::size_t n) {
    std::string got(n, '\0');
    std::size_t at = 0;
    while (at < n) {
      const ssize_t r = ::recv(fd, got.data() + at, n - at, 0);
      if (r <= 0) break;
      at += static_cast<std::size_t>(r);
    }
    got.resize(at);
    return got;
  }

  // Queues one single-buffer send of `msg` to `fd`.
  void add_one(int fd, std::string& msg) {
    batch_->next_iov()[0] = {msg.data(), msg.size()};
    batch_->add(fd, 1);
  }

  std::unique_ptr<send_batch> batch_;
  int listener_ = -1;
  sockaddr_in addr_{};
};

TEST_F(send_batch_test, each_socket_receives_its_own_gathered_buffers) {
  std::vector<std::unique_ptr<tcp_pair>> pairs;
  std::vector<std::string> heads, bodies;
  for (int i = 0; i < 20; ++i) {
    pairs.push_back(connect_pair(listener_, addr_));
    heads.push_back("head-" + std::to_string(i) + ":");
    bodies.push_back(std::string(static_cast<std::size_t>(100 + i), static_cast<char>('a' + i)));
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    iovec* iov = batch_->next_iov();
    iov[0] = {heads[i].data(), heads[i].size()};
    iov[1] = {bodies[i].data(), bodies[i].size()};
    batch_->add(pairs[i]->out, 2);
  }
  EXPECT_EQ(batch_->size(), pairs.size());
  const auto results = batch_->submit();
  ASSERT_EQ(results.size(), pairs.size());
  EXPECT_EQ(batch_->size(), 0u);
  EXPECT_FALSE(batch_->failed());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const std::string want = heads[i] + bodies[i];
    EXPECT_EQ(results[i], static_cast<int>(want.size())) << "send " << i;
    EXPECT_EQ(read_exactly(pairs[i]->in, want.size()), want) << "socket " << i;
  }
}

TEST_F(send_batch_test, a_full_socket_reports_eagain_at_once_and_the_others_still_go_out) {
  auto full = connect_pair(listener_, addr_);
  auto fine = connect_pair(listener_, addr_);
  const int small = 4096;
  ::setsockopt(full->out, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(full->in, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::string chunk(16 * 1024, 'x');
  std::size_t filled = 0;
  while (::send(full->out, chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) filled += chunk.size();
  ASSERT_EQ(errno, EAGAIN);
  ASSERT_GT(filled, 0u);

  std::string msg = "still delivered";
  for (int fd : {full->out, fine->out}) add_one(fd, msg);
  // Nobody reads `full`: were the send parked in the kernel instead of failing, this would never return.
  const auto results = batch_->submit();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0], -EAGAIN);
  EXPECT_EQ(results[1], static_cast<int>(msg.size()));
  EXPECT_EQ(read_exactly(fine->in, msg.size()), msg);
  EXPECT_FALSE(batch_->failed());
}

TEST_F(send_batch_test, a_send_on_a_bad_descriptor_fails_alone) {
  auto ok = connect_pair(listener_, addr_);
  const int closed = ::dup(ok->out);
  ::close(closed);
  std::string msg = "x";
  for (int fd : {closed, ok->out}) add_one(fd, msg);
  const auto results = batch_->submit();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0], -EBADF);
  EXPECT_EQ(results[1], 1);
  EXPECT_EQ(read_exactly(ok->in, 1), "x");
}

TEST_F(send_batch_test, is_full_at_max_sends_and_reusable_after_submit) {
  auto p = connect_pair(listener_, addr_);
  std::string msg = "y";
  std::size_t total = 0;
  for (int round = 0; round < 2; ++round) {
    while (!batch_->full()) add_one(p->out, msg);
    EXPECT_EQ(batch_->size(), send_batch::max_sends);
    const auto results = batch_->submit();
    ASSERT_EQ(results.size(), send_batch::max_sends);
    for (int r : results) EXPECT_EQ(r, 1);
    total += results.size();
  }
  EXPECT_EQ(read_exactly(p->in, total), std::string(total, 'y'));
}

}  // namespace
}  // namespace bc::net
