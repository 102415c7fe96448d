#include "app/config.hpp"

#include <fmt/format.h>

#include <boost/asio/ip/address.hpp>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "broker/redis_url.hpp"
#include "util/comma_list.hpp"
#include "util/escape.hpp"

namespace bc::app {

namespace {

/*
 * Precedence is flag > environment > file > default. CLI11 can read a config file itself, but it ranks the
 * file above the environment, so the file is applied here instead: CLI11 parses flags and environment first,
 * then every file key whose option is still unset is fed to that option as if typed (CLI11 converts and
 * validates it; keys that are overridden are still checked, on a scratch copy of the options), and only then
 * are the values post-processed and checked. Each option's env name and file key
 * derive from its flag (--max-connections, MAX_CONNECTIONS, max_connections), so the three can never drift
 * apart.
 */

constexpr std::string_view masked = "********";

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  while (const auto item = util::next_list_item(list)) out.emplace_back(*item);
  return out;
}

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
}

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How a setting's value is written by --print-config and read from a file.
enum class shape {
  scalar,       // number or boolean, written bare
  text,         // string
  list,         // comma-separated string; an array or a string in the file
  secret,       // string written masked
  secret_list,  // list written as one mask per element
  urls,         // comma-separated URLs written with their passwords masked
};

bool is_list(shape s) {
  return s == shape::list || s == shape::secret_list || s == shape::urls;
}

// One configurable setting: its CLI11 option, its file key, its effective value as text, and where it came
// from.
struct setting {
  CLI::Option* option;
  std::string flag;
  std::string key;
  shape kind;
  std::function<std::string()> value;
  std::string source = "default";
};

template <class T>
std::string text_of(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v;
  } else if constexpr (std::is_floating_point_v<T>) {
    auto s = fmt::format("{}", v);
    if (s.find_first_of(".ein") == std::string::npos) s += ".0";  // a TOML float needs a point or an exponent
    return s;
  } else {
    return std::to_string(v);
  }
}

// The options, each with an env name and a file key derived from its flag.
class settings {
 public:
  explicit settings(CLI::App& app) : app_(app) {}

  template <class T>
  CLI::Option* option(const std::string& flag, T& var, const std::string& help,
                      shape kind = std::is_same_v<T, std::string> ? shape::text : shape::scalar) {
    return add(app_.add_option(flag, var, help), flag, var, kind);
  }
  CLI::Option* flag(const std::string& flag, bool& var, const std::string& help) {
    return add(app_.add_flag(flag, var, help), flag, var, shape::scalar);
  }
  std::vector<setting>& all() { return all_; }

 private:
  template <class T>
  CLI::Option* add(CLI::Option* opt, const std::string& flag, T& var, shape kind) {
    std::string key = flag.substr(2), env;
    std::replace(key.begin(), key.end(), '-', '_');
    std::transform(key.begin(), key.end(), std::back_inserter(env),
                   [](unsigned char c) { return std::toupper(c); });
    all_.push_back({opt, flag, key, kind, [&var] { return text_of(var); }});
    return opt->envname(env);
  }

  CLI::App& app_;
  std::vector<setting> all_;
};

// Values the config struct stores in another form than they are given.
struct raw_values {
  std::string api_keys, policy = "disconnect", origins;
  double auth_timeout = 10, idle_timeout = 60, handshake_timeout = 10, keepalive_timeout = 75;
  // The defaults of config::channels, its rules (the file's [[channels]]), and config::presence_ttl.
  std::size_t history_size = 0;
  std::int64_t history_ttl = 300, presence_ttl = 60;
  bool presence = false;
  std::size_t join_leave_limit = 1000;
  std::vector<core::channel_rule> channels;
};

// Bounds of the history and presence settings, shared by the settings and the [[channels]] rules.
constexpr std::size_t max_history_size = 1'000'000;
constexpr std::int64_t max_history_ttl = 30 * 24 * 3600;          // 30 days
constexpr std::size_t max_history_memory = std::size_t{1} << 40;  // 1 TiB
constexpr std::int64_t max_presence_ttl = 24 * 3600;
constexpr std::size_t max_presence_max_clients = 1'000'000;
constexpr std::size_t max_join_leave_limit = 10'000'000;

