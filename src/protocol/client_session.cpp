#include "protocol/client_session.hpp"

#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <limits>

#include <spdlog/spdlog.h>

#include "protocol/encoder.hpp"
#include "protocol/position_params.hpp"
#include "protocol/time_format.hpp"
#include "protocol/validation.hpp"

namespace bc::protocol {

client_session::client_session(session_services& services, client_transport& transport)
    : services_(services), transport_(transport) {}

client_session::~client_session() {
  drop_subscriptions();
  if (authenticated_) services_.engine.remove_user(member_.user, *this);
}

void client_session::drop_subscriptions() {
  for (auto it = subscriptions_.begin(); it != subscriptions_.end();) it = leave(it);
}

std::vector<std::unique_ptr<core::subscription>>::iterator client_session::leave(
    std::vector<std::unique_ptr<core::subscription>>::iterator it) {
  services_.engine.unsubscribe(std::move(*it), &member_);
  services_.stats.subscriptions.sub();
  return subscriptions_.erase(it);
}

client_session::admission client_session::admit() {
  const auto& l = services_.limits;
  if (l.rate <= 0) return admission::admitted;
  const auto now = services_.now();
  if (tokens_ < 0) {
    tokens_ = l.burst;
  } else {
    tokens_ = std::min(l.burst, tokens_ + std::chrono::duration<double>(now - refilled_).count() * l.rate);
    // A full bucket means the client kept to the rate for a while: earlier refusals are forgiven, so that a
    // long-lived connection with an occasional burst is not closed for refusals spread over hours.
    if (tokens_ >= l.burst) violations_ = 0;
  }
  refilled_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return admission::admitted;
  }
  services_.stats.rate_limited.add();
  if (++violations_ >= l.max_violations) {
    transport_.close(1008, "rate limit exceeded");
    return admission::closed;
  }
  return admission::refused;
}

void client_session::on_text(std::string_view text) {
  const auto admitted = admit();
  if (admitted == admission::closed) return;
  // Requests are small: parse into the stack, no allocation per JSON node.
  unsigned char arena[4096];
  boost::json::monotonic_resource storage(arena, sizeof arena);
  auto parsed = parse_request(text, &storage);
  if (admitted == admission::refused) {
    // Parsed only for its id, so that a client waiting on that id gets its answer. A flood pays for at most
    // max_violations parses before the connection closes.
    reply_error(parsed.id_json, error_code::resource_exhausted, "rate limit exceeded, slow down");
    return;
  }
  if (!parsed.req) {
    reply_error(parsed.id_json, parsed.code, parsed.message);
    return;
  }
  dispatch(*parsed.req);
}

void client_session::on_binary() {
  switch (admit()) {
    case admission::closed:
      return;
    case admission::refused:
      return reply_error({}, error_code::resource_exhausted, "rate limit exceeded, slow down");
    case admission::admitted:
      return reply_error({}, error_code::invalid_argument,
                         "binary frames are not supported; send JSON text frames");
  }
}

void client_session::deliver(const core::publication_ptr& pub, std::uint64_t seq) {
  // A connection's own join/leave is not news to it ("when another connection subscribes").
  if (pub->presence_event && pub->from == member_.client_id) return;
  transport_.send_publication(pub, seq);
}

void client_session::disconnect_by_server() {
  transport_.close(4003, "disconnected by server");
}

void client_session::unsubscribe_by_server(std::string_view channel) {
  auto it = find_subscription(channel);
  if (it == subscriptions_.end()) return;
  leave(it);
  transport_.send_text(R"({"method":"unsubscribe","params":{"channel":)" + json_quote(channel) + "}}");
}

void client_session::dispatch(request& req) {
  const auto m = static_cast<std::size_t>(req.verb);
  services_.stats.requests[m].add();
  const auto start = std::chrono::steady_clock::now();
  switch (req.verb) {
    case method::auth:
      do_auth(req);
      break;
    case method::subscribe:
      do_subscribe(req);
      break;
    case method::unsubscribe:
      do_unsubscribe(req);
      break;
    case method::publish:
      if (do_publish(req, start)) return;  // observed when the broker answers
      break;
    case method::heartbeat:
      do_heartbeat(req);
      break;
    case method::history:
      do_history(req);
      break;
    case method::presence:
      do_presence(req, false);
      break;
    case method::presence_stats:
      do_presence(req, true);
      break;
  }
  observe_latency(req.verb, start);
}

