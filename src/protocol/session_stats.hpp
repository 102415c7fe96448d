#pragma once
// Per-thread protocol counters. Each thread writes only its own instance; a scrape sums all of them.

#include <array>
#include <cstdint>

#include "auth/jwt_verifier.hpp"
#include "core/counter_metric.hpp"
#include "core/local_counter.hpp"

#include "protocol/error_code.hpp"
#include "protocol/request.hpp"
#include "util/enum_count.hpp"

namespace bc::protocol {

using core::local_counter;

// Request latency, from the request's arrival to its reply being queued (a publish: until the broker took
// it). Prometheus-style cumulative buckets are built at scrape time from these per-bucket counts.
class latency_histogram {
 public:
  static constexpr auto bounds_us = std::to_array<std::uint64_t>(
      {50, 100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 100'000, 250'000, 1'000'000});
  void observe(std::uint64_t us) {
    std::size_t i = 0;
    while (i < bounds_us.size() && us > bounds_us[i]) ++i;
    buckets_[i].add();
    sum_us_.add(us);
  }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].get(); }  // i == bounds_us.size(): +Inf
  std::uint64_t sum_us() const { return sum_us_.get(); }

 private:
  std::array<local_counter, bounds_us.size() + 1> buckets_;
  local_counter sum_us_;
};

// Index 0 is the REST API key; the others are auth::jwt_error values, whose 0 (`none`) is never a failure.
constexpr std::size_t auth_failure_reasons = util::enum_count<auth::jwt_error>();

struct session_stats {
  std::array<local_counter, method_count> requests;    // by method
  std::array<local_counter, error_code_count> errors;  // replies with an error, by code
  local_counter auth_failures;
  std::array<local_counter, auth_failure_reasons> auth_failures_by_reason;  // index: jwt_error, 0 = API key
  std::array<latency_histogram, method_count> latency;                      // by method
  local_counter rate_limited;  // requests refused by the per-connection rate limit
  local_counter published_ws;
  local_counter published_rest;
  local_counter subscriptions;  // gauge
};

// The series of the scalar counters above (the families by method, code and reason are rendered from their
// enums).
inline constexpr core::counter_metric<session_stats> session_metrics[] = {
    {"broadcaster_subscriptions", "gauge", "Subscriptions on this node.", &session_stats::subscriptions},
    {"broadcaster_messages_published_total", "counter", "Messages accepted for publishing, by source.",
     &session_stats::published_rest, "source=\"rest\""},
    {"broadcaster_messages_published_total", "counter", "Messages accepted for publishing, by source.",
     &session_stats::published_ws, "source=\"websocket\""},
    {"broadcaster_auth_failures_total", "counter", "Failed JWT auth and API key checks.",
     &session_stats::auth_failures},
    {"broadcaster_rate_limited_total", "counter", "Requests refused by the per-connection rate limit.",
     &session_stats::rate_limited},
};

}  // namespace bc::protocol