void declare(settings& s, config& c, raw_values& r) {
  s.option("--port", c.port, "TCP port (0 = pick a free one and log it)");
  s.option("--host", c.host, "Bind address (--dev: 127.0.0.1 unless given)");
  s.option("--jwt-secret", c.jwt_secret, "HS256 secret for client tokens (required outside --dev)",
           shape::secret);
  s.option("--api-keys", r.api_keys, "Comma-separated API keys for the REST API (required outside --dev)",
           shape::secret_list);
  s.option("--base-path", c.net.base_path, "Prefix of every HTTP path");
  s.flag("--dev", c.dev,
         "Development mode: generate a secret and key when missing, print a sample token, serve the console");
  s.option("--threads", c.threads, "Worker threads (0 = one per core)");
  s.option("--handover-delay", c.handover_delay_ms,
           "Milliseconds a publication for another thread may wait for it to wake by itself (0 = wake it)");
  s.option("--inbox-limit", c.inbox_limit,
           "Bytes of publications queued for one worker thread before local publishes are refused (0 = no "
           "limit)");
  s.option("--max-message-size", c.net.max_message_size, "Largest WebSocket message and REST body, bytes");
  s.option("--auth-timeout", r.auth_timeout, "Seconds a connection may stay unauthenticated");
  s.option("--idle-timeout", r.idle_timeout,
           "Seconds without any frame before a connection is closed; pings at half");
  s.option("--handshake-timeout", r.handshake_timeout, "Seconds to receive a whole HTTP request head");
  s.option("--keepalive-timeout", r.keepalive_timeout,
           "Seconds an idle keep-alive HTTP connection (REST) stays open between requests");
  s.option("--max-connections", c.net.max_connections,
           "Most WebSocket connections at once (0 = no limit but the open-file limit)");
  s.option("--max-subscriptions", c.max_subscriptions, "Most subscriptions per connection");
  s.option("--rate-limit", c.rate_limit, "Requests per second per connection (0 = unlimited)");
  s.option("--rate-burst", c.rate_burst,
           "Requests a connection may send at once before the rate limit applies");
  s.option("--outbound-buffer", c.net.outbound_buffer,
           "Bytes queued per connection before the slow-consumer policy applies");
  s.option("--io-uring", c.net.io_uring,
           "Write each fan-out's connections with one io_uring submission (false = one sendmsg each)");
  s.option("--compression", c.net.compression,
           "Accept permessage-deflate (RFC 7692) from clients that offer it (false = never compress)");
  s.option("--compression-min-size", c.net.compression_min_size,
           "Frames smaller than this many bytes are sent uncompressed");
  s.option("--compression-level", c.net.compression_level, "zlib compression level, 1 (fastest) to 9")
      ->check(CLI::Range(1, 9));
  s.option("--slow-consumer-policy", r.policy, "disconnect | drop (skip the message, seq still counts)")
      ->check(CLI::IsMember({"disconnect", "drop"}));
  s.option("--jwt-leeway", c.jwt_leeway_s, "Clock leeway for exp/iat/nbf, seconds");
  s.option("--allowed-origins", r.origins, "Comma-separated Origins allowed to open WebSockets (empty = any)",
           shape::list);
  s.flag("--metrics-auth", c.net.metrics_auth,
         "Require an API key (Authorization: Bearer <key>) for /metrics, as for /info");
  s.flag("--console", c.net.console, "Serve the web console at {BASE}/console/ (on with --dev)");
  s.option("--console-dir", c.net.console_dir, "Directory holding the console's files");
  s.option("--shutdown-timeout", c.shutdown_timeout_s, "Seconds to wait for connections to close on SIGTERM");
  s.option("--log-level", c.log_level, "trace | debug | info | warn | error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  s.option("--log-format", c.log_format, "text | json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  s.option("--broker", c.broker, "memory | redis")->check(CLI::IsMember({"memory", "redis"}));
  s.option("--redis-url", c.redis_url,
           "redis://[[user]:password@]host:port[/db], comma-separated for shards; or "
           "redis+sentinel://[[user]:password@]sentinel:26379[,sentinel...]/master-name; rediss:// and "
           "rediss+sentinel:// for TLS",
           shape::urls);
  s.option("--redis-wait-replicas", c.redis_wait_replicas,
           "Publishes to channels with history answer only once this many Redis replicas have them (WAIT); "
           "0 = off")
      ->check(CLI::Range(0u, 16u));
  s.option("--redis-tls-ca-file", c.redis_tls_ca_file,
           "PEM CA certificates rediss:// servers must chain to (default: the system trust store)");
  s.option("--redis-tls-cert-file", c.redis_tls_cert_file,
           "PEM client certificate for rediss:// servers with tls-auth-clients (with --redis-tls-key-file)");
  s.option("--redis-tls-key-file", c.redis_tls_key_file, "PEM private key of --redis-tls-cert-file");
  s.option("--redis-tls-server-name", c.redis_tls_server_name,
           "Name sent as SNI and required in rediss:// servers' certificates (default: each URL's host)");
  s.flag("--redis-tls-insecure-skip-verify", c.redis_tls_insecure_skip_verify,
         "Development only: accept any certificate from rediss:// servers (logged as a warning)");
  s.option("--redis-sentinel-username", c.redis_sentinel_username,
           "ACL user for AUTH with the sentinels themselves (with --redis-sentinel-password)");
  s.option("--redis-sentinel-password", c.redis_sentinel_password,
           "Password for AUTH with the sentinels themselves (the URL's credentials are the data nodes')",
           shape::secret);
  s.option("--tls-cert", c.net.tls_cert, "PEM certificate chain: serve wss:// and https:// (with --tls-key)");
  s.option("--tls-key", c.net.tls_key, "PEM private key of --tls-cert");
  s.option("--history-size", r.history_size,
           "Messages kept per channel for recovery and the history method (0 = no history); [[channels]] "
           "rules in the file may differ per channel")
      ->check(CLI::Range(std::size_t{0}, max_history_size));
  s.option("--history-ttl", r.history_ttl, "Seconds a message stays in a channel's history")
      ->check(CLI::Range(std::int64_t{1}, max_history_ttl));
  s.option("--history-memory-limit", c.history_memory_limit,
           "Bytes of history the embedded broker may hold, all channels together")
      ->check(CLI::Range(std::size_t{1}, max_history_memory));
  s.flag("--presence", r.presence,
         "Keep presence (who is subscribed, join/leave) on every channel; [[channels]] rules may differ");
  s.option("--presence-ttl", r.presence_ttl,
           "Seconds within which the members of a node that died disappear from presence")
      ->check(CLI::Range(std::int64_t{1}, max_presence_ttl));
  s.option("--presence-max-clients", c.presence_max_clients,
           "Most members a presence answer lists (it says \"truncated\": true when there were more)")
      ->check(CLI::Range(std::size_t{1}, max_presence_max_clients));
  s.option("--join-leave-limit", r.join_leave_limit,
           "Join/leave are sent only while a channel has at most this many members (0 = no limit); "
           "[[channels]] rules may differ")
      ->check(CLI::Range(std::size_t{0}, max_join_leave_limit));
}

// ---- sources and the file

bool on_command_line(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == flag || (arg.size() > flag.size() && arg.starts_with(flag) && arg[flag.size()] == '='))
      return true;
  }
  return false;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& key, const std::vector<setting>& all) {
  const setting* best = nullptr;
  std::size_t best_d = 3;  // suggest only close misspellings
  for (const auto& s : all) {
    if (const auto d = edit_distance(key, s.key); d < best_d) best = &s, best_d = d;
  }
  return best ? " (did you mean '" + best->key + "'?)"
              : " (keys are the environment variables in lower case)";
}