void client_session::observe_latency(method m, std::chrono::steady_clock::time_point start) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
  services_.stats.latency[static_cast<std::size_t>(m)].observe(static_cast<std::uint64_t>(us.count()));
}

void client_session::reply(const request& req, std::string_view result_json) {
  if (req.id_json.empty()) return;  // a notification: success is silent
  transport_.send_text(encode_result(req.id_json, result_json));
}

void client_session::reply_error(std::string_view id_json, error_code code, std::string_view message) {
  services_.stats.errors[static_cast<std::size_t>(code)].add();
  transport_.send_text(encode_error(id_json, code, message));
}

void client_session::do_auth(request& req) {
  std::string message;
  auto token = string_param(req.params, "token", message);
  if (!token) return reply_error(req.id_json, error_code::invalid_argument, message);
  const std::int64_t now_s = now_unix_ms() / 1000;
  auto result = services_.verifier.verify(*token, now_s);
  if (!result.ok()) {
    services_.stats.auth_failures.add();
    services_.stats.auth_failures_by_reason[static_cast<std::size_t>(result.error)].add();
    spdlog::debug("auth failed reason={}", auth::to_string(result.error));  // never the token
    const auto code =
        auth::is_invalid_argument(result.error) ? error_code::invalid_argument : error_code::unauthenticated;
    return reply_error(req.id_json, code, result.message);
  }
  if (authenticated_ && result.claims.sub != claims_.sub) {
    return reply_error(req.id_json, error_code::failed_precondition,
                       "connection is authenticated as another subject; open a new connection");
  }
  claims_ = std::move(result.claims);
  if (!authenticated_) {
    member_.client_id = services_.engine.new_client_id();
    member_.user = claims_.sub;
    services_.engine.add_user(member_.user, *this);
  }
  // A refresh's info is what subscriptions from now on show; those already in presence keep theirs.
  member_.info = claims_.info;
  // Saturating: a token may carry an exp near the end of time.
  const auto leeway = services_.limits.jwt_leeway_s;
  expires_at_ = claims_.exp > std::numeric_limits<std::int64_t>::max() - leeway
                    ? std::numeric_limits<std::int64_t>::max()
                    : claims_.exp + leeway;
  authenticated_ = true;
  prune_subscriptions();
  reply(req, R"({"success":true})");
}

void client_session::prune_subscriptions() {
  for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
    const bool allowed = claims_.can_subscribe && claims_.authorizes((*it)->channel());
    it = allowed ? std::next(it) : leave(it);
  }
}

std::vector<std::unique_ptr<core::subscription>>::iterator client_session::find_subscription(
    std::string_view channel) {
  return std::find_if(subscriptions_.begin(), subscriptions_.end(),
                      [&](const auto& s) { return s->channel() == channel; });
}

std::optional<std::string_view> client_session::authenticated_channel(const request& req) {
  if (!authenticated_) {
    reply_error(req.id_json, error_code::unauthenticated, "authenticate first");
    return std::nullopt;
  }
  std::string message;
  auto channel = string_param(req.params, "channel", message);
  if (!channel) {
    reply_error(req.id_json, error_code::invalid_argument, message);
  } else if (!is_valid_channel(*channel)) {
    reply_error(req.id_json, error_code::invalid_argument, "invalid channel name");
    channel.reset();
  }
  return channel;
}

std::optional<std::string_view> client_session::readable_channel(const request& req) {
  auto channel = authenticated_channel(req);
  if (!channel) return channel;
  if (!claims_.can_subscribe) {
    reply_error(req.id_json, error_code::permission_denied, "token lacks the subscribe scope");
    channel.reset();
  } else if (!claims_.authorizes(*channel)) {
    reply_error(req.id_json, error_code::permission_denied, "channel not in authorizedChannels");
    channel.reset();
  }
  return channel;
}

