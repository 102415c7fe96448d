#include "app/server.hpp"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "app/metrics.hpp"
#include "app/secret_strength.hpp"
#include "app/token_command.hpp"
#include "auth/jwt_signer.hpp"
#include "broker/memory_broker.hpp"
#include "broker/redis_broker.hpp"
#include "protocol/encoder.hpp"
#include "protocol/time_format.hpp"
#include "protocol/validation.hpp"
#include "util/comma_list.hpp"
#include "util/hex.hpp"

namespace bc::app {

namespace {

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  std::string out;
  for (auto b : buf) util::append_hex(out, b);
  return out;
}

// Connections beyond the open-file limit cannot be served: cap max_connections below it, keeping descriptors
// for listeners, HTTP requests in flight, the broker and logs. The soft limit is raised to the hard one
// first.
void fit_connections_to_fd_limit(config& c) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur == RLIM_INFINITY) return;
  const std::size_t reserve = 64 + 4 * static_cast<std::size_t>(c.threads);
  const std::size_t usable = rl.rlim_cur > reserve ? static_cast<std::size_t>(rl.rlim_cur) - reserve : 1;
  if (c.net.max_connections > usable) {
    spdlog::info("max connections {} capped to {} by the open-file limit {}", c.net.max_connections, usable,
                 static_cast<std::size_t>(rl.rlim_cur));
    c.net.max_connections = usable;
  }
}

config with_dev_defaults(config c) {
  if (c.dev && c.jwt_secret.empty()) c.jwt_secret = random_hex(32);
  if (c.dev && c.api_keys.empty()) c.api_keys.push_back("dev-" + random_hex(16));
  if (c.threads == 0) c.threads = std::max(1u, std::thread::hardware_concurrency());
  fit_connections_to_fd_limit(c);
  return c;
}

std::string sample_token(const std::string& secret, const std::string& sub,
                         const std::vector<std::string>& channels, std::int64_t ttl_s) {
  const token_request request{sub, channels, {"subscribe", "publish"}, ttl_s, {}};
  return auth::sign_hs256(secret, token_payload(request, protocol::now_unix_ms() / 1000));
}

}  // namespace

namespace {
broker::redis_options redis_options_of(const config& c) {
  broker::redis_options o;
  o.channels = c.channels;
  o.presence_ttl = c.presence_ttl;
  o.wait_replicas = c.redis_wait_replicas;
  o.tls.ca_file = c.redis_tls_ca_file;
  o.tls.cert_file = c.redis_tls_cert_file;
  o.tls.key_file = c.redis_tls_key_file;
  o.tls.server_name = c.redis_tls_server_name;
  o.tls.insecure_skip_verify = c.redis_tls_insecure_skip_verify;
  o.sentinel_username = c.redis_sentinel_username;
  o.sentinel_password = c.redis_sentinel_password;
  return o;
}
}  // namespace

server::server(config cfg)
    : cfg_(with_dev_defaults(std::move(cfg))),
      node_id_(random_hex(8)),
      secret_warnings_(weak_secret_warnings(cfg_.jwt_secret, cfg_.api_keys)),
      started_(std::chrono::steady_clock::now()),
      verifier_(cfg_.jwt_secret, std::chrono::seconds(cfg_.jwt_leeway_s)),
      api_keys_(cfg_.api_keys),
      node_(protocol::encode_publication, cfg_.channels),
      broker_(cfg_.broker == "redis"
                  ? broker::make_redis_broker(node_, cfg_.redis_url, redis_options_of(cfg_))
                  : std::make_unique<broker::memory_broker>(node_, cfg_.channels, cfg_.history_memory_limit)),
      publisher_(node_),
      rest_(publisher_, api_keys_, node_, cfg_.presence_max_clients),
      shared_(cfg_.net) {
  node_.attach(*broker_);
  node_.set_id(node_id_);
  if (!cfg_.net.tls_cert.empty())
    tls_ = std::make_unique<net::tls_context>(cfg_.net.tls_cert, cfg_.net.tls_key);
  http_ = std::make_unique<net::http_services>(net::http_services{
      rest_, [this] { return broker_->healthy(); },
      [this] { return render_metrics(shards_, node_.interest(), *broker_, cfg_.broker); },
      [this] { return info(); },
      cfg_.dev
          ? std::function<std::string(std::string_view)>([this](std::string_view q) { return dev_token(q); })
          : nullptr,
      tls_ ? tls_->native() : nullptr});
  protocol::session_limits limits{cfg_.max_subscriptions, cfg_.jwt_leeway_s, cfg_.rate_limit,
                                  cfg_.rate_burst};
  limits.presence_max_clients = cfg_.presence_max_clients;
  for (unsigned i = 0; i < cfg_.threads; ++i) {
    shards_.push_back(std::make_unique<shard>(
        i, node_, publisher_, verifier_, limits, shared_,
        std::chrono::milliseconds(cfg_.threads > 1 ? cfg_.handover_delay_ms : 0), cfg_.inbox_limit));
    node_.add_thread(*shards_.back());
  }
}