// A file value as the text CLI11 would get from a flag; lists may be TOML arrays of strings.
std::string node_text(const toml::node& n, bool list) {
  if (auto v = n.as_string()) return v->get();
  if (auto v = n.as_integer()) return std::to_string(v->get());
  if (auto v = n.as_floating_point()) return fmt::format("{}", v->get());
  if (auto v = n.as_boolean()) return v->get() ? "true" : "false";
  auto arr = n.as_array();
  if (!arr || !list)
    throw std::invalid_argument(list ? "expected a string or an array of strings"
                                     : "expected a single string, number or boolean");
  std::string out;
  for (const auto& item : *arr) {
    auto s = item.as_string();
    if (!s) throw std::invalid_argument("array elements must be strings");
    if (s->get().find(',') != std::string::npos)
      throw std::invalid_argument("array elements must not contain ','");
    out += (out.empty() ? "" : ",") + s->get();
  }
  return out;
}

toml::table read_toml(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto line = e.source().begin.line;
    throw config_error(fmt::format("config file {}: {}{}", path, e.description(),
                                   line ? fmt::format(" (line {})", line) : std::string()));
  }
}

// ---- [[channels]] rules

std::string toml_quote(std::string_view s);

constexpr std::string_view rule_keys[] = {"pattern",  "history_size", "history_ttl",
                                          "presence", "join_leave",   "join_leave_limit"};

