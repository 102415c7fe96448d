#pragma once
// Hands the heap pages a storm of TLS handshakes left free back to the kernel, once the storm is over.

#include <cstdint>
#include <functional>

namespace bc::net {

// A handshake allocates tens of KiB for a moment (OpenSSL's 16 KiB record buffers, the handshake messages,
// key shares) between the few KiB that stay with the connection; glibc keeps the freed pages mapped, so after
// a connect storm the process holds them though nothing uses them. malloc_trim(0) returns every whole free
// page of every arena (measured: ≈ 0.3 KiB per idle TLS connection, 2000 connections; see BENCHMARKS.md).
// It locks each arena in turn, so it runs at most once per quiet tick after `threshold` handshakes, never
// during a storm. One per worker, on the worker's thread.
class heap_trim {
 public:
  // `trim` is malloc_trim(0) in the server; tests pass their own.
  explicit heap_trim(std::uint32_t threshold = 256, std::function<void()> trim = {});

  void handshake_done() {
    ++pending_;
    ++this_tick_;
  }
  // Called once per worker tick: trims when enough handshakes happened and none since the last tick.
  // Returns true when it trimmed.
  bool on_tick();

 private:
  std::uint32_t threshold_;
  std::function<void()> trim_;
  std::uint32_t pending_ = 0;    // handshakes since the last trim
  std::uint32_t this_tick_ = 0;  // handshakes since the last tick
};

}  // namespace bc::net
