#include "app/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "app/shard.hpp"
#include "auth/jwt_verifier.hpp"
#include "broker/broker.hpp"
#include "engine/channel_interest.hpp"
#include "util/prometheus.hpp"

namespace bc::app {

namespace {

template <typename Get>
std::uint64_t sum(const std::vector<std::unique_ptr<shard>>& shards, Get get) {
  std::uint64_t total = 0;
  for (const auto& s : shards) total += get(*s);
  return total;
}

}  // namespace

std::string render_metrics(const std::vector<std::unique_ptr<shard>>& shards,
                           const engine::channel_interest& interest, const broker::broker& broker) {
  std::string out;
  out.reserve(4096);
  auto net = [&](auto field) {
    return sum(shards, [&](shard& s) { return (s.worker().stats().*field).get(); });
  };
  auto proto = [&](auto field) { return sum(shards, [&](shard& s) { return (s.stats().*field).get(); }); };

  util::append_metric(out, "broadcaster_connections", "gauge", "Open WebSocket connections.",
                      net(&net::net_stats::connections));
  util::append_metric(out, "broadcaster_connections_authenticated", "gauge",
                      "Authenticated WebSocket connections.", net(&net::net_stats::authenticated));
  util::append_metric(out, "broadcaster_connections_accepted_total", "counter",
                      "WebSocket connections accepted.", net(&net::net_stats::accepted));
  util::append_metric(out, "broadcaster_connections_rejected_total", "counter",
                      "WebSocket upgrades refused by max-connections.", net(&net::net_stats::rejected_limit));
  util::append_metric_header(out, "broadcaster_connections_closed_total", "counter",
                             "WebSocket connections closed, by reason.");
  for (std::size_t r = 0; r < static_cast<std::size_t>(net::close_reason::count_); ++r) {
    const auto n = sum(shards, [&](shard& s) { return s.worker().stats().closed[r].get(); });
    out += fmt::format("broadcaster_connections_closed_total{{reason=\"{}\"}} {}\n",
                       net::to_string(static_cast<net::close_reason>(r)), n);
  }
  util::append_metric(out, "broadcaster_channels", "gauge",
                      "Channels with at least one subscriber on this node.", interest.channel_count());
  util::append_metric(out, "broadcaster_subscriptions", "gauge", "Subscriptions on this node.",
                      proto(&protocol::session_stats::subscriptions));
  util::append_metric_header(out, "broadcaster_messages_published_total", "counter",
                             "Messages accepted for publishing, by source.");
  out += fmt::format("broadcaster_messages_published_total{{source=\"rest\"}} {}\n",
                     proto(&protocol::session_stats::published_rest));
  out += fmt::format("broadcaster_messages_published_total{{source=\"websocket\"}} {}\n",
                     proto(&protocol::session_stats::published_ws));
  util::append_metric(out, "broadcaster_deliveries_total", "counter",
                      "Broadcast frames queued to subscribers.", net(&net::net_stats::deliveries));
  util::append_metric(out, "broadcaster_deliveries_dropped_total", "counter",
                      "Deliveries skipped for slow consumers.", net(&net::net_stats::dropped));
  util::append_metric(out, "broadcaster_bytes_received_total", "counter", "WebSocket bytes received.",
                      net(&net::net_stats::bytes_in));
  util::append_metric(out, "broadcaster_bytes_sent_total", "counter", "WebSocket bytes sent.",
                      net(&net::net_stats::bytes_out));
  util::append_metric(
      out, "broadcaster_handovers_total", "counter",
      "Batches of publications a worker thread took from another thread (REST, Redis, WebSocket publish).",
      sum(shards, [](shard& s) { return s.handovers(); }));
  util::append_metric(
      out, "broadcaster_handover_wakeups_total", "counter",
      "Hand-overs that posted a wake-up to a worker thread not lingering for them (see --handover-delay).",
      sum(shards, [](shard& s) { return s.wakeups(); }));
  util::append_metric(
      out, "broadcaster_inbox_bytes", "gauge",
      "Bytes of publications queued for worker threads, not yet taken (bounded by --inbox-limit).",
      sum(shards, [](shard& s) { return s.inbox_bytes(); }));
  std::uint64_t peak = 0;
  for (const auto& s : shards) peak = std::max<std::uint64_t>(peak, s->inbox_peak());
  util::append_metric(
      out, "broadcaster_inbox_bytes_peak", "gauge",
      "The most one worker thread's inbox has held since start, bytes (how close --inbox-limit came).", peak);
  util::append_metric(out, "broadcaster_inbox_refused_total", "counter",
                      "Publishes refused (ResourceExhausted) because a worker thread's inbox was full.",
                      sum(shards, [](shard& s) { return s.refused(); }));
  util::append_metric(out, "broadcaster_inbox_overflows_total", "counter",
                      "Publications from the broker queued over --inbox-limit after waiting 1 s for room.",
                      sum(shards, [](shard& s) { return s.overflows(); }));
  util::append_metric(
      out, "broadcaster_batched_sends_total", "counter",
      "Connection writes submitted together through io_uring (stays 0 when writing with sendmsg).",
      net(&net::net_stats::batched_sends));
  util::append_metric(out, "broadcaster_http_requests_total", "counter",
                      "HTTP requests (REST, health, metrics).", net(&net::net_stats::http_requests));
  util::append_metric(out, "broadcaster_auth_failures_total", "counter",
                      "Failed JWT auth and API key checks.", proto(&protocol::session_stats::auth_failures));
  util::append_metric_header(out, "broadcaster_auth_failures_by_reason_total", "counter",
                             "Failed authentications, by reason.");
  for (std::size_t r = 0; r < protocol::auth_failure_reasons; ++r) {
    const auto n = sum(shards, [&](shard& s) { return s.stats().auth_failures_by_reason[r].get(); });
    const std::string_view reason = r == 0 ? "api_key" : auth::to_string(static_cast<auth::jwt_error>(r));
    out += fmt::format("broadcaster_auth_failures_by_reason_total{{reason=\"{}\"}} {}\n", reason, n);
  }
  util::append_metric_header(out, "broadcaster_request_duration_seconds", "histogram",
                             "WebSocket request latency, arrival to reply, by method.");
  for (std::size_t m = 0; m < protocol::method_count; ++m) {
    const auto name = protocol::to_string(static_cast<protocol::method>(m));
    using hist = protocol::latency_histogram;
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b <= hist::bounds_us.size(); ++b) {
      cumulative += sum(shards, [&](shard& s) { return s.stats().latency[m].bucket(b); });
      const std::string le =
          b < hist::bounds_us.size() ? fmt::format("{}", hist::bounds_us[b] / 1e6) : "+Inf";
      out += fmt::format("broadcaster_request_duration_seconds_bucket{{method=\"{}\",le=\"{}\"}} {}\n", name,
                         le, cumulative);
    }
    const auto sum_us = sum(shards, [&](shard& s) { return s.stats().latency[m].sum_us(); });
    out += fmt::format("broadcaster_request_duration_seconds_sum{{method=\"{}\"}} {}\n", name, sum_us / 1e6);
    out += fmt::format("broadcaster_request_duration_seconds_count{{method=\"{}\"}} {}\n", name, cumulative);
  }
  util::append_metric(out, "broadcaster_rate_limited_total", "counter",
                      "Requests refused by the per-connection rate limit.",
                      proto(&protocol::session_stats::rate_limited));
  util::append_metric_header(out, "broadcaster_requests_total", "counter", "WebSocket requests, by method.");
  for (std::size_t m = 0; m < protocol::method_count; ++m) {
    const auto n = sum(shards, [&](shard& s) { return s.stats().requests[m].get(); });
    out += fmt::format("broadcaster_requests_total{{method=\"{}\"}} {}\n",
                       protocol::to_string(static_cast<protocol::method>(m)), n);
  }
  util::append_metric_header(out, "broadcaster_request_errors_total", "counter",
                             "WebSocket error replies, by code.");
  for (std::size_t c = 0; c < protocol::error_code_count; ++c) {
    const auto n = sum(shards, [&](shard& s) { return s.stats().errors[c].get(); });
    out += fmt::format("broadcaster_request_errors_total{{code=\"{}\"}} {}\n",
                       protocol::to_string(static_cast<protocol::error_code>(c)), n);
  }
  util::append_metric(out, "broadcaster_broker_up", "gauge", "1 while the broker accepts publishes.",
                      broker.healthy() ? 1 : 0);
  broker.append_metrics(out);
  return out;
}

}  // namespace bc::app