// Channel-name characters (letters, digits, '_', '-', ':') and '*', at most a channel name long.
bool is_valid_pattern(std::string_view p) {
  if (p.empty() || p.size() > 255) return false;
  return std::all_of(p.begin(), p.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '_' || ch == '-' || ch == ':' || ch == '*';
  });
}

std::int64_t rule_integer(const toml::node& n, std::int64_t lo, std::int64_t hi, std::string_view unit) {
  const auto* v = n.as_integer();
  if (!v || v->get() < lo || v->get() > hi)
    throw std::invalid_argument(fmt::format("expected an integer from {} to {}{}", lo, hi, unit));
  return v->get();
}

// One key of a [[channels]] table into `rule`; throws invalid_argument saying what is wrong with it.
void read_rule_key(core::channel_rule& rule, std::string_view key, const toml::node& n) {
  if (key == "pattern") {
    const auto* v = n.as_string();
    if (!v || !is_valid_pattern(v->get()))
      throw std::invalid_argument("expected a string of 1 to 255 letters, digits, '_', '-', ':' and '*'");
    rule.pattern = v->get();
  } else if (key == "history_size") {
    rule.history_size = static_cast<std::size_t>(
        rule_integer(n, 0, static_cast<std::int64_t>(max_history_size), " (messages)"));
  } else if (key == "history_ttl") {
    rule.history_ttl = std::chrono::seconds(rule_integer(n, 1, max_history_ttl, " (seconds)"));
  } else if (key == "join_leave_limit") {
    rule.join_leave_limit = static_cast<std::size_t>(
        rule_integer(n, 0, static_cast<std::int64_t>(max_join_leave_limit), " (members; 0 = no limit)"));
  } else if (key == "presence" || key == "join_leave") {
    const auto* v = n.as_boolean();
    if (!v) throw std::invalid_argument("expected true or false");
    (key == "presence" ? rule.presence : rule.join_leave) = v->get();
  } else {
    std::string hint;
    for (const auto known : rule_keys) {
      if (edit_distance(key, known) < 3) hint = fmt::format("did you mean '{}'? ", known);
    }
    throw std::invalid_argument(
        fmt::format("unknown key ({}a rule has pattern, history_size, history_ttl, presence, join_leave, "
                    "join_leave_limit)",
                    hint));
  }
}

// The file's `channels` key: an array of tables ([[channels]]), read in order; the first matching rule wins.
// Anything wrong is one line naming the rule (number, pattern) and the key.
std::vector<core::channel_rule> read_channel_rules(const toml::node& node, const std::string& path) {
  const auto* rules = node.as_array();
  if (!rules || (!rules->empty() && !rules->is_array_of_tables()))
    throw config_error(
        fmt::format("config file {} line {}: channels: expected [[channels]] tables, one per "
                    "rule (pattern = \"chat:*\", history_size, history_ttl, presence)",
                    path, node.source().begin.line));
  std::vector<core::channel_rule> out;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    const auto& t = *(*rules)[i].as_table();
    const auto* pattern = t.get_as<std::string>("pattern");
    const auto where = [&](const toml::source_region& at) {
      return fmt::format("config file {} line {}: [[channels]] rule {}{}: ", path, at.begin.line, i + 1,
                         pattern ? " (pattern " + toml_quote(pattern->get()) + ")" : "");
    };
    core::channel_rule rule;
    for (auto&& [k, value] : t) {
      try {
        read_rule_key(rule, k.str(), value);
      } catch (const std::invalid_argument& e) {
        throw config_error(where(k.source()) + std::string(k.str()) + ": " + e.what());
      }
    }
    if (rule.pattern.empty()) throw config_error(where(t.source()) + "pattern: missing (it is required)");
    out.push_back(std::move(rule));
  }
  return out;
}

// Gives `text` to the option as if typed: CLI11 converts and validates it into the bound variable.
void feed(CLI::Option& option, const std::string& text) {
  option.add_result(text);
  option.run_callback();
}

