#pragma once

#include <atomic>
#include <cstdint>

namespace bc::core {

// A counter with one writing thread and any number of readers (a metrics scrape): a relaxed load and store
// instead of a locked read-modify-write, so the hot path pays what a plain increment costs.
class local_counter {
 public:
  void add(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

}  // namespace bc::core
