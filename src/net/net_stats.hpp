#pragma once
// Per-thread transport counters, summed over threads when scraped.

#include "core/counter_metric.hpp"
#include "protocol/session_stats.hpp"

namespace bc::net {

using protocol::local_counter;

// Why a WebSocket connection ended: the one table of close reasons, logged and counted.
enum class close_reason {
  client_close,
  client_gone,  // EOF or reset without a close frame
  protocol_error,
  message_too_big,
  invalid_utf8,
  auth_timeout,
  idle_timeout,
  token_expired,
  slow_consumer,
  shutdown,
  policy,      // closed by the protocol layer (rate limit)
  server_api,  // POST {BASE}/disconnect (close 4003)
  count_
};
const char* to_string(close_reason r);

struct net_stats {
  local_counter connections;    // gauge: open WebSocket connections
  local_counter authenticated;  // gauge
  local_counter accepted;
  local_counter rejected_limit;
  local_counter closed[static_cast<std::size_t>(close_reason::count_)];
  local_counter deliveries;
  local_counter dropped;
  local_counter bytes_in;
  local_counter bytes_out;
  local_counter batched_sends;  // connection writes that went out in an io_uring batch
  local_counter http_requests;
};

// The series of the scalar counters above (the closed-by-reason family is rendered from close_reason).
inline constexpr core::counter_metric<net_stats> net_metrics[] = {
    {"broadcaster_connections", "gauge", "Open WebSocket connections.", &net_stats::connections},
    {"broadcaster_connections_authenticated", "gauge", "Authenticated WebSocket connections.",
     &net_stats::authenticated},
    {"broadcaster_connections_accepted_total", "counter", "WebSocket connections accepted.",
     &net_stats::accepted},
    {"broadcaster_connections_rejected_total", "counter", "WebSocket upgrades refused by max-connections.",
     &net_stats::rejected_limit},
    {"broadcaster_deliveries_total", "counter", "Broadcast frames queued to subscribers.",
     &net_stats::deliveries},
    {"broadcaster_deliveries_dropped_total", "counter", "Deliveries skipped for slow consumers.",
     &net_stats::dropped},
    {"broadcaster_bytes_received_total", "counter", "WebSocket bytes received.", &net_stats::bytes_in},
    {"broadcaster_bytes_sent_total", "counter", "WebSocket bytes sent.", &net_stats::bytes_out},
    {"broadcaster_batched_sends_total", "counter",
     "Connection writes submitted together through io_uring (stays 0 when writing with sendmsg).",
     &net_stats::batched_sends},
    {"broadcaster_http_requests_total", "counter", "HTTP requests (REST, health, metrics).",
     &net_stats::http_requests},
};

}  // namespace bc::net