// Applies the file under the flags and the environment. Every value is checked, also one a flag or the
// environment overrides (on `scratch`: the same settings bound to throwaway variables), so that a file which
// works today still works when the flag goes away.
void apply_file(const std::string& path, std::vector<setting>& all, std::vector<setting>& scratch,
                std::vector<core::channel_rule>& channels) {
  const toml::table table = read_toml(path);
  for (auto&& [k, node] : table) {
    const std::string key(k.str());
    const auto where = fmt::format("config file {} line {}: ", path, k.source().begin.line);
    if (key == "channels") {
      channels = read_channel_rules(node, path);
      continue;
    }
    auto it = std::find_if(all.begin(), all.end(), [&](const setting& s) { return s.key == key; });
    if (it == all.end()) throw config_error(where + "unknown key '" + key + "'" + suggestion(key, all));
    try {
      const std::string text = node_text(node, is_list(it->kind));
      if (text.empty()) continue;  // as when unset, like an empty environment variable
      feed(*scratch[static_cast<std::size_t>(it - all.begin())].option, text);
      if (it->option->count() > 0) continue;  // the flag or the environment wins
      feed(*it->option, text);
      it->source = "file";
    } catch (const std::invalid_argument& e) {
      throw config_error(where + key + ": " + e.what());
    } catch (const CLI::ParseError& e) {
      throw config_error(where + key + ": " + e.what());
    }
  }
}

// ---- --print-config

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  util::append_escaped(out, s);
  return out + "\"";
}

std::string rendered(const setting& s) {
  const std::string v = s.value();
  auto array = [](const std::vector<std::string>& items, auto&& each) {
    std::string out = "[";
    for (const auto& i : items) out += (out.size() > 1 ? ", " : "") + toml_quote(each(i));
    return out + "]";
  };
  switch (s.kind) {
    case shape::scalar:
      return v;
    case shape::text:
      return toml_quote(v);
    case shape::secret:
      return toml_quote(v.empty() ? "" : masked);
    case shape::list:
      return array(split_list(v), [](const std::string& i) { return i; });
    case shape::secret_list:
      return array(split_list(v), [](const std::string&) { return std::string(masked); });
    case shape::urls: {
      std::string out;
      for (const auto& u : split_list(v)) out += (out.empty() ? "" : ",") + broker::redact_redis_url(u);
      return toml_quote(out);
    }
  }
  return v;
}

std::string render_config(const std::vector<setting>& all, const std::string& file) {
  std::string out =
      "# Broadcaster: effective configuration (flag > environment > file > default). Secrets are masked.\n";
  if (!file.empty()) out += "# config file: " + file + "\n";
  for (const auto& s : all) {
    const auto line = s.key + " = " + rendered(s);
    out += fmt::format("{:<40} # {}\n", line, s.source);
  }
  return out;
}

// The [[channels]] rules as TOML tables, after every top-level key (TOML wants tables last).
std::string render_channel_rules(const std::vector<core::channel_rule>& rules) {
  if (rules.empty()) return "";
  std::string out = "\n# [[channels]] rules (file), in order: the first whose pattern matches a channel wins";
  for (const auto& r : rules) {
    out += "\n[[channels]]\npattern = " + toml_quote(r.pattern) + "\n";
    if (r.history_size) out += fmt::format("history_size = {}\n", *r.history_size);
    if (r.history_ttl) out += fmt::format("history_ttl = {}\n", r.history_ttl->count());
    if (r.presence) out += fmt::format("presence = {}\n", *r.presence);
    if (r.join_leave) out += fmt::format("join_leave = {}\n", *r.join_leave);
    if (r.join_leave_limit) out += fmt::format("join_leave_limit = {}\n", *r.join_leave_limit);
  }
  return out;
}

// ---- checks

