#include "app/config.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <limits>
#include <sstream>

namespace bc::app {

namespace {
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
}
}  // namespace

std::optional<config> parse_config(int argc, char** argv, int& exit_code) {
  config c;
  CLI::App app{"Broadcaster: a real-time WebSocket messaging server.\n"
               "Every option can also be set by the environment variable shown in brackets; a flag wins."};
  app.option_defaults()->always_capture_default();
  std::string api_keys, policy = "disconnect", origins;
  double auth_timeout = 10, idle_timeout = 60, handshake_timeout = 10;

  app.add_option("--port", c.port, "TCP port (0 = pick a free one and log it)")->envname("PORT");
  app.add_option("--host", c.host, "Bind address")->envname("HOST");
  app.add_option("--jwt-secret", c.jwt_secret, "HS256 secret for client tokens (required outside --dev)")->envname("JWT_SECRET");
  app.add_option("--api-keys", api_keys, "Comma-separated API keys for the REST API (required outside --dev)")->envname("API_KEYS");
  app.add_option("--base-path", c.net.base_path, "Prefix of every HTTP path")->envname("BASE_PATH");
  app.add_flag("--dev", c.dev, "Development mode: generate a secret and key when missing, print a sample token, serve the console")->envname("DEV");
  app.add_option("--threads", c.threads, "Worker threads (0 = one per core)")->envname("THREADS");
  app.add_option("--max-message-size", c.net.max_message_size, "Largest WebSocket message and REST body, bytes")->envname("MAX_MESSAGE_SIZE");
  app.add_option("--auth-timeout", auth_timeout, "Seconds a connection may stay unauthenticated")->envname("AUTH_TIMEOUT");
  app.add_option("--idle-timeout", idle_timeout, "Seconds without any frame before a connection is closed; pings at half")->envname("IDLE_TIMEOUT");
  app.add_option("--handshake-timeout", handshake_timeout, "Seconds to receive a whole HTTP request head")->envname("HANDSHAKE_TIMEOUT");
  app.add_option("--max-connections", c.net.max_connections, "Most WebSocket connections at once")->envname("MAX_CONNECTIONS");
  app.add_option("--max-subscriptions", c.max_subscriptions, "Most subscriptions per connection")->envname("MAX_SUBSCRIPTIONS");
  app.add_option("--rate-limit", c.rate_limit, "Requests per second per connection (0 = unlimited)")->envname("RATE_LIMIT");
  app.add_option("--rate-burst", c.rate_burst, "Requests a connection may send at once before the rate limit applies")->envname("RATE_BURST");
  app.add_option("--outbound-buffer", c.net.outbound_buffer, "Bytes queued per connection before the slow-consumer policy applies")->envname("OUTBOUND_BUFFER");
  app.add_option("--slow-consumer-policy", policy, "disconnect | drop (skip the message, seq still counts)")
      ->envname("SLOW_CONSUMER_POLICY")
      ->check(CLI::IsMember({"disconnect", "drop"}));
  app.add_option("--jwt-leeway", c.jwt_leeway_s, "Clock leeway for exp/iat/nbf, seconds")->envname("JWT_LEEWAY");
  app.add_option("--allowed-origins", origins, "Comma-separated Origins allowed to open WebSockets (empty = any)")->envname("ALLOWED_ORIGINS");
  app.add_flag("--console", c.net.console, "Serve the web console at {BASE}/console/ (on with --dev)")->envname("CONSOLE");
  app.add_option("--console-dir", c.net.console_dir, "Directory holding the console's files")->envname("CONSOLE_DIR");
  app.add_option("--shutdown-timeout", c.shutdown_timeout_s, "Seconds to wait for connections to close on SIGTERM")->envname("SHUTDOWN_TIMEOUT");
  app.add_option("--log-level", c.log_level, "trace | debug | info | warn | error")
      ->envname("LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", c.log_format, "text | json (one object per line)")
      ->envname("LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--broker", c.broker, "memory | redis")->envname("BROKER")->check(CLI::IsMember({"memory", "redis"}));
  app.add_option("--redis-url", c.redis_url, "redis://[:password@]host:port[/db], comma-separated for shards")->envname("REDIS_URL");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = app.exit(e) == 0 ? 0 : 2;
    return std::nullopt;
  }
  c.api_keys = split_list(api_keys);
  c.net.allowed_origins = split_list(origins);
  c.net.slow_policy = policy == "drop" ? net::slow_consumer_policy::drop : net::slow_consumer_policy::disconnect;
  c.net.auth_timeout = seconds_to_ms(auth_timeout);
  c.net.idle_timeout = seconds_to_ms(idle_timeout);
  c.net.handshake_timeout = seconds_to_ms(handshake_timeout);
  if (c.dev) c.net.console = true;
  if (c.net.max_connections == 0) c.net.max_connections = std::numeric_limits<std::size_t>::max();  // unlimited
  if (c.rate_burst < 1) c.rate_burst = 1;

  auto fail = [&](const std::string& line) {
    std::cerr << "broadcaster: " << line << "\n";
    exit_code = 2;
    return std::nullopt;
  };
  if (!c.dev && c.jwt_secret.empty()) return fail("JWT_SECRET is required (set JWT_SECRET or --jwt-secret, or use --dev)");
  if (!c.dev && c.api_keys.empty()) return fail("API_KEYS is required (set API_KEYS or --api-keys, or use --dev)");
  if (c.net.base_path.empty() || c.net.base_path.front() != '/') return fail("BASE_PATH must start with '/'");
  while (c.net.base_path.size() > 1 && c.net.base_path.back() == '/') c.net.base_path.pop_back();
  if (c.net.base_path == "/") c.net.base_path.clear();
  if (c.net.max_message_size < 128) return fail("MAX_MESSAGE_SIZE must be at least 128");
  if (auth_timeout <= 0 || idle_timeout <= 0 || handshake_timeout <= 0) return fail("timeouts must be positive");
  if (c.broker == "redis" && c.redis_url.empty()) return fail("REDIS_URL is required with BROKER=redis");
  return c;
}

}  // namespace bc::app
