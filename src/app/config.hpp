#pragma once
// The server's configuration: one aggregate with defaults, filled in one place from (lowest to highest) the
// defaults below, an optional TOML file (--config / CONFIG), the environment and the flags.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/channel_rules.hpp"
#include "net/net_config.hpp"

namespace bc::app {

struct config {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8000;
  std::string jwt_secret;
  std::vector<std::string> api_keys;
  bool dev = false;
  unsigned threads = 0;            // 0 = one per core
  unsigned handover_delay_ms = 2;  // longest a publication waits for a busy thread to take it; 0 = wake it
  std::size_t inbox_limit = 64u << 20;  // bytes queued for one worker thread before publishes are refused
  int jwt_leeway_s = 30;
  std::size_t max_subscriptions = 1000;
  double rate_limit = 1000;  // requests per second per connection, 0 = off
  double rate_burst = 2000;  // room to subscribe max-subscriptions channels at once
  double shutdown_timeout_s = 5;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string broker = "memory";
  std::string redis_url;
  unsigned redis_wait_replicas = 0;  // publishes with history wait for this many replicas (WAIT); 0 = off
  // rediss:// (docs/redis.md "TLS and ACL users"): trust store (empty = the system's), client certificate,
  // the name verified (empty = each connection's host), and a development-only switch that verifies nothing.
  std::string redis_tls_ca_file;
  std::string redis_tls_cert_file;
  std::string redis_tls_key_file;
  std::string redis_tls_server_name;
  bool redis_tls_insecure_skip_verify = false;
  // AUTH with the sentinels themselves (a redis+sentinel:// URL's credentials are the data nodes').
  std::string redis_sentinel_username;
  std::string redis_sentinel_password;
  std::string config_file;  // the TOML file the settings came from, if any (for logs and /info)
  net::net_config net;
  // History and presence per channel: the defaults are HISTORY_SIZE / HISTORY_TTL / PRESENCE, the rules the
  // file's [[channels]] tables in order (PROTOCOL "(ext) Channel positions, history and recovery", "(ext)
  // Presence").
  core::channel_rules channels;
  std::size_t history_memory_limit = 256u << 20;  // bytes of history the embedded broker holds, all channels
  std::chrono::seconds presence_ttl{60};          // a dead node's members leave presence within this
  std::size_t presence_max_clients = 1000;        // the most members one presence answer lists
};

// Parses flags, environment and the TOML file named by --config or CONFIG: a flag wins over its environment
// variable, which wins over the file's key (the variable's name in lower case), which wins over the default.
// Returns nothing, with the process exit code in `exit_code`, when the process should stop: after --help or
// --print-config (0; the latter prints the effective configuration as TOML with secrets masked), or after one
// line on stderr for a usage error, an unknown or malformed file key, or a missing setting (2).
std::optional<config> parse_config(int argc, char** argv, int& exit_code);

}  // namespace bc::app
