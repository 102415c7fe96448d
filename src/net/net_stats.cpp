#include "net/net_stats.hpp"

namespace bc::net {

const char* to_string(close_reason r) {
  switch (r) {
    case close_reason::client_close:
      return "client_close";
    case close_reason::client_gone:
      return "client_gone";
    case close_reason::protocol_error:
      return "protocol_error";
    case close_reason::message_too_big:
      return "message_too_big";
    case close_reason::invalid_utf8:
      return "invalid_utf8";
    case close_reason::auth_timeout:
      return "auth_timeout";
    case close_reason::idle_timeout:
      return "idle_timeout";
    case close_reason::token_expired:
      return "token_expired";
    case close_reason::slow_consumer:
      return "slow_consumer";
    case close_reason::shutdown:
      return "shutdown";
    case close_reason::policy:
      return "policy";
    case close_reason::server_api:
      return "server_api";
    case close_reason::count_:
      break;
  }
  return "unknown";
}

}  // namespace bc::net