void client_session::do_subscribe(request& req) {
  auto channel = readable_channel(req);
  if (!channel) return;
  std::optional<broker::stream_position> since;
  std::string message;
  if (!read_since(req.params, since, message)) {
    return reply_error(req.id_json, error_code::invalid_argument, message);
  }
  bool join_leave = false;
  if (const auto* v = req.params.if_contains("joinLeave"); v != nullptr && !v->is_null()) {
    if (!v->is_bool())
      return reply_error(req.id_json, error_code::invalid_argument, "joinLeave must be a boolean");
    join_leave = v->get_bool();
  }
  if (join_leave && !services_.engine.join_leave_enabled(*channel)) {
    return reply_error(req.id_json, error_code::failed_precondition,
                       services_.engine.presence_enabled(*channel)
                           ? "join/leave is switched off for this channel"
                           : "presence is not enabled for this channel");
  }
  if (find_subscription(*channel) != subscriptions_.end()) {
    return reply_error(req.id_json, error_code::already_exists, "already subscribed to this channel");
  }
  if (subscriptions_.size() >= services_.limits.max_subscriptions) {
    return reply_error(req.id_json, error_code::resource_exhausted,
                       "too many subscriptions on this connection");
  }
  services_.stats.subscriptions.add();
  if (req.id_json.empty() && !since) {  // a notification: no answer to build, nothing to replay
    subscriptions_.push_back(
        services_.engine.subscribe(*channel, *this, std::nullopt, nullptr, &member_, join_leave));
    return;
  }
  // The answer comes once the broker has the channel for this node and its position is read (on any
  // thread): back on this connection's thread, dropped if the connection closed meanwhile.
  auto ready = [this, defer = transport_.make_deferrer(), id_json = std::move(req.id_json)](
                   std::uint64_t id, engine::subscribe_answer answer) {
    defer([this, id, id_json, answer = std::move(answer)] { finish_subscribe(id, id_json, answer); });
  };
  // The answer may come inside subscribe() (the embedded broker answers at once), before the subscription is
  // in subscriptions_: finish_subscribe then leaves it in early_answer_.
  subscribing_ = true;
  subscriptions_.push_back(
      services_.engine.subscribe(*channel, *this, std::move(since), std::move(ready), &member_, join_leave));
  subscribing_ = false;
  if (early_answer_) {
    auto early = std::move(*early_answer_);
    early_answer_.reset();
    finish_subscribe(early.id, early.id_json, early.answer);
  }
}

void client_session::finish_subscribe(std::uint64_t id, std::string_view id_json,
                                      const engine::subscribe_answer& answer) {
  const auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                               [&](const auto& s) { return s->id() == id; });
  if (it == subscriptions_.end()) {
    if (subscribing_) early_answer_ = early_answer{id, std::string(id_json), answer};
    return;  // else unsubscribed (or pruned) meanwhile: nothing to answer
  }
  // Without a position (the broker is unreachable) the subscription starts all the same, as it always could:
  // nothing can be published meanwhile, and messages flow once the broker is back. The answer then has no
  // epoch and offset, and a `since` is not recovered.
  const bool positioned = answer.status == broker::publish_status::ok;
  // In presence before the client hears it is subscribed (a join others see, too, comes no earlier).
  services_.engine.enter_presence(**it, &member_);
  if (!id_json.empty()) {
    // A string (PROTOCOL: clients of the original decode it into a string field), unique on this node as the
    // hub's subscription id is; digits only after the prefix, so it needs no escaping.
    std::string result = "{\"subscriptionId\":\"sub-" + std::to_string(id) + "\",\"timestamp\":\"" +
                         format_rfc3339_ms(now_unix_ms()) + "\"";
    if (positioned) result += "," + encode_position(answer.top);
    if (answer.recovered) result += *answer.recovered ? ",\"recovered\":true" : ",\"recovered\":false";
    result += '}';
    transport_.send_text(encode_result(id_json, result));
  }
  // After the answer: the replay and what was held back follow it on the wire.
  services_.engine.go_live(**it, answer);
}

