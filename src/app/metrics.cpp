#include "app/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "app/build_info.hpp"
#include "app/process_metrics.hpp"
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

// Renders a table of counter_metric rows (declared beside their counters), one header per family.
template <class Stats, std::size_t N, class Sum>
void append_table(std::string& out, const core::counter_metric<Stats> (&table)[N], Sum sum_of) {
  std::string_view family;
  for (const auto& m : table) {
    if (m.name != family) util::append_metric_header(out, m.name, m.type, m.help);
    family = m.name;
    util::append_sample(out, m.name, m.labels, sum_of(m.field));
  }
}

}  // namespace

std::string render_metrics(const std::vector<std::unique_ptr<shard>>& shards,
                           const engine::channel_interest& interest, const broker::broker& broker,
                           std::string_view broker_kind) {
  std::string out;
  out.reserve(4096);
  auto net = [&](auto field) {
    return sum(shards, [&](shard& s) { return (s.worker().stats().*field).get(); });
  };
  auto proto = [&](auto field) { return sum(shards, [&](shard& s) { return (s.stats().*field).get(); }); };
  append_table(out, net::net_metrics, net);
  append_table(out, protocol::session_metrics, proto);

  util::append_metric_header(out, "broadcaster_connections_closed_total", "counter",
                             "WebSocket connections closed, by reason.");
  for (std::size_t r = 0; r < static_cast<std::size_t>(net::close_reason::count_); ++r) {
    const auto n = sum(shards, [&](shard& s) { return s.worker().stats().closed[r].get(); });
    out += fmt::format("broadcaster_connections_closed_total{{reason=\"{}\"}} {}\n",
                       net::to_string(static_cast<net::close_reason>(r)), n);
  }
  util::append_metric(out, "broadcaster_channels", "gauge",
                      "Channels with at least one subscriber on this node.", interest.channel_count());
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
  // Constant 1: the labels are the information, joined onto other series in queries (`* on(instance)
  // group_left(version) broadcaster_build_info`).
  util::append_metric_header(out, "broadcaster_build_info", "gauge",
                             "Always 1; the version and commit of this binary and the broker it runs with.");
  out += fmt::format("broadcaster_build_info{{version=\"{}\",commit=\"{}\",broker=\"{}\"}} 1\n",
                     BROADCASTER_VERSION, build_commit, broker_kind);
  append_process_metrics(out);
  return out;
}

}  // namespace bc::app
