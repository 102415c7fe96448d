#include "protocol/rest_api.hpp"

#include <boost/json/monotonic_resource.hpp>

#include "protocol/encoder.hpp"
#include "protocol/raw_json.hpp"
#include "protocol/request.hpp"

namespace bc::protocol {

http_reply rest_api::error_reply(error_code code, std::string_view message) {
  return {http_status(code), encode_error_body(code, message)};
}

bool rest_api::authorized(std::string_view authorization) const {
  constexpr std::string_view scheme = "Bearer ";
  if (authorization.size() <= scheme.size()) return false;
  // The scheme is case-insensitive (RFC 7235); the key is not.
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i]))) {
      return false;
    }
  }
  return keys_.check(authorization.substr(scheme.size()));
}

bool rest_api::authorized(std::string_view authorization, session_stats& stats) const {
  if (authorized(authorization)) return true;
  stats.auth_failures.add();
  stats.auth_failures_by_reason[0].add();  // slot 0 (jwt_error::none) stands for a bad API key
  return false;
}

void rest_api::publish(std::string_view authorization, std::string_view body, session_stats& stats,
                       std::function<void(http_reply)> done) const {
  if (!authorized(authorization, stats)) {
    return done(
        error_reply(error_code::unauthenticated, "missing or invalid API key (Authorization: Bearer <key>)"));
  }
  std::string message;
  unsigned char arena[4096];  // the document lives only during this call
  boost::json::monotonic_resource storage(arena, sizeof arena);
  auto doc = parse_json(body, message, &storage);
  if (!doc) return done(error_reply(error_code::invalid_argument, message));
  if (!doc->is_object()) return done(error_reply(error_code::invalid_argument, "body must be a JSON object"));
  std::string channel;
  if (auto invalid = publisher::validate(doc->get_object(), channel)) {
    return done(error_reply(invalid->code, invalid->body));
  }
  const auto payload = raw_json::find_member(body, "payload");
  const bool accepted =
      pub_.publish(doc->get_object(), payload, [done = std::move(done)](publish_outcome out) {
        if (!out.ok) {
          auto reply = error_reply(out.code, out.body);
          if (out.http_status != 0) reply.status = out.http_status;
          return done(std::move(reply));
        }
        done(http_reply{200, std::move(out.body)});
      });
  if (accepted) stats.published_rest.add();
}

}  // namespace bc::protocol