server::~server() {
  for (auto& s : shards_) s->join();
}

std::string server::dev_token(std::string_view query) const {
  std::vector<std::string> channels;
  constexpr std::string_view key = "channels=";
  if (auto at = query.find(key); at != std::string_view::npos) {
    auto list = query.substr(at + key.size());
    list = list.substr(0, list.find('&'));
    while (const auto item = util::next_list_item(list)) {
      // Browsers percent-encode ':' (and may encode more); an encoded ',' stays inside its name.
      auto name = util::percent_decode(*item);
      if (name && protocol::is_valid_channel(*name)) channels.push_back(std::move(*name));
    }
  }
  if (channels.empty()) channels = {"news", "chat:lobby"};
  return sample_token(cfg_.jwt_secret, "console", channels, 3600);
}

std::string server::info() const {
  std::uint64_t connections = 0, subscriptions = 0;
  for (const auto& s : shards_) {
    connections += s->worker().stats().connections.get();
    subscriptions += s->stats().subscriptions.get();
  }
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  std::string warnings = "[";
  for (const auto& w : secret_warnings_)
    warnings += (warnings.size() > 1 ? "," : "") + protocol::json_quote(w);
  warnings += "]";
  return "{\"nodeId\":\"" + node_id_ + "\",\"version\":\"" + std::string(BROADCASTER_VERSION) +
         "\",\"uptimeSeconds\":" + std::to_string(uptime.count()) +
         ",\"threads\":" + std::to_string(shards_.size()) +
         ",\"connections\":" + std::to_string(connections) +
         ",\"subscriptions\":" + std::to_string(subscriptions) +
         ",\"channels\":" + std::to_string(node_.interest().channel_count()) + ",\"configFile\":" +
         (cfg_.config_file.empty() ? std::string("null") : protocol::json_quote(cfg_.config_file)) +
         ",\"broker\":{\"kind\":" + protocol::json_quote(cfg_.broker) +
         ",\"healthy\":" + (broker_->healthy() ? "true" : "false") +
         ",\"state\":" + protocol::json_quote(broker_->describe()) + "},\"warnings\":" + warnings + "}";
}

void server::print_dev_banner(std::uint16_t port) const {
  std::string host = cfg_.host == "0.0.0.0" ? "127.0.0.1" : cfg_.host == "::" ? "::1" : cfg_.host;
  const bool local_only = host == cfg_.host && (host == "::1" || host.starts_with("127."));
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  const std::string base = "http://" + host + ":" + std::to_string(port) + cfg_.net.base_path;
  const std::string token = sample_token(cfg_.jwt_secret, "dev-user", {"news", "chat:lobby"}, 24 * 3600);
  // Anyone who reaches a dev server can take tokens from {BASE}/console/dev-token: say who can.
  const std::string reach =
      local_only
          ? "  Listening on " + cfg_.host +
                " only: other machines cannot reach it (--host 0.0.0.0 would open it to them).\n"
          : "  WARNING: listening on " + cfg_.host + ": anyone who reaches this port can get tokens from " +
                cfg_.net.base_path + "/console/dev-token.\n";
  std::cout
      << "\n  Dev mode. Never run it like this in production.\n"
      << reach << "  API key:      " << cfg_.api_keys.front() << "\n"
      << "  Sample token: (sub dev-user, channels news and chat:lobby, scope subscribe+publish, 24 h)\n    "
      << token << "\n\n"
      << "  1. Connect a WebSocket to ws://" << host << ":" << port << cfg_.net.base_path
      << "/websocket and send\n"
      << "     {\"id\":1,\"method\":\"auth\",\"params\":{\"token\":\"" << token << "\"}}\n"
      << "     {\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"news\"}}\n"
      << "  2. Publish:\n"
      << "     curl -X POST " << base << "/publish -H 'Authorization: Bearer " << cfg_.api_keys.front()
      << "' -H 'Content-Type: application/json' -d "
         "'{\"channel\":\"news\",\"event\":\"hello\",\"payload\":{\"text\":\"hi\"}}'\n"
      << "  3. Or open the console: " << base << "/console/"
      << (cfg_.net.console_dir.empty() ? "" : "  (files from --console-dir " + cfg_.net.console_dir + ")")
      << "\n\n"
      << std::flush;
}

