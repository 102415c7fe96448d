#pragma once
// Parsing of client requests: one WebSocket text message in, a validated request or a protocol error out.

#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/error_code.hpp"
#include "util/enum_count.hpp"

namespace bc::protocol {

// Numbered from 0 without gaps: the per-method counters are indexed by it and sized by method_count.
enum class method { auth, subscribe, unsubscribe, publish, heartbeat, history, presence, presence_stats };

std::optional<method> parse_method(std::string_view name);

// The method's name on the wire, and empty for a number that is no method. No default and -Wswitch as an
// error: a new method without a name does not compile.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
constexpr std::string_view to_string(method m) {
  switch (m) {
    case method::auth:
      return "auth";
    case method::subscribe:
      return "subscribe";
    case method::unsubscribe:
      return "unsubscribe";
    case method::publish:
      return "publish";
    case method::heartbeat:
      return "heartbeat";
    case method::history:
      return "history";
    case method::presence:
      return "presence";
    case method::presence_stats:
      return "presenceStats";
  }
  return {};
}
#pragma GCC diagnostic pop

inline constexpr std::size_t method_count = util::enum_count<method>();

struct request {
  // The request id exactly as the client wrote it (number or string, escapes and all), echoed as requestId;
  // empty for a notification: no id, null, or a number equal to zero (0, -0, 0.0, 0e5; see
  // raw_json::is_zero).
  std::string id_json;
  method verb = method::heartbeat;
  boost::json::object params;  // empty when params was absent or null
  // publish only: the source text of params.payload, delivered as is; empty when absent. A view into the text
  // given to parse_request.
  std::string_view payload_json;
};

struct parse_result {
  std::optional<request> req;
  error_code code = error_code::invalid_argument;
  std::string message;
  std::string id_json;  // known even when parsing failed later (so the error can carry requestId)
};

// Deeply nested documents are refused (InvalidArgument) instead of recursing without bound.
constexpr unsigned max_json_depth = 64;

// `storage` holds the parsed document (request.params included): a monotonic resource on the caller's stack
// makes parsing allocation-free for ordinary requests. The result must not outlive it, nor `text`.
parse_result parse_request(std::string_view text, boost::json::storage_ptr storage = {});

// Parses `text` as one JSON value with the same limits; nullopt and `message` set on failure.
std::optional<boost::json::value> parse_json(std::string_view text, std::string& message,
                                             boost::json::storage_ptr storage = {});

// Typed access to params. Each returns nullopt (and fills `message`) when the field is missing or has the
// wrong type.
std::optional<std::string_view> string_param(const boost::json::object& params, std::string_view key,
                                             std::string& message);

}  // namespace bc::protocol
