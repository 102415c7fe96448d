#pragma once
// The server's configuration: one aggregate with defaults, filled from environment and flags in one place.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/net_config.hpp"

namespace bc::app {

struct config {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8000;
  std::string jwt_secret;
  std::vector<std::string> api_keys;
  bool dev = false;
  unsigned threads = 0;  // 0 = one per core
  int jwt_leeway_s = 30;
  std::size_t max_subscriptions = 1000;
  double rate_limit = 1000;  // requests per second per connection, 0 = off
  double rate_burst = 2000;  // room to subscribe max-subscriptions channels at once
  double shutdown_timeout_s = 5;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string broker = "memory";
  std::string redis_url;
  net::net_config net;
};

// Parses flags and environment (a flag wins over its environment variable). On --help, or on an error,
// prints and returns the process exit code in `exit_code` (0 for --help, 2 for a usage or missing setting).
std::optional<config> parse_config(int argc, char** argv, int& exit_code);

}  // namespace bc::app
