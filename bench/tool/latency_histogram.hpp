// Log-linear latency histogram (HdrHistogram-style): exact below 128 µs, then 64 sub-buckets per power of two
// (≤ 1.6% relative error) up to 2^40 µs. One writer thread; readers (the progress line) may read concurrently
// and see slightly stale counts, which is all a progress line needs.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace bc::bench {

class latency_histogram {
 public:
  static constexpr int linear = 128;
  static constexpr int sub_buckets = 64;
  static constexpr int max_msb = 40;
  static constexpr int bucket_count = linear + (max_msb - 6) * sub_buckets;

  void record(std::uint64_t us) {
    bump(counts_[index_of(us)]);
    bump(total_);
    if (us > max_.load(std::memory_order_relaxed)) max_.store(us, std::memory_order_relaxed);
  }

  void merge(const latency_histogram& o) {
    for (int i = 0; i < bucket_count; ++i) add(counts_[i], o.counts_[i].load(std::memory_order_relaxed));
    add(total_, o.total());
    if (o.max() > max()) max_.store(o.max(), std::memory_order_relaxed);
  }

  std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }
  std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }

  // Value at quantile q in [0,1]: the upper edge of the bucket holding it, capped at the exact maximum.
  std::uint64_t quantile(double q) const {
    const std::uint64_t n = total();
    if (n == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n));
    if (rank >= n) rank = n - 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < bucket_count; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen > rank) {
        const std::uint64_t v = upper_edge(i);
        return v < max() ? v : max();
      }
    }
    return max();
  }

  // Calls f(upper_edge_us, count) for each non-empty bucket, in order (for CDF plots).
  template <class F>
  void for_each(F&& f) const {
    for (int i = 0; i < bucket_count; ++i)
      if (auto c = counts_[i].load(std::memory_order_relaxed)) f(upper_edge(i), c);
  }

 private:
  static int index_of(std::uint64_t v) {
    if (v < linear) return static_cast<int>(v);
    int msb = 63 - std::countl_zero(v);
    if (msb > max_msb) return bucket_count - 1;
    const int shift = msb - 6;
    return linear + (msb - 7) * sub_buckets + static_cast<int>((v >> shift) - sub_buckets);
  }
  static std::uint64_t upper_edge(int i) {
    if (i < linear) return static_cast<std::uint64_t>(i);
    const int k = (i - linear) / sub_buckets, sub = (i - linear) % sub_buckets + sub_buckets;
    const int shift = k + 1;
    return ((static_cast<std::uint64_t>(sub) + 1) << shift) - 1;
  }
  // Single writer: a relaxed load+store avoids a locked instruction per delivery.
  static void bump(std::atomic<std::uint64_t>& a) {
    a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  static void add(std::atomic<std::uint64_t>& a, std::uint64_t v) {
    a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }

  std::array<std::atomic<std::uint64_t>, bucket_count> counts_{};
  std::atomic<std::uint64_t> total_{0};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace bc::bench