int server::run() {
  std::signal(SIGPIPE, SIG_IGN);
  // SIGINT/SIGTERM are caught from here on, before anything listens: a signal sent as soon as the node
  // answers (an orchestrator, a test) is queued by the signal_set and handled, never the default action.
  boost::asio::io_context control;
  boost::asio::signal_set signals(control, SIGINT, SIGTERM);
  const auto address = boost::asio::ip::make_address(cfg_.host);
  boost::asio::ip::tcp::endpoint endpoint(address, cfg_.port);
  // SO_REUSEPORT would let this process join another one's listening port: make sure nobody holds it first.
  if (endpoint.port() != 0) {
    boost::asio::ip::tcp::acceptor probe(shards_.front()->ioc());
    probe.open(endpoint.protocol());
    probe.set_option(boost::asio::socket_base::reuse_address(true));
    boost::system::error_code ec;
    probe.bind(endpoint, ec);
    if (ec)
      throw std::runtime_error("cannot listen on " + cfg_.host + ":" + std::to_string(cfg_.port) + ": " +
                               ec.message());
  }
  // The first listener picks the port when 0 was asked; the others join it through SO_REUSEPORT.
  for (auto& s : shards_) {
    s->listener = std::make_shared<net::listener>(s->worker(), *http_, endpoint);
    endpoint = s->listener->local_endpoint();
  }
  const auto tick = std::clamp(std::min(cfg_.net.auth_timeout, cfg_.net.idle_timeout) / 8,
                               std::chrono::milliseconds(20), std::chrono::milliseconds(250));
  broker_->start();
  for (auto& s : shards_) {
    boost::asio::post(s->ioc(), [&s = *s, tick] {
      s.listener->run();
      s.worker().start_ticker(tick);
    });
    s->start();
  }
  // Quiet log levels still say where the server listens (with --port 0 there is no other way to know), in
  // the configured log format.
  const auto level = spdlog::default_logger()->level();
  if (level > spdlog::level::info) spdlog::default_logger()->set_level(spdlog::level::info);
  // Weak secrets are said loudly, whatever the log level, but the node still starts (secret_strength.hpp);
  // before the listening line, so that whoever waits for that line has seen them.
  for (const auto& warning : secret_warnings_) spdlog::warn("WEAK SECRET: {}", warning);
  spdlog::info(
      "broadcaster {} listening on {}:{} ({}, base path '{}', {} threads, broker {}, config {}) node={}",
      BROADCASTER_VERSION, endpoint.address().to_string(), endpoint.port(), tls_ ? "https/wss" : "http/ws",
      cfg_.net.base_path, shards_.size(), broker_->describe(),
      cfg_.config_file.empty() ? "flags and environment only" : cfg_.config_file, node_id_);
  spdlog::default_logger()->set_level(level);
  if (cfg_.dev) print_dev_banner(endpoint.port());

  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}, shutting down", sig);
    shutdown(control);
  });
  control.run();
  shutdown_timer_.reset();  // it belongs to `control`, which ends with this function
  broker_->stop();
  for (auto& s : shards_) s->join();
  spdlog::info("stopped");
  return 0;
}

void server::shutdown(boost::asio::io_context& control) {
  for (auto& s : shards_) {
    boost::asio::post(s->ioc(), [&s = *s] {
      s.listener->stop();
      s.worker().close_all();
    });
  }
  // Wait for the close handshakes, bounded by the shutdown timeout.
  shutdown_deadline_ = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<std::int64_t>(cfg_.shutdown_timeout_s * 1000));
  shutdown_timer_ = std::make_unique<boost::asio::steady_timer>(control);
  poll_shutdown(control);
}

void server::poll_shutdown(boost::asio::io_context& control) {
  // Done when every WebSocket has closed (each after the answers to its publishes) and every REST publish
  // handed to the broker has been answered.
  const auto open = shared_.connections.load();
  std::uint64_t rest = 0;
  for (const auto& s : shards_) rest += s->worker().rest_in_flight();
  if ((open == 0 && rest == 0) || std::chrono::steady_clock::now() >= shutdown_deadline_) {
    if (open != 0) spdlog::warn("{} connections still open at shutdown timeout", open);
    if (rest != 0) spdlog::warn("{} REST publishes still unanswered at shutdown timeout", rest);
    control.stop();
    return;
  }
  shutdown_timer_->expires_after(std::chrono::milliseconds(20));
  shutdown_timer_->async_wait([this, &control](boost::system::error_code ec) {
    if (!ec) poll_shutdown(control);
  });
}

}  // namespace bc::app
