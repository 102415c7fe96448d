#pragma once
// Per-thread transport counters, summed over threads when scraped.

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
  policy,  // closed by the protocol layer (rate limit)
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

}  // namespace bc::net
