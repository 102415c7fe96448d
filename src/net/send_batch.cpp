#include "net/send_batch.hpp"

#include <liburing.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace bc::net {

struct send_batch::ring {
  io_uring uring{};
  msghdr msgs[max_sends]{};
};

send_batch::send_batch()
    : ring_(std::make_unique<ring>()),
      iov_(std::make_unique<iovec[]>(max_sends * max_iov)),
      results_(std::make_unique<int[]>(max_sends)) {}

std::unique_ptr<send_batch> send_batch::open(std::string& why) {
  std::unique_ptr<send_batch> b(new send_batch());
  // Twice the completion entries: a full batch never overflows the completion ring. Only the opening thread
  // submits, and completions are reaped right there: the kernel then needs no cross-thread task work (6.1+;
  // older kernels get a plain ring).
  int r = -EINVAL;
  for (const unsigned extra : {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, 0u}) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE | extra;
    params.cq_entries = 2 * max_sends;
    r = io_uring_queue_init_params(max_sends, &b->ring_->uring, &params);
    if (r != -EINVAL) break;
  }
  if (r < 0) {
    why = std::strerror(-r);
    b->ring_.reset();
    return nullptr;
  }
  return b;
}

send_batch::~send_batch() {
  if (ring_) io_uring_queue_exit(&ring_->uring);
}

void send_batch::add(int fd, std::size_t iov_count) {
  msghdr& m = ring_->msgs[count_];
  m = msghdr{};
  m.msg_iov = next_iov();
  m.msg_iovlen = iov_count;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->uring);  // never null: at most max_sends between submits
  io_uring_prep_sendmsg(sqe, fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, count_);
  ++count_;
}

std::span<const int> send_batch::submit() {
  const std::size_t n = count_;
  count_ = 0;
  std::fill_n(results_.get(), n, 0);  // 0 bytes: what a send that never ran reports
  if (n == 0) return {results_.get(), 0};
  int r;
  do {
    r = io_uring_submit_and_wait(&ring_->uring, static_cast<unsigned>(n));
  } while (r == -EINTR);
  // A short or failed submission leaves entries queued in the ring that a later call would run with stale
  // pointers: the caller must drop this batch after taking the results of what did run.
  const std::size_t submitted = r < 0 ? 0 : static_cast<std::size_t>(r);
  if (submitted != n) failed_ = true;
  std::size_t seen = 0;
  while (seen < submitted) {
    io_uring_cqe* cqe = nullptr;
    unsigned head;
    unsigned got = 0;
    io_uring_for_each_cqe(&ring_->uring, head, cqe) {
      const auto i = io_uring_cqe_get_data64(cqe);
      if (i < n) results_[i] = cqe->res;
      ++got;
    }
    io_uring_cq_advance(&ring_->uring, got);
    seen += got;
    if (seen < submitted && io_uring_wait_cqe(&ring_->uring, &cqe) < 0) {
      failed_ = true;
      break;
    }
  }
  return {results_.get(), n};
}

}  // namespace bc::net
