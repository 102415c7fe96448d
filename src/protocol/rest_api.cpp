#include "protocol/rest_api.hpp"

#include <boost/json/monotonic_resource.hpp>

#include "protocol/encoder.hpp"
#include "protocol/position_params.hpp"
#include "protocol/raw_json.hpp"
#include "protocol/request.hpp"
#include "protocol/validation.hpp"
#include "util/hex.hpp"

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

namespace {
constexpr std::string_view bad_key = "missing or invalid API key (Authorization: Bearer <key>)";

// The value of `name` in a query string, percent-decoded; nullopt when absent, `malformed` when undecodable.
std::optional<std::string> query_value(std::string_view query, std::string_view name, bool& malformed) {
  std::optional<std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    auto value =
        util::percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!value) {
      malformed = true;
      return std::nullopt;
    }
    out = std::move(*value);
  }
  return out;
}
}  // namespace

void rest_api::presence(std::string_view authorization, std::string_view query, bool stats, session_stats& s,
                        std::function<void(http_reply)> done) const {
  if (!authorized(authorization, s)) return done(error_reply(error_code::unauthenticated, bad_key));
  bool malformed = false;
  auto channel = query_value(query, "channel", malformed);
  if (malformed) return done(error_reply(error_code::invalid_argument, "malformed query string"));
  if (!channel || !is_valid_channel(*channel)) {
    return done(error_reply(error_code::invalid_argument,
                            channel ? "invalid channel name" : "the channel query parameter is required"));
  }
  if (!node_.presence_enabled(*channel)) {
    return done(error_reply(error_code::failed_precondition, "presence is not enabled for this channel"));
  }
  auto unavailable = [] {
    return error_reply(error_code::unavailable, "the broker is unavailable; retry later");
  };
  if (stats) {
    return node_.presence_stats(std::move(*channel), [done = std::move(done), unavailable](auto r) {
      if (r.status != broker::publish_status::ok) return done(unavailable());
      done(http_reply{200, encode_presence_stats(r.counts)});
    });
  }
  node_.presence(std::move(*channel), presence_max_clients_, [done = std::move(done), unavailable](auto r) {
    if (r.status != broker::publish_status::ok) return done(unavailable());
    done(http_reply{200, encode_presence_result(r)});
  });
}

void rest_api::control(std::string_view authorization, std::string_view body, bool unsubscribe,
                       session_stats& s, std::function<void(http_reply)> done) const {
  if (!authorized(authorization, s)) return done(error_reply(error_code::unauthenticated, bad_key));
  std::string message;
  unsigned char arena[4096];  // the document lives only during this call
  boost::json::monotonic_resource storage(arena, sizeof arena);
  auto doc = parse_json(body, message, &storage);
  if (!doc) return done(error_reply(error_code::invalid_argument, message));
  if (!doc->is_object()) return done(error_reply(error_code::invalid_argument, "body must be a JSON object"));
  const auto& params = doc->get_object();
  broker::control_message msg;
  auto user = string_param(params, "user", message);
  if (!user) return done(error_reply(error_code::invalid_argument, message));
  if (user->empty()) return done(error_reply(error_code::invalid_argument, "user must not be empty"));
  msg.user = std::string(*user);
  if (unsubscribe) {
    auto channel = string_param(params, "channel", message);
    if (!channel) return done(error_reply(error_code::invalid_argument, message));
    if (!is_valid_channel(*channel))
      return done(error_reply(error_code::invalid_argument, "invalid channel name"));
    msg.what = broker::control_message::kind::unsubscribe_user;
    msg.channel = std::string(*channel);
  }
  node_.control(std::move(msg), [done = std::move(done)](broker::publish_status st) {
    if (st != broker::publish_status::ok) {
      return done(
          error_reply(error_code::unavailable,
                      "the broker cannot reach every node now (or does not support this yet); retry later"));
    }
    done(http_reply{200, R"({"success":true})"});
  });
}

void rest_api::history(std::string_view authorization, std::string_view query, session_stats& stats,
                       std::function<void(http_reply)> done) const {
  if (!authorized(authorization, stats)) {
    return done(
        error_reply(error_code::unauthenticated, "missing or invalid API key (Authorization: Bearer <key>)"));
  }
  std::optional<std::string> channel, epoch;
  std::optional<std::uint64_t> limit, offset;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    const auto name = pair.substr(0, eq);
    auto value =
        util::percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!value) return done(error_reply(error_code::invalid_argument, "malformed query string"));
    auto count = [&](std::optional<std::uint64_t>& out) {
      out = parse_count(*value);
      return out.has_value();
    };
    if (name == "channel") {
      channel = std::move(*value);
    } else if (name == "epoch") {
      epoch = std::move(*value);
    } else if (name == "limit" && !count(limit)) {
      return done(error_reply(error_code::invalid_argument, "limit must be an integer >= 0"));
    } else if (name == "offset" && !count(offset)) {
      return done(error_reply(error_code::invalid_argument, "offset must be an integer >= 0"));
    }  // other parameters are ignored, as unknown fields in a body are
  }
  if (!channel || !is_valid_channel(*channel)) {
    return done(error_reply(error_code::invalid_argument,
                            channel ? "invalid channel name" : "the channel query parameter is required"));
  }
  if (epoch.has_value() != offset.has_value() ||
      (epoch && (epoch->empty() || epoch->size() > max_epoch_length))) {
    return done(error_reply(error_code::invalid_argument,
                            "epoch and offset go together: a non-empty epoch and an integer offset >= 0"));
  }
  broker::history_request req;
  const std::size_t most = node_.rules().for_channel(*channel).history_size;
  req.limit = limit ? static_cast<std::size_t>(std::min<std::uint64_t>(*limit, most)) : most;
  if (epoch) req.since = broker::stream_position{std::move(*epoch), *offset};
  req.channel = std::move(*channel);
  node_.history(std::move(req), [done = std::move(done)](broker::history_result r) {
    if (r.status != broker::publish_status::ok) {
      return done(error_reply(error_code::unavailable, "the broker is unavailable; retry later"));
    }
    done(http_reply{200, encode_history_result(r)});
  });
}

}  // namespace bc::protocol
