#include "protocol/publisher.hpp"

#include "protocol/encoder.hpp"
#include "protocol/request.hpp"
#include "protocol/time_format.hpp"
#include "protocol/validation.hpp"

namespace bc::protocol {

namespace {
publish_outcome failure(error_code code, std::string message) {
  return {false, code, std::move(message)};
}
}  // namespace

std::optional<publish_outcome> publisher::validate(const boost::json::object& params, std::string& channel) {
  std::string message;
  auto ch = string_param(params, "channel", message);
  if (!ch) return failure(error_code::invalid_argument, message);
  if (!is_valid_channel(*ch)) return failure(error_code::invalid_argument, "invalid channel name");
  auto ev = string_param(params, "event", message);
  if (!ev) return failure(error_code::invalid_argument, message);
  if (!is_valid_event(*ev)) return failure(error_code::invalid_argument, "event must be 1-255 characters");
  if (!params.contains("payload")) return failure(error_code::invalid_argument, "payload is required");
  channel = std::string(*ch);
  return std::nullopt;
}

bool publisher::publish(const boost::json::object& params, std::string_view payload_json,
                        std::function<void(publish_outcome)> done) {
  if (payload_json.empty()) {  // validate() found a payload in the DOM, so the caller lost its text
    done(failure(error_code::internal, "payload text missing"));
    return false;
  }
  core::message msg;
  msg.payload = payload_json;  // as sent: no number rounded, no escape rewritten
  msg.channel = params.at("channel").get_string();
  msg.event = params.at("event").get_string();
  engine::node::stamp(msg);
  std::string result = encode_publish_result(msg);
  node_.publish(std::move(msg),
                [done = std::move(done), result = std::move(result)](broker::publish_status s) {
                  switch (s) {
                    case broker::publish_status::ok:
                      return done({true, error_code::internal, result});
                    case broker::publish_status::overloaded:
                      return done({false, error_code::resource_exhausted,
                                   "server overloaded (its delivery queues are full), retry later", 503});
                    case broker::publish_status::unavailable:
                      break;
                  }
                  done(failure(error_code::unavailable, "broker unavailable, retry later"));
                });
  return true;
}

}  // namespace bc::protocol