void client_session::do_presence(request& req, bool stats) {
  // The permission to subscribe: who is subscribed is what a subscriber with join/leave would learn.
  auto channel = readable_channel(req);
  if (!channel) return;
  if (!services_.engine.presence_enabled(*channel)) {
    return reply_error(req.id_json, error_code::failed_precondition,
                       "presence is not enabled for this channel");
  }
  auto unavailable = [this](std::string_view id_json) {
    reply_error(id_json, error_code::unavailable, "the broker is unavailable; retry later");
  };
  auto defer = transport_.make_deferrer();
  if (stats) {
    return services_.engine.presence_stats(
        std::string(*channel),
        [this, defer, unavailable, id_json = std::move(req.id_json)](broker::presence_stats_result r) {
          defer([this, unavailable, id_json, r] {
            if (r.status != broker::publish_status::ok) return unavailable(id_json);
            if (!id_json.empty())
              transport_.send_text(encode_result(id_json, encode_presence_stats(r.counts)));
          });
        });
  }
  services_.engine.presence(
      std::string(*channel), services_.limits.presence_max_clients,
      [this, defer, unavailable, id_json = std::move(req.id_json)](broker::presence_result r) {
        defer([this, unavailable, id_json, r = std::move(r)] {
          if (r.status != broker::publish_status::ok) return unavailable(id_json);
          if (!id_json.empty()) transport_.send_text(encode_result(id_json, encode_presence_result(r)));
        });
      });
}

void client_session::do_history(request& req) {
  // The permission to subscribe: history is what a subscriber would have received.
  auto channel = readable_channel(req);
  if (!channel) return;
  broker::history_request q;
  std::optional<std::uint64_t> limit;
  std::string message;
  if (!read_since(req.params, q.since, message) || !read_limit(req.params, limit, message)) {
    return reply_error(req.id_json, error_code::invalid_argument, message);
  }
  q.channel = std::string(*channel);
  const std::size_t most = services_.engine.history_limit(*channel);
  q.limit = limit ? static_cast<std::size_t>(std::min<std::uint64_t>(*limit, most)) : most;
  services_.engine.history(std::move(q), [this, defer = transport_.make_deferrer(),
                                          id_json = std::move(req.id_json)](broker::history_result r) {
    defer([this, id_json, r = std::move(r)] {
      if (r.status != broker::publish_status::ok) {
        return reply_error(id_json, error_code::unavailable, "the broker is unavailable; retry later");
      }
      if (!id_json.empty()) transport_.send_text(encode_result(id_json, encode_history_result(r)));
    });
  });
}

void client_session::do_unsubscribe(request& req) {
  auto channel = authenticated_channel(req);
  if (!channel) return;
  auto it = find_subscription(*channel);
  if (it != subscriptions_.end()) leave(it);
  reply(req, R"({"success":true})");
}

bool client_session::do_publish(request& req, std::chrono::steady_clock::time_point start) {
  auto refuse = [&](error_code code, std::string_view message) {
    reply_error(req.id_json, code, message);
    return false;
  };
  if (draining_) return refuse(error_code::unavailable, "server shutting down, retry later");
  if (!authenticated_) return refuse(error_code::unauthenticated, "authenticate first");
  std::string channel;
  if (auto invalid = publisher::validate(req.params, channel)) return refuse(invalid->code, invalid->body);
  if (!claims_.can_publish) return refuse(error_code::permission_denied, "token lacks the publish scope");
  if (!claims_.authorizes(channel)) {
    return refuse(error_code::permission_denied, "channel not in authorizedChannels");
  }
  // The broker may answer on another thread: the reply is posted back, and dropped if the connection closed.
  auto defer = transport_.make_deferrer();
  ++publishes_in_flight_;  // before: the answer may come inside publish()
  const bool accepted = services_.pub.publish(
      req.params, req.payload_json,
      [this, defer, start, id_json = std::move(req.id_json)](publish_outcome out) mutable {
        defer([this, start, out = std::move(out), id_json = std::move(id_json)] {
          --publishes_in_flight_;
          observe_latency(method::publish, start);
          if (!out.ok) return reply_error(id_json, out.code, out.body);
          if (!id_json.empty()) transport_.send_text(encode_result(id_json, out.body));
        });
      });
  if (accepted) services_.stats.published_ws.add();
  return true;  // even when not accepted: the refusal came through the callback, which observed it
}

void client_session::do_heartbeat(request& req) {
  reply(req, "{\"timestamp\":\"" + format_rfc3339_ms(now_unix_ms()) + "\"}");
}

}  // namespace bc::protocol
