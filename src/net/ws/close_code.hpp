#pragma once

#include <cstdint>

namespace bc::ws {

// Every WebSocket close code the server sends or reports, in one table (RFC 6455 7.4.1 plus our own 4xxx).
// no_status and abnormal are never sent on the wire: they describe a close frame without a body and a
// connection that dropped without any close frame.
enum class close_code : std::uint16_t {
  normal = 1000,                  // orderly shutdown
  going_away = 1001,              // server shutting down or client navigating away
  protocol_error = 1002,          // peer broke RFC 6455 framing rules
  unsupported_data = 1003,        // e.g. a binary frame where only text is accepted
  no_status = 1005,               // close frame had no status code (reported only)
  abnormal = 1006,                // connection lost without a close frame (reported only)
  invalid_payload = 1007,         // text that is not UTF-8
  policy_violation = 1008,        // generic policy refusal (auth, rate limit)
  message_too_big = 1009,         // message larger than the configured maximum
  internal_error = 1011,          // server bug or resource failure
  token_expired = 4001,           // connection token expired without a refresh (docs/protocol.md)
  disconnected_by_server = 4003,  // the server API disconnected the user (PROTOCOL "(ext) Server API")
};

// Whether a peer may put `code` in a close frame (RFC 6455 7.4): 1004-1006 and 1015 are reserved for
// local reporting, 1016-2999 are unassigned, 3000-4999 belong to libraries and applications.
constexpr bool is_valid_close_code_on_wire(std::uint16_t code) {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1011) return true;
  return code >= 3000 && code <= 4999;
}

}  // namespace bc::ws
