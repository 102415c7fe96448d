#pragma once
// Many connections' gather-writes in one system call (io_uring), for a fan-out that writes to thousands of
// sockets per turn of the loop.
//
// Why: a fan-out to 10 000 connections was 10 000 sendmsg calls, each paying the system call's entry and
// exit and giving a client woken by it a chance to preempt the fanning-out thread. Submitted together, the
// sends run back to back inside one io_uring_enter. Measured (BENCHMARKS.md): -8 % server CPU per delivery
// in the overload fan-out, 0.82x -> 0.69-0.73x of Nchan's in the 10 publishes/s one.
//
// Every send carries MSG_DONTWAIT, so the kernel completes it inside the submitting call (bytes written, or
// -EAGAIN when the socket is full) and never keeps a pointer into our buffers past submit(): the queues that
// own the bytes may change right after.

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace bc::net {

class send_batch {
 public:
  static constexpr std::size_t max_sends = 256;  // per submit(); the ring's size
  static constexpr std::size_t max_iov = 16;     // per send; the caller writes the rest of a longer queue

  // A batch for the calling thread (the only one that may submit), or nullptr when the kernel refuses
  // io_uring (old kernel, seccomp, io_uring_disabled); `why` then says why.
  static std::unique_ptr<send_batch> open(std::string& why);
  ~send_batch();
  send_batch(const send_batch&) = delete;
  send_batch& operator=(const send_batch&) = delete;

  bool full() const { return count_ == max_sends; }
  std::size_t size() const { return count_; }
  // Room for the buffers of the next send (max_iov entries); valid until submit().
  iovec* next_iov() { return iov_.get() + count_ * max_iov; }
  // Queues sendmsg(fd, next_iov()[0, iov_count)).
  void add(int fd, std::size_t iov_count);
  // Runs every queued send; result[i] is the i-th add()'s bytes written, 0 if it did not run, or -errno.
  // Empties the batch.
  std::span<const int> submit();
  // The ring failed (a short submission): take the results, then drop this batch for plain sendmsg.
  bool failed() const { return failed_; }

 private:
  struct ring;
  send_batch();

  std::unique_ptr<ring> ring_;
  std::unique_ptr<iovec[]> iov_;
  std::unique_ptr<int[]> results_;
  std::size_t count_ = 0;
  bool failed_ = false;
};

}  // namespace bc::net