// Turns the raw values into the config and checks it; returns the line to print when it is unusable.
std::optional<std::string> finish(config& c, const raw_values& r) {
  c.api_keys = split_list(r.api_keys);
  c.net.allowed_origins = split_list(r.origins);
  c.net.slow_policy =
      r.policy == "drop" ? net::slow_consumer_policy::drop : net::slow_consumer_policy::disconnect;
  c.net.auth_timeout = seconds_to_ms(r.auth_timeout);
  c.net.idle_timeout = seconds_to_ms(r.idle_timeout);
  c.net.handshake_timeout = seconds_to_ms(r.handshake_timeout);
  c.net.keepalive_timeout = seconds_to_ms(r.keepalive_timeout);
  if (c.dev) c.net.console = true;
  if (c.net.max_connections == 0)
    c.net.max_connections = std::numeric_limits<std::size_t>::max();  // unlimited
  if (c.rate_burst < 1) c.rate_burst = 1;
  c.channels = core::channel_rules(
      {r.history_size, std::chrono::seconds(r.history_ttl), r.presence, true, r.join_leave_limit},
      r.channels);
  c.presence_ttl = std::chrono::seconds(r.presence_ttl);

  if (!c.dev && c.jwt_secret.empty())
    return "JWT_SECRET is required (set JWT_SECRET or --jwt-secret, or use --dev)";
  if (!c.dev && c.api_keys.empty()) return "API_KEYS is required (set API_KEYS or --api-keys, or use --dev)";
  if (c.net.base_path.empty() || c.net.base_path.front() != '/') return "BASE_PATH must start with '/'";
  while (c.net.base_path.size() > 1 && c.net.base_path.back() == '/') c.net.base_path.pop_back();
  if (c.net.base_path == "/") c.net.base_path.clear();
  if (c.net.max_message_size < 128) return "MAX_MESSAGE_SIZE must be at least 128";
  if (r.auth_timeout <= 0 || r.idle_timeout <= 0 || r.handshake_timeout <= 0 || r.keepalive_timeout <= 0)
    return "timeouts must be positive";
  if (c.broker == "redis") {
    if (c.redis_url.empty()) return "REDIS_URL is required with BROKER=redis";
    try {
      broker::parse_redis_urls(c.redis_url);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    if (c.redis_tls_cert_file.empty() != c.redis_tls_key_file.empty())
      return "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both or neither";
    const std::pair<const char*, const std::string*> files[] = {
        {"REDIS_TLS_CA_FILE", &c.redis_tls_ca_file},
        {"REDIS_TLS_CERT_FILE", &c.redis_tls_cert_file},
        {"REDIS_TLS_KEY_FILE", &c.redis_tls_key_file}};
    for (const auto& [name, file] : files) {
      if (!file->empty() && !std::ifstream(*file)) return std::string("cannot read ") + name + " " + *file;
    }
    if (!c.redis_sentinel_username.empty() && c.redis_sentinel_password.empty())
      return "REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD";
  }
  if (boost::system::error_code ec; boost::asio::ip::make_address(c.host, ec), ec)
    return "HOST must be an IPv4 or IPv6 address, not '" + c.host + "'";
  if (c.net.tls_cert.empty() != c.net.tls_key.empty())
    return "TLS_CERT and TLS_KEY go together: set both or neither";
  for (const auto* file : {&c.net.tls_cert, &c.net.tls_key}) {
    if (!file->empty() && !std::ifstream(*file)) return "cannot read TLS file " + *file;
  }
  return std::nullopt;
}

}  // namespace

std::optional<config> parse_config(int argc, char** argv, int& exit_code) {
  config c;
  raw_values r;
  CLI::App app{
      "Broadcaster: a real-time WebSocket messaging server.\n"
      "Every option can also be set by the environment variable shown in brackets, or in the TOML file\n"
      "given with --config under the same name in lower case (max_connections = 1000).\n"
      "A flag wins over the environment, which wins over the file."};
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", BROADCASTER_VERSION);
  app.footer("Client tokens: broadcaster token --help");
  settings s(app);
  declare(s, c, r);
  CLI::App scratch_app;  // checks the file's values that flags or the environment override
  config scratch_config;
  raw_values scratch_raw;
  settings scratch(scratch_app);
  declare(scratch, scratch_config, scratch_raw);
  bool print = false;
  app.add_option("--config", c.config_file,
                 "TOML configuration file (keys: the environment names in lower case)")
      ->envname("CONFIG");
  app.add_flag("--print-config", print,
               "Print the effective configuration as TOML, secrets masked, and exit");

  auto fail = [&](const std::string& line) {
    std::cerr << "broadcaster: " << line << "\n";
    exit_code = 2;
    return std::nullopt;
  };
  try {
    app.parse(argc, argv);
    for (auto& one : s.all()) {
      if (one.option->count() > 0) one.source = on_command_line(argc, argv, one.flag) ? "flag" : "env";
    }
    if (!c.config_file.empty()) apply_file(c.config_file, s.all(), scratch.all(), r.channels);
  } catch (const CLI::ParseError& e) {
    exit_code = app.exit(e) == 0 ? 0 : 2;
    return std::nullopt;
  } catch (const config_error& e) {
    return fail(e.what());
  }
  // Dev mode mints tokens for anyone who can reach it: it listens on this machine only, unless a host is
  // given (flag, HOST or the file).
  if (c.dev) {
    for (auto& one : s.all()) {
      if (one.flag != "--host" || one.source != "default") continue;
      c.host = "127.0.0.1";
      one.source = "dev";
    }
  }
  const std::string effective = print
                                    ? render_config(s.all(), c.config_file) + render_channel_rules(r.channels)
                                    : "";  // before normalising
  if (auto error = finish(c, r)) return fail(*error);
  if (print) {
    std::cout << effective << std::flush;
    exit_code = 0;
    return std::nullopt;
  }
  return c;
}

}  // namespace bc::app
