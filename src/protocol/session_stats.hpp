#pragma once
// Per-thread protocol counters. Each thread writes only its own instance; a scrape sums all of them.

#include <array>
#include <cstdint>

#include "core/local_counter.hpp"

#include "protocol/error_code.hpp"
#include "protocol/request.hpp"

namespace bc::protocol {

using core::local_counter;

constexpr std::size_t method_count = 5;
constexpr std::size_t error_code_count = 9;

struct session_stats {
  std::array<local_counter, method_count> requests;    // by method
  std::array<local_counter, error_code_count> errors;  // replies with an error, by code
  local_counter auth_failures;
  local_counter rate_limited;  // requests refused by the per-connection rate limit
  local_counter published_ws;
  local_counter published_rest;
  local_counter subscriptions;  // gauge
};

}  // namespace bc::protocol
