#include "protocol/client_session.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../support/direct_thread.hpp"
#include "../../support/same_json.hpp"
#include "auth/jwt_signer.hpp"
#include "auth/jwt_verifier.hpp"
#include "broker/broker.hpp"
#include "broker/memory_broker.hpp"
#include "core/hub.hpp"
#include "engine/node.hpp"
#include "engine/thread_engine.hpp"
#include "protocol/encoder.hpp"
#include "protocol/publisher.hpp"
#include "protocol/session_stats.hpp"
#include "protocol/time_format.hpp"

namespace bc::protocol {
namespace {

namespace json = boost::json;

constexpr std::string_view k_secret = "client-session-test-secret";
constexpr std::uint32_t k_shard = 3;

// Records everything the session sends. make_deferrer runs callbacks at once (the connection is open).
class fake_transport : public client_transport {
 public:
  struct delivery {
    core::publication_ptr pub;
    std::uint64_t seq;
  };
  void send_text(std::string text) override { texts.push_back(std::move(text)); }
  void send_publication(const core::publication_ptr& pub, std::uint64_t seq) override {
    deliveries.push_back({pub, seq});
  }
  void close(std::uint16_t code, std::string_view reason) override {
    closes.emplace_back(code, std::string(reason));
  }
  std::function<void(std::function<void()>)> make_deferrer() override {
    return [](std::function<void()> f) { f(); };
  }

  // The broadcast notifications as JSON, in order.
  std::vector<json::value> broadcasts() const {
    std::vector<json::value> out;
    for (const auto& d : deliveries)
      out.push_back(json::parse(d.pub->head + std::to_string(d.seq) + d.pub->tail));
    return out;
  }

  std::vector<std::string> texts;
  std::vector<delivery> deliveries;
  std::vector<std::pair<std::uint16_t, std::string>> closes;
};

// A node with its own broker, delivering into `h` (for the tests with a broker that answers later).
struct node_over {
  node_over(core::hub& h, broker::broker& b) : thread(h), engine(node, h) {
    node.add_thread(thread);
    node.attach(b);
  }
  engine::node node{encode_publication};
  bc::testing::direct_thread thread;
  engine::thread_engine engine;
  publisher pub{node};
};

using bc::testing::same_json;

std::int64_t now_s() {
  return now_unix_ms() / 1000;
}

struct token_spec {
  std::string sub = "user-1";
  std::vector<std::string> channels = {"news", "chat:room-1"};
  std::vector<std::string> scope = {"subscribe", "publish"};
  std::int64_t exp = now_s() + 3600;
};

json::object claims_of(const token_spec& t) {
  json::array channels, scope;
  for (const auto& c : t.channels) channels.emplace_back(c);
  for (const auto& s : t.scope) scope.emplace_back(s);
  return {{"sub", t.sub},        {"aud", "broadcaster"},           {"exp", t.exp},
          {"iat", now_s() - 10}, {"authorizedChannels", channels}, {"scope", scope}};
}

std::string make_token(const token_spec& t = {}) {
  return auth::sign_hs256(k_secret, json::serialize(claims_of(t)));
}

std::string request(std::string_view id, std::string_view method, std::string_view params = {}) {
  std::string out = "{";
  if (!id.empty()) out += "\"id\":" + std::string(id) + ",";
  out += "\"method\":\"" + std::string(method) + "\"";
  if (!params.empty()) out += ",\"params\":" + std::string(params);
  return out + "}";
}

std::string auth_request(std::string_view id, const std::string& token) {
  return request(id, "auth", "{\"token\":\"" + token + "\"}");
}

std::string channel_params(std::string_view channel) {
  return "{\"channel\":\"" + std::string(channel) + "\"}";
}

std::string publish_params(std::string_view channel, std::string_view payload = R"({"text":"hi"})",
                           std::string_view event = "message") {
  return "{\"channel\":\"" + std::string(channel) + "\",\"event\":\"" + std::string(event) +
         "\",\"payload\":" + std::string(payload) + "}";
}

bool is_rfc3339_ms(const json::value& v) {
  if (!v.is_string()) return false;
  const std::string_view s = v.get_string();
  return s.size() == 24 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
         s[19] == '.' && s[23] == 'Z';
}

bool is_uuid_v7(const json::value& v) {
  if (!v.is_string()) return false;
  const std::string_view s = v.get_string();
  return s.size() == 36 && s[8] == '-' && s[13] == '-' && s[14] == '7' && s[18] == '-' && s[23] == '-';
}

// One connection: a transport and a session over shared services.
struct connection {
  explicit connection(session_services& services)
      : session(std::make_unique<client_session>(services, transport)) {}

  // Sends `text` and returns the one reply it produced (fails the test if there is not exactly one).
  json::value call(const std::string& text) {
    const std::size_t before = transport.texts.size();
    session->on_text(text);
    EXPECT_EQ(transport.texts.size(), before + 1) << "expected exactly one reply to " << text;
    if (transport.texts.size() != before + 1) return nullptr;
    return json::parse(transport.texts.back());
  }
  // Sends `text` and checks that nothing was replied.
  void notify(const std::string& text) {
    const std::size_t before = transport.texts.size();
    session->on_text(text);
    EXPECT_EQ(transport.texts.size(), before)
        << "expected no reply to " << text << ", got " << transport.texts.back();
  }

  fake_transport transport;
  std::unique_ptr<client_session> session;
};

class client_session_test : public ::testing::Test {
 protected:
  client_session_test() {
    node.add_thread(thread);
    node.attach(memory);
  }

  // Declaration order is destruction order in reverse: sessions go before the hub.
  core::hub hub{k_shard};
  engine::node node{encode_publication};
  bc::testing::direct_thread thread{hub};
  broker::memory_broker memory{node};
  engine::thread_engine engine{node, hub};
  publisher pub{node};
  auth::jwt_verifier verifier{std::string(k_secret)};
  session_stats stats;
  session_services services{engine, pub, verifier, session_limits{}, stats};
  connection a{services};
  connection b{services};

  void authenticate(connection& c, const token_spec& t = {}) {
    const auto reply = c.call(auth_request("1", make_token(t)));
    ASSERT_EQ(reply, json::parse(R"({"requestId":1,"result":{"success":true}})"));
    ASSERT_TRUE(c.session->authenticated());
  }
  void subscribe(connection& c, std::string_view channel) {
    const auto reply = c.call(request("2", "subscribe", channel_params(channel)));
    ASSERT_TRUE(reply.as_object().contains("result")) << json::serialize(reply);
  }
};

void expect_error(const json::value& reply, const json::value& request_id, std::string_view code) {
  ASSERT_TRUE(reply.is_object()) << json::serialize(reply);
  const auto& o = reply.as_object();
  if (request_id.is_null()) {
    EXPECT_FALSE(o.contains("requestId")) << json::serialize(reply);
  } else {
    ASSERT_TRUE(o.contains("requestId")) << json::serialize(reply);
    EXPECT_EQ(o.at("requestId"), request_id);
  }
  EXPECT_FALSE(o.contains("result")) << json::serialize(reply);
  ASSERT_TRUE(o.contains("error")) << json::serialize(reply);
  EXPECT_EQ(o.at("error").at("code"), json::value(code)) << json::serialize(reply);
  EXPECT_TRUE(o.at("error").at("message").is_string());
  EXPECT_FALSE(o.at("error").at("message").get_string().empty());
}

// ---- heartbeat and dispatch ----

TEST_F(client_session_test, heartbeat_is_allowed_before_auth) {
  for (const char* params : {"", "null", "{}", R"({"unknown":1})"}) {
    const auto reply = a.call(request("5", "heartbeat", params));
    ASSERT_TRUE(reply.is_object());
    EXPECT_EQ(reply.at("requestId"), json::value(5));
    EXPECT_TRUE(is_rfc3339_ms(reply.at("result").at("timestamp"))) << json::serialize(reply);
    EXPECT_EQ(reply.as_object().size(), 2u);
  }
  EXPECT_FALSE(a.session->authenticated());
}

TEST_F(client_session_test, heartbeat_notification_gets_no_reply) {
  a.notify(request("", "heartbeat"));
  a.notify(request("0", "heartbeat"));
  a.notify(request("null", "heartbeat"));
}

TEST_F(client_session_test, string_request_id_is_echoed) {
  const auto reply = a.call(request(R"("req-\"7\"")", "heartbeat"));
  EXPECT_EQ(reply.at("requestId"), json::value("req-\"7\""));
}

TEST_F(client_session_test, unknown_method_is_not_found) {
  expect_error(a.call(request("3", "frobnicate")), json::value(3), "NotFound");
  expect_error(a.call(request("", "frobnicate")), nullptr, "NotFound");  // failure of a notification replies
  authenticate(a);
  expect_error(a.call(request(R"("x")", "broadcast")), json::value("x"), "NotFound");
}

TEST_F(client_session_test, malformed_requests_are_invalid_argument_and_the_session_goes_on) {
  expect_error(a.call("{not json"), nullptr, "InvalidArgument");
  expect_error(a.call("[1,2]"), nullptr, "InvalidArgument");
  expect_error(a.call(R"({"id":4})"), json::value(4), "InvalidArgument");             // missing method
  expect_error(a.call(R"({"id":4,"method":7})"), json::value(4), "InvalidArgument");  // non-string method
  expect_error(a.call(R"({"id":true,"method":"heartbeat"})"), nullptr, "InvalidArgument");
  expect_error(a.call(R"({"id":6,"method":"subscribe","params":[]})"), json::value(6), "InvalidArgument");
  expect_error(a.call(R"({"id":6,"method":"heartbeat","params":"x"})"), json::value(6), "InvalidArgument");
  const std::string deep = R"({"id":8,"method":"publish","params":{"payload":)" + std::string(100, '[') +
                           std::string(100, ']') + "}}";
  expect_error(a.call(deep), nullptr, "InvalidArgument");
  EXPECT_TRUE(a.call(request("9", "heartbeat")).as_object().contains("result"));
  EXPECT_TRUE(a.transport.closes.empty());
}

TEST_F(client_session_test, binary_frame_is_invalid_argument) {
  a.session->on_binary();
  ASSERT_EQ(a.transport.texts.size(), 1u);
  expect_error(json::parse(a.transport.texts[0]), nullptr, "InvalidArgument");
  EXPECT_EQ(stats.errors[static_cast<std::size_t>(error_code::invalid_argument)].get(), 1u);
  EXPECT_TRUE(a.transport.closes.empty());
}

// ---- before auth ----

TEST_F(client_session_test, subscribe_publish_unsubscribe_before_auth_are_unauthenticated) {
  expect_error(a.call(request("1", "subscribe", channel_params("news"))), json::value(1), "Unauthenticated");
  expect_error(a.call(request("2", "publish", publish_params("news"))), json::value(2), "Unauthenticated");
  expect_error(a.call(request("3", "unsubscribe", channel_params("news"))), json::value(3),
               "Unauthenticated");
  expect_error(a.call(request("", "subscribe", channel_params("news"))), nullptr, "Unauthenticated");
  EXPECT_EQ(hub.subscription_count(), 0u);
  EXPECT_TRUE(a.transport.deliveries.empty());
  EXPECT_EQ(a.session->expires_at(), 0);
  EXPECT_EQ(stats.errors[static_cast<std::size_t>(error_code::unauthenticated)].get(), 4u);
}

// ---- auth ----

TEST_F(client_session_test, auth_succeeds_and_sets_expiry_to_exp_plus_leeway) {
  token_spec t;
  t.exp = now_s() + 1234;
  EXPECT_EQ(a.session->expires_at(), 0);
  authenticate(a, t);
  EXPECT_EQ(a.session->expires_at(), t.exp + 30);
  EXPECT_EQ(stats.requests[static_cast<std::size_t>(method::auth)].get(), 1u);
  EXPECT_EQ(stats.auth_failures.get(), 0u);
}

TEST_F(client_session_test, expiry_uses_the_configured_leeway) {
  services.limits.jwt_leeway_s = 5;
  token_spec t;
  t.exp = now_s() + 100;
  authenticate(a, t);
  EXPECT_EQ(a.session->expires_at(), t.exp + 5);
}

TEST_F(client_session_test, far_future_exp_does_not_overflow_expires_at) {
  // BUG: do_auth() computes expires_at_ = claims_.exp + jwt_leeway_s. The verifier clamps a huge exp (e.g.
  // 1e300, or any integer above INT64_MAX - 30) to INT64_MAX, so the addition overflows a signed 64-bit
  // integer: undefined behaviour (UBSan aborts), and in practice a negative expiry that makes ws_session
  // close the connection at once with 4001 "token expired". The sum must saturate.
  for (const char* exp : {"9223372036854775807", "9223372036854775790", "1e300"}) {
    json::object c = claims_of({});
    c["exp"] = json::parse(exp);
    connection fresh{services};
    const auto reply = fresh.call(auth_request("1", auth::sign_hs256(k_secret, json::serialize(c))));
    ASSERT_TRUE(reply.as_object().contains("result")) << json::serialize(reply);
    EXPECT_GT(fresh.session->expires_at(), now_s() + 365LL * 24 * 3600) << "exp " << exp;
  }
}

TEST_F(client_session_test, token_within_the_verifier_leeway_is_accepted) {
  token_spec t;
  t.exp = now_s() - 10;  // expired, but within the 30 s leeway
  authenticate(a, t);
  EXPECT_EQ(a.session->expires_at(), t.exp + 30);
}

TEST_F(client_session_test, auth_notification_succeeds_silently) {
  a.notify(auth_request("", make_token()));
  EXPECT_TRUE(a.session->authenticated());
}

TEST_F(client_session_test, auth_with_bad_params_is_invalid_argument) {
  expect_error(a.call(request("1", "auth")), json::value(1), "InvalidArgument");
  expect_error(a.call(request("2", "auth", "{}")), json::value(2), "InvalidArgument");
  expect_error(a.call(request("3", "auth", R"({"token":42})")), json::value(3), "InvalidArgument");
  expect_error(a.call(request("4", "auth", R"({"token":null})")), json::value(4), "InvalidArgument");
  EXPECT_FALSE(a.session->authenticated());
}

TEST_F(client_session_test, invalid_tokens_are_unauthenticated) {
  token_spec expired;
  expired.exp = now_s() - 100;
  const std::string good = make_token();
  json::object wrong_aud = claims_of({});
  wrong_aud["aud"] = "someone-else";
  const std::string none_alg = [] {
    // {"alg":"none"} header, no signature part.
    return std::string("eyJhbGciOiJub25lIn0.") + "eyJzdWIiOiJ1c2VyLTEifQ.";
  }();
  // The signature's first character carries six bits of the HMAC, all of them significant (the last one does
  // not, and rewriting the tail once left a token ending in "BA" unchanged).
  std::string signature_changed = good;
  const auto sig = signature_changed.rfind('.') + 1;
  signature_changed[sig] = signature_changed[sig] == 'A' ? 'B' : 'A';
  const std::vector<std::string> tokens = {
      "",
      "garbage",
      "a.b",
      "a.b.c.d",
      signature_changed,
      auth::sign_hs256("another-secret", json::serialize(claims_of({}))),
      make_token(expired),
      auth::sign_hs256(k_secret, json::serialize(wrong_aud)),
      none_alg,
  };
  std::uint64_t id = 10;
  for (const auto& token : tokens) {
    expect_error(a.call(auth_request(std::to_string(id), token)), json::value(id), "Unauthenticated");
    ++id;
  }
  EXPECT_FALSE(a.session->authenticated());
  EXPECT_EQ(a.session->expires_at(), 0);
  EXPECT_EQ(stats.auth_failures.get(), tokens.size());
}

TEST_F(client_session_test, tokens_missing_claims_are_invalid_argument) {
  for (const char* claim : {"sub", "authorizedChannels"}) {
    json::object c = claims_of({});
    c.erase(claim);
    expect_error(a.call(auth_request("1", auth::sign_hs256(k_secret, json::serialize(c)))), json::value(1),
                 "InvalidArgument");
  }
  json::object empty_channels = claims_of({});
  empty_channels["authorizedChannels"] = json::array{};
  expect_error(a.call(auth_request("2", auth::sign_hs256(k_secret, json::serialize(empty_channels)))),
               json::value(2), "InvalidArgument");
  EXPECT_FALSE(a.session->authenticated());
}

TEST_F(client_session_test, failed_auth_leaves_an_authenticated_session_as_it_was) {
  token_spec t;
  t.exp = now_s() + 500;
  authenticate(a, t);
  subscribe(a, "news");
  const auto expires = a.session->expires_at();

  expect_error(a.call(auth_request("7", "not.a.token")), json::value(7), "Unauthenticated");
  token_spec expired;
  expired.exp = now_s() - 1000;
  expect_error(a.call(auth_request("8", make_token(expired))), json::value(8), "Unauthenticated");
  json::object no_sub = claims_of({});
  no_sub.erase("sub");
  expect_error(a.call(auth_request("9", auth::sign_hs256(k_secret, json::serialize(no_sub)))), json::value(9),
               "InvalidArgument");
  expect_error(a.call(request("10", "auth", R"({"token":1})")), json::value(10), "InvalidArgument");

  EXPECT_TRUE(a.session->authenticated());
  EXPECT_EQ(a.session->expires_at(), expires);
  EXPECT_EQ(a.session->subscription_count(), 1u);
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  // Still allowed to do what the original token allowed.
  EXPECT_TRUE(a.call(request("11", "publish", publish_params("news"))).as_object().contains("result"));
  EXPECT_EQ(a.transport.deliveries.size(), 1u);
}

TEST_F(client_session_test, reauth_with_the_same_sub_refreshes_and_prunes) {
  token_spec first;
  first.channels = {"a", "b", "c"};
  first.exp = now_s() + 100;
  authenticate(a, first);
  subscribe(a, "a");
  subscribe(a, "b");
  subscribe(a, "c");
  EXPECT_EQ(stats.subscriptions.get(), 3u);

  token_spec second;
  second.channels = {"b", "d"};
  second.exp = now_s() + 7200;
  authenticate(a, second);
  EXPECT_EQ(a.session->expires_at(), second.exp + 30);
  EXPECT_EQ(a.session->subscription_count(), 1u);
  EXPECT_EQ(hub.subscriber_count("a"), 0u);
  EXPECT_EQ(hub.subscriber_count("b"), 1u);
  EXPECT_EQ(hub.subscriber_count("c"), 0u);
  EXPECT_EQ(stats.subscriptions.get(), 1u);

  // A publisher that may still publish to "a" and "b": only "b" reaches the refreshed session.
  token_spec other;
  other.sub = "publisher";
  other.channels = {"a", "b", "c"};
  authenticate(b, other);
  b.call(request("1", "publish", publish_params("a")));
  b.call(request("2", "publish", publish_params("c")));
  b.call(request("3", "publish", publish_params("b", "42")));
  const auto got = a.transport.broadcasts();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].at("params").at("channel"), json::value("b"));
  EXPECT_EQ(got[0].at("params").at("payload"), json::value(42));

  // The new claims apply: "a" is refused, "d" is allowed.
  expect_error(a.call(request("4", "subscribe", channel_params("a"))), json::value(4), "PermissionDenied");
  EXPECT_TRUE(a.call(request("5", "subscribe", channel_params("d"))).as_object().contains("result"));
  expect_error(a.call(request("6", "publish", publish_params("c"))), json::value(6), "PermissionDenied");
}

TEST_F(client_session_test, reauth_without_subscribe_scope_drops_every_subscription) {
  authenticate(a);
  subscribe(a, "news");
  subscribe(a, "chat:room-1");
  token_spec publish_only;
  publish_only.scope = {"publish"};
  authenticate(a, publish_only);
  EXPECT_EQ(a.session->subscription_count(), 0u);
  EXPECT_EQ(hub.subscription_count(), 0u);
  EXPECT_EQ(stats.subscriptions.get(), 0u);
  a.call(request("3", "publish", publish_params("news")));
  EXPECT_TRUE(a.transport.deliveries.empty());
}

TEST_F(client_session_test, reauth_keeping_everything_keeps_subscriptions_and_their_seq) {
  authenticate(a);
  subscribe(a, "news");
  a.call(request("3", "publish", publish_params("news")));
  authenticate(a);
  a.call(request("4", "publish", publish_params("news")));
  ASSERT_EQ(a.transport.deliveries.size(), 2u);
  EXPECT_EQ(a.transport.deliveries[1].seq, 2u);  // the same subscription, not a new one
}

TEST_F(client_session_test, reauth_with_another_sub_is_failed_precondition_and_changes_nothing) {
  token_spec first;
  first.channels = {"news"};
  first.exp = now_s() + 300;
  authenticate(a, first);
  subscribe(a, "news");
  const auto expires = a.session->expires_at();

  token_spec intruder;
  intruder.sub = "user-2";
  intruder.channels = {"secret"};
  intruder.exp = now_s() + 9000;
  expect_error(a.call(auth_request("7", make_token(intruder))), json::value(7), "FailedPrecondition");
  expect_error(a.call(auth_request("", make_token(intruder))), nullptr, "FailedPrecondition");

  EXPECT_TRUE(a.session->authenticated());
  EXPECT_EQ(a.session->expires_at(), expires);
  EXPECT_EQ(a.session->subscription_count(), 1u);
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  // Still the first subject's claims.
  expect_error(a.call(request("8", "subscribe", channel_params("secret"))), json::value(8),
               "PermissionDenied");
  EXPECT_TRUE(a.call(request("9", "publish", publish_params("news"))).as_object().contains("result"));
}

// ---- subscribe / unsubscribe ----

TEST_F(client_session_test, subscribe_returns_a_subscription_id_and_timestamp) {
  authenticate(a);
  const auto reply = a.call(request("2", "subscribe", channel_params("news")));
  ASSERT_TRUE(reply.is_object()) << json::serialize(reply);
  EXPECT_EQ(reply.at("requestId"), json::value(2));
  const auto& result = reply.at("result").as_object();
  ASSERT_TRUE(result.contains("subscriptionId"));
  // A string (PROTOCOL; the brief's example is "sub-123"): "sub-" and the hub's id, shard in the high bits.
  ASSERT_TRUE(result.at("subscriptionId").is_string()) << json::serialize(reply);
  const std::string sid(result.at("subscriptionId").get_string());
  ASSERT_EQ(sid.rfind("sub-", 0), 0u) << sid;
  const auto id = std::stoull(sid.substr(4));
  EXPECT_EQ("sub-" + std::to_string(id), sid);
  EXPECT_EQ(id >> 40, k_shard);
  EXPECT_TRUE(is_rfc3339_ms(result.at("timestamp")));
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  EXPECT_EQ(a.session->subscription_count(), 1u);
  EXPECT_EQ(stats.subscriptions.get(), 1u);
}

TEST_F(client_session_test, subscription_ids_are_unique) {
  authenticate(a);
  authenticate(b);
  std::vector<std::string> ids;
  for (connection* c : {&a, &b}) {
    for (const char* ch : {"news", "chat:room-1"}) {
      ids.emplace_back(c->call(request("1", "subscribe", channel_params(ch)))
                           .at("result")
                           .at("subscriptionId")
                           .as_string());
    }
  }
  a.call(request("2", "unsubscribe", channel_params("news")));
  ids.emplace_back(a.call(request("1", "subscribe", channel_params("news")))
                       .at("result")
                       .at("subscriptionId")
                       .as_string());
  for (const auto& id : ids) EXPECT_FALSE(id.empty());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

TEST_F(client_session_test, subscribe_twice_is_already_exists) {
  authenticate(a);
  subscribe(a, "news");
  expect_error(a.call(request("3", "subscribe", channel_params("news"))), json::value(3), "AlreadyExists");
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  EXPECT_EQ(a.session->subscription_count(), 1u);
}

TEST_F(client_session_test, subscribe_needs_scope_and_channel) {
  token_spec no_scope;
  no_scope.scope = {"publish", "admin"};
  authenticate(a, no_scope);
  expect_error(a.call(request("1", "subscribe", channel_params("news"))), json::value(1), "PermissionDenied");
  authenticate(b);
  expect_error(b.call(request("2", "subscribe", channel_params("other"))), json::value(2),
               "PermissionDenied");
  expect_error(b.call(request("3", "subscribe", channel_params("news:sub"))), json::value(3),
               "PermissionDenied");
  expect_error(b.call(request("4", "subscribe", channel_params("new"))), json::value(4), "PermissionDenied");
  EXPECT_EQ(hub.subscription_count(), 0u);
  EXPECT_EQ(stats.errors[static_cast<std::size_t>(error_code::permission_denied)].get(), 4u);
}

TEST_F(client_session_test, subscribe_with_bad_params_is_invalid_argument) {
  authenticate(a);
  expect_error(a.call(request("1", "subscribe")), json::value(1), "InvalidArgument");
  expect_error(a.call(request("2", "subscribe", "{}")), json::value(2), "InvalidArgument");
  expect_error(a.call(request("3", "subscribe", R"({"channel":5})")), json::value(3), "InvalidArgument");
  expect_error(a.call(request("4", "subscribe", R"({"channel":"a::b"})")), json::value(4), "InvalidArgument");
  expect_error(a.call(request("5", "subscribe", R"({"channel":""})")), json::value(5), "InvalidArgument");
  expect_error(a.call(request("6", "subscribe", R"({"channel":"a b"})")), json::value(6), "InvalidArgument");
  EXPECT_EQ(hub.subscription_count(), 0u);
}

TEST_F(client_session_test, unknown_params_fields_are_ignored) {
  authenticate(a);
  EXPECT_TRUE(a.call(request("1", "subscribe", R"({"channel":"news","lastSeenMessageId":"x"})"))
                  .as_object()
                  .contains("result"));
}

TEST_F(client_session_test, max_subscriptions_is_resource_exhausted) {
  services.limits.max_subscriptions = 2;
  token_spec t;
  t.channels = {"a", "b", "c"};
  authenticate(a, t);
  subscribe(a, "a");
  subscribe(a, "b");
  expect_error(a.call(request("3", "subscribe", channel_params("c"))), json::value(3), "ResourceExhausted");
  EXPECT_EQ(hub.subscriber_count("c"), 0u);
  EXPECT_EQ(a.session->subscription_count(), 2u);
  // AlreadyExists takes precedence over the limit for a channel already held.
  expect_error(a.call(request("4", "subscribe", channel_params("a"))), json::value(4), "AlreadyExists");
  a.call(request("5", "unsubscribe", channel_params("a")));
  subscribe(a, "c");
  EXPECT_EQ(hub.subscriber_count("c"), 1u);
}

TEST_F(client_session_test, unsubscribe_leaves_and_is_idempotent) {
  authenticate(a);
  subscribe(a, "news");
  const auto ok = json::parse(R"({"requestId":4,"result":{"success":true}})");
  EXPECT_EQ(a.call(request("4", "unsubscribe", channel_params("news"))), ok);
  EXPECT_EQ(hub.subscriber_count("news"), 0u);
  EXPECT_EQ(a.session->subscription_count(), 0u);
  EXPECT_EQ(stats.subscriptions.get(), 0u);
  EXPECT_EQ(a.call(request("4", "unsubscribe", channel_params("news"))), ok);            // again
  EXPECT_EQ(a.call(request("4", "unsubscribe", channel_params("chat:room-1"))), ok);     // never subscribed
  EXPECT_EQ(a.call(request("4", "unsubscribe", channel_params("not-authorized"))), ok);  // not even allowed
  a.notify(request("", "unsubscribe", channel_params("news")));
  EXPECT_EQ(stats.subscriptions.get(), 0u);
}

TEST_F(client_session_test, unsubscribe_with_bad_params_is_invalid_argument) {
  authenticate(a);
  expect_error(a.call(request("1", "unsubscribe")), json::value(1), "InvalidArgument");
  expect_error(a.call(request("2", "unsubscribe", R"({"channel":[]})")), json::value(2), "InvalidArgument");
  expect_error(a.call(request("3", "unsubscribe", R"({"channel":":x"})")), json::value(3), "InvalidArgument");
}

TEST_F(client_session_test, unsubscribe_only_affects_its_channel_and_session) {
  authenticate(a);
  authenticate(b);
  subscribe(a, "news");
  subscribe(a, "chat:room-1");
  subscribe(b, "news");
  a.call(request("3", "unsubscribe", channel_params("news")));
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  EXPECT_EQ(hub.subscriber_count("chat:room-1"), 1u);
  b.call(request("4", "publish", publish_params("news")));
  EXPECT_TRUE(a.transport.deliveries.empty());
  EXPECT_EQ(b.transport.deliveries.size(), 1u);
}

// ---- publish ----

TEST_F(client_session_test, publish_returns_id_and_create_time_and_delivers_to_self_in_order) {
  authenticate(a);
  subscribe(a, "news");
  std::vector<json::value> results;
  for (int i = 1; i <= 3; ++i) {
    const auto reply = a.call(request(std::to_string(100 + i), "publish",
                                      publish_params("news", "{\"n\":" + std::to_string(i) + "}")));
    ASSERT_TRUE(reply.is_object());
    EXPECT_EQ(reply.at("requestId"), json::value(100 + i));
    const auto& result = reply.at("result").as_object();
    EXPECT_EQ(result.size(), 2u);
    EXPECT_TRUE(is_uuid_v7(result.at("id"))) << json::serialize(reply);
    EXPECT_TRUE(is_rfc3339_ms(result.at("createTime"))) << json::serialize(reply);
    results.push_back(reply.at("result"));
  }
  const auto got = a.transport.broadcasts();
  ASSERT_EQ(got.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& p = got[i].at("params");
    EXPECT_EQ(got[i].at("method"), json::value("broadcast"));
    EXPECT_EQ(p.at("seq"), json::value(i + 1));
    EXPECT_EQ(p.at("id"), results[i].at("id"));
    EXPECT_EQ(p.at("createTime"), results[i].at("createTime"));
    EXPECT_EQ(p.at("channel"), json::value("news"));
    EXPECT_EQ(p.at("event"), json::value("message"));
    EXPECT_EQ(p.at("payload"), json::parse("{\"n\":" + std::to_string(i + 1) + "}"));
  }
  EXPECT_NE(results[0].at("id"), results[1].at("id"));
  EXPECT_EQ(stats.published_ws.get(), 3u);
}

TEST_F(client_session_test, payload_of_any_type_is_delivered_as_the_same_value) {
  authenticate(a);
  subscribe(a, "news");
  const std::vector<std::string> payloads = {"null",
                                             "0",
                                             "-1.5",
                                             "true",
                                             R"("s \"q\" \u00e9")",
                                             "[]",
                                             R"([1,[2,[3]],{"k":null}])",
                                             R"({"nested":{"a":[{}]}})"};
  for (const auto& p : payloads) a.call(request("1", "publish", publish_params("news", p)));
  const auto got = a.transport.broadcasts();
  ASSERT_EQ(got.size(), payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_TRUE(same_json(got[i].at("params").at("payload"), json::parse(payloads[i]))) << payloads[i];
  }
}

// The payload text of a broadcast frame: everything after ,"payload": up to the closing }}.
std::string payload_text(const fake_transport::delivery& d) {
  const std::string frame = d.pub->head + std::to_string(d.seq) + d.pub->tail;
  const std::string marker = ",\"payload\":";
  const auto at = frame.rfind(marker);
  if (at == std::string::npos || frame.size() < at + marker.size() + 2)
    return "<no payload in " + frame + ">";
  return frame.substr(at + marker.size(), frame.size() - at - marker.size() - 2);
}

TEST_F(client_session_test, payload_is_delivered_byte_for_byte) {
  // The publisher's source text, not a re-serialisation: numbers a double cannot hold (beyond 64 bits,
  // 1e-400, 1e400, -0), their spellings (0.10, 1E+2), escapes and inner whitespace all arrive unchanged.
  authenticate(a);
  subscribe(a, "news");
  const std::vector<std::string> payloads = {"18446744073709551617",
                                             "123456789012345678901234567890",
                                             "1e-400",
                                             "1e400",
                                             "-0",
                                             "0.10",
                                             "1E+2",
                                             R"("\u00e9\n")",
                                             R"("\/")",
                                             "{ \"a\" : [ 1 ,\n\t2.50 ] , \"b\":{ } }",
                                             R"({"x":[-1e999],"y":{"deep":{"er":1E400}}})"};
  for (const auto& p : payloads) {
    EXPECT_TRUE(a.call(request("1", "publish", publish_params("news", p))).as_object().contains("result"))
        << p;
  }
  ASSERT_EQ(a.transport.deliveries.size(), payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i)
    EXPECT_EQ(payload_text(a.transport.deliveries[i]), payloads[i]);
  EXPECT_EQ(stats.published_ws.get(), payloads.size());
}

TEST_F(client_session_test, duplicate_payload_keys_deliver_the_member_that_was_validated) {
  authenticate(a);
  subscribe(a, "news");
  a.call(request("1", "publish", R"({"channel":"news","event":"e","payload":1,"pay\u006coad":{"k" : 2}})"));
  a.call(request(
      "2", "publish",
      R"({"channel":"news","event":"e","payload":1},"params":{"channel":"news","event":"e","payload":[3]})"));
  ASSERT_EQ(a.transport.deliveries.size(), 2u);
  EXPECT_EQ(payload_text(a.transport.deliveries[0]), R"({"k" : 2})");
  EXPECT_EQ(payload_text(a.transport.deliveries[1]), "[3]");
}

TEST_F(client_session_test, refused_publish_is_not_counted_as_published) {
  authenticate(a);
  expect_error(a.call(request("2", "publish", publish_params("news", "1", ""))), json::value(2),
               "InvalidArgument");
  expect_error(a.call(request("3", "publish", R"({"channel":"news","event":"e"})")), json::value(3),
               "InvalidArgument");
  EXPECT_EQ(stats.published_ws.get(), 0u);
}

TEST_F(client_session_test, request_id_is_echoed_byte_for_byte) {
  authenticate(a);
  for (const std::string id : {"1e2", "12345678901234567890123", "1e400", "1e-400", "0.10", "-5",
                               R"("a\u0041\/\n")", R"("\ud83d\ude00")"}) {
    a.transport.texts.clear();
    a.session->on_text(R"({"id":)" + id + R"(,"method":"heartbeat"})");
    ASSERT_EQ(a.transport.texts.size(), 1u) << id;
    EXPECT_EQ(a.transport.texts[0].rfind(R"({"requestId":)" + id + ",\"result\":", 0), 0u)
        << a.transport.texts[0];
    // And on an error reply.
    a.transport.texts.clear();
    a.session->on_text(R"({"id":)" + id + R"(,"method":"nope"})");
    ASSERT_EQ(a.transport.texts.size(), 1u) << id;
    EXPECT_EQ(a.transport.texts[0].rfind(R"({"requestId":)" + id + ",\"error\":", 0), 0u)
        << a.transport.texts[0];
  }
  // Every spelling of zero is a notification: no reply on success.
  for (const char* id : {"0", "-0", "0.0", "0e5"}) {
    a.transport.texts.clear();
    a.session->on_text(R"({"id":)" + std::string(id) + R"(,"method":"heartbeat"})");
    EXPECT_TRUE(a.transport.texts.empty()) << id;
  }
}

TEST_F(client_session_test, publish_reaches_other_sessions_with_their_own_seq) {
  authenticate(a);
  authenticate(b);
  subscribe(b, "news");
  a.call(request("1", "publish", publish_params("news")));
  subscribe(a, "news");
  a.call(request("2", "publish", publish_params("news")));
  ASSERT_EQ(b.transport.deliveries.size(), 2u);
  EXPECT_EQ(b.transport.deliveries[0].seq, 1u);
  EXPECT_EQ(b.transport.deliveries[1].seq, 2u);
  ASSERT_EQ(a.transport.deliveries.size(), 1u);
  EXPECT_EQ(a.transport.deliveries[0].seq, 1u);
  // One encoding shared by every subscriber.
  EXPECT_EQ(a.transport.deliveries[0].pub.get(), b.transport.deliveries[1].pub.get());
}

TEST_F(client_session_test, new_subscription_restarts_seq_at_one) {
  authenticate(a);
  subscribe(a, "news");
  a.call(request("1", "publish", publish_params("news")));
  a.call(request("2", "publish", publish_params("news")));
  a.call(request("3", "unsubscribe", channel_params("news")));
  a.call(request("4", "publish", publish_params("news")));  // not subscribed: not delivered
  subscribe(a, "news");
  a.call(request("5", "publish", publish_params("news")));
  ASSERT_EQ(a.transport.deliveries.size(), 3u);
  EXPECT_EQ(a.transport.deliveries[0].seq, 1u);
  EXPECT_EQ(a.transport.deliveries[1].seq, 2u);
  EXPECT_EQ(a.transport.deliveries[2].seq, 1u);
}

TEST_F(client_session_test, publish_needs_scope_and_channel) {
  token_spec subscribe_only;
  subscribe_only.scope = {"subscribe"};
  authenticate(a, subscribe_only);
  subscribe(a, "news");
  expect_error(a.call(request("1", "publish", publish_params("news"))), json::value(1), "PermissionDenied");
  authenticate(b);
  expect_error(b.call(request("2", "publish", publish_params("elsewhere"))), json::value(2),
               "PermissionDenied");
  EXPECT_TRUE(a.transport.deliveries.empty());
  EXPECT_EQ(stats.published_ws.get(), 0u);
}

TEST_F(client_session_test, publish_with_bad_params_is_invalid_argument) {
  authenticate(a);
  subscribe(a, "news");
  const std::vector<std::string> bad = {
      "",                                                                              // no params
      "{}",                                                                            // nothing
      R"({"event":"e","payload":1})",                                                  // no channel
      R"({"channel":7,"event":"e","payload":1})",                                      // channel not a string
      R"({"channel":"a::b","event":"e","payload":1})",                                 // invalid channel
      R"({"channel":"news","payload":1})",                                             // no event
      R"({"channel":"news","event":3,"payload":1})",                                   // event not a string
      R"({"channel":"news","event":"","payload":1})",                                  // empty event
      R"({"channel":"news","event":")" + std::string(256, 'e') + R"(","payload":1})",  // event too long
      R"({"channel":"news","event":"e"})",                                             // no payload
  };
  for (const auto& params : bad) {
    expect_error(
        a.call(request("9", "publish", params.empty() ? std::string_view{} : std::string_view(params))),
        json::value(9), "InvalidArgument");
  }
  EXPECT_TRUE(a.transport.deliveries.empty());
  // 255 characters is still a valid event.
  EXPECT_TRUE(a.call(request("10", "publish", publish_params("news", "1", std::string(255, 'e'))))
                  .as_object()
                  .contains("result"));
}

TEST_F(client_session_test, invalid_argument_is_checked_before_permission) {
  // A malformed publish is InvalidArgument even without the publish scope.
  token_spec subscribe_only;
  subscribe_only.scope = {"subscribe"};
  authenticate(a, subscribe_only);
  expect_error(a.call(request("1", "publish", R"({"channel":"news"})")), json::value(1), "InvalidArgument");
}

// ---- notifications ----

TEST_F(client_session_test, notifications_succeed_silently_and_fail_loudly) {
  a.notify(auth_request("", make_token()));
  a.notify(request("", "subscribe", channel_params("news")));
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  a.notify(request("0", "publish", publish_params("news")));
  EXPECT_EQ(a.transport.deliveries.size(), 1u);  // delivered, but no publish result
  a.notify(request("null", "unsubscribe", channel_params("news")));
  EXPECT_EQ(hub.subscriber_count("news"), 0u);

  expect_error(a.call(request("", "subscribe", channel_params("forbidden"))), nullptr, "PermissionDenied");
  expect_error(a.call(request("", "publish", publish_params("forbidden"))), nullptr, "PermissionDenied");
  expect_error(a.call(request("", "subscribe", "{}")), nullptr, "InvalidArgument");
  a.notify(request("", "subscribe", channel_params("news")));
  expect_error(a.call(request("", "subscribe", channel_params("news"))), nullptr, "AlreadyExists");
  expect_error(a.call(request("0", "nope")), nullptr, "NotFound");
}

// ---- lifetime and stats ----

TEST_F(client_session_test, drop_subscriptions_stops_delivery) {
  authenticate(a);
  authenticate(b);
  subscribe(a, "news");
  subscribe(a, "chat:room-1");
  a.session->drop_subscriptions();
  EXPECT_EQ(a.session->subscription_count(), 0u);
  EXPECT_EQ(hub.subscription_count(), 0u);
  EXPECT_EQ(stats.subscriptions.get(), 0u);
  b.call(request("1", "publish", publish_params("news")));
  EXPECT_TRUE(a.transport.deliveries.empty());
}

TEST_F(client_session_test, destroying_the_session_unsubscribes_it) {
  authenticate(a);
  authenticate(b);
  subscribe(a, "news");
  subscribe(b, "news");
  EXPECT_EQ(stats.subscriptions.get(), 2u);
  a.session.reset();
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  EXPECT_EQ(stats.subscriptions.get(), 1u);
  b.call(request("1", "publish", publish_params("news")));  // must not reach the destroyed session
  EXPECT_EQ(b.transport.deliveries.size(), 1u);
}

TEST_F(client_session_test, counts_requests_by_method_and_errors_by_code) {
  a.call(request("1", "heartbeat"));
  a.call(request("2", "heartbeat"));
  a.call(request("3", "subscribe", channel_params("news")));
  authenticate(a);
  a.call(request("4", "publish", publish_params("news")));
  EXPECT_EQ(stats.requests[static_cast<std::size_t>(method::heartbeat)].get(), 2u);
  EXPECT_EQ(stats.requests[static_cast<std::size_t>(method::subscribe)].get(), 1u);
  EXPECT_EQ(stats.requests[static_cast<std::size_t>(method::auth)].get(), 1u);
  EXPECT_EQ(stats.requests[static_cast<std::size_t>(method::publish)].get(), 1u);
  EXPECT_EQ(stats.errors[static_cast<std::size_t>(error_code::unauthenticated)].get(), 1u);
  EXPECT_EQ(stats.published_ws.get(), 1u);
}

TEST_F(client_session_test, latency_is_observed_once_per_request_refused_or_not) {
  auto observed = [&](method m) {
    const auto& h = stats.latency[static_cast<std::size_t>(m)];
    std::uint64_t n = 0;
    for (std::size_t b = 0; b <= latency_histogram::bounds_us.size(); ++b) n += h.bucket(b);
    return n;
  };
  a.call(request("1", "publish", publish_params("news")));  // before auth
  authenticate(a);
  a.call(request("2", "publish", publish_params("not-allowed")));
  a.call(request("3", "publish", R"({"channel":"news"})"));                              // no event
  a.call(request("4", "publish", R"({"channel":"news","event":"e","payload":1e400})"));  // delivered as is
  a.call(request("5", "publish", publish_params("news")));
  a.call(request("6", "subscribe", channel_params("nope")));
  EXPECT_EQ(observed(method::publish), 5u);
  EXPECT_EQ(observed(method::subscribe), 1u);
  EXPECT_EQ(observed(method::auth), 1u);
  EXPECT_EQ(stats.published_ws.get(), 2u);
}

TEST_F(client_session_test, never_closes_the_connection_on_bad_input) {
  a.call("");
  a.call("\xff\xfe");
  a.call(request("1", "subscribe", channel_params("news")));
  a.session->on_binary();
  EXPECT_TRUE(a.transport.closes.empty());
}

// ---- rate limit ----

TEST_F(client_session_test, no_rate_limit_by_default) {
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(a.call(request("1", "heartbeat")).as_object().contains("result"));
  EXPECT_EQ(stats.rate_limited.get(), 0u);
}

// The rate limiter's clock in these tests: it moves only when a test moves it, so "requests in a burst" and
// "after the refill" hold however slowly the machine runs the test.
std::chrono::steady_clock::time_point manual_now{std::chrono::hours(1)};
std::chrono::steady_clock::time_point manual_clock() {
  return manual_now;
}

class rate_limit_test : public client_session_test {
 protected:
  void SetUp() override { services.now = &manual_clock; }
  // `ok` requests pass, then `refused` are answered ResourceExhausted, all at the same instant.
  void passes_then_refused(int ok, int refused) {
    for (int i = 0; i < ok; ++i)
      EXPECT_TRUE(a.call(request("1", "heartbeat")).as_object().contains("result"));
    for (int i = 0; i < refused; ++i) {
      expect_error(a.call(request("2", "heartbeat")), json::value(2), "ResourceExhausted");
    }
  }
};

TEST_F(rate_limit_test, requests_over_the_burst_are_resource_exhausted_then_the_connection_closes) {
  services.limits.rate = 10;
  services.limits.burst = 3;
  services.limits.max_violations = 4;
  passes_then_refused(3, 3);
  EXPECT_TRUE(a.transport.closes.empty());
  a.session->on_binary();  // binary frames count too: the 4th violation closes
  ASSERT_EQ(a.transport.closes.size(), 1u);
  EXPECT_EQ(a.transport.closes[0].first, 1008);
  EXPECT_EQ(stats.rate_limited.get(), 4u);
  // The limit is per connection.
  EXPECT_TRUE(b.call(request("3", "heartbeat")).as_object().contains("result"));
}

TEST_F(rate_limit_test, a_refusal_carries_the_request_id_when_there_is_one) {
  services.limits.rate = 10;
  services.limits.burst = 1;
  passes_then_refused(1, 0);
  expect_error(a.call(request(R"("abc")", "subscribe", channel_params("news"))), json::value("abc"),
               "ResourceExhausted");
  expect_error(a.call(request("", "heartbeat")), nullptr, "ResourceExhausted");  // a notification
  expect_error(a.call("{not json"), nullptr, "ResourceExhausted");
  expect_error(a.call(request("7", "no-such-method")), json::value(7), "ResourceExhausted");
  EXPECT_EQ(stats.rate_limited.get(), 4u);
  EXPECT_EQ(stats.requests[static_cast<std::size_t>(method::subscribe)].get(), 0u) << "refused, not run";
}

TEST_F(rate_limit_test, tokens_come_back_at_the_rate) {
  services.limits.rate = 200;  // one token per 5 ms
  services.limits.burst = 4;
  passes_then_refused(4, 1);
  manual_now += std::chrono::milliseconds(4);
  passes_then_refused(0, 1);  // 0.8 of a token
  manual_now += std::chrono::milliseconds(7);
  passes_then_refused(2, 1);  // 0.8 + 1.4 = 2.2 tokens
  manual_now += std::chrono::hours(1);
  passes_then_refused(4, 1);  // the bucket holds no more than the burst
  EXPECT_TRUE(a.transport.closes.empty());
}

TEST_F(rate_limit_test, refusals_are_forgiven_once_the_bucket_has_refilled) {
  services.limits.rate = 200;
  services.limits.burst = 2;
  services.limits.max_violations = 4;
  passes_then_refused(2, 3);
  manual_now += std::chrono::milliseconds(10);  // full again
  passes_then_refused(2, 3);                    // 6 refusals in all, but only 3 since the bucket was full
  EXPECT_TRUE(a.transport.closes.empty());
  a.session->on_binary();  // the 4th in a row closes
  ASSERT_EQ(a.transport.closes.size(), 1u);
  EXPECT_EQ(a.transport.closes[0].first, 1008);
}

TEST_F(rate_limit_test, a_partial_refill_forgives_nothing) {
  services.limits.rate = 200;
  services.limits.burst = 2;
  services.limits.max_violations = 4;
  passes_then_refused(2, 3);
  manual_now += std::chrono::milliseconds(5);  // one token back, the bucket not full
  passes_then_refused(1, 0);
  EXPECT_TRUE(a.transport.closes.empty());
  a.session->on_binary();  // the 4th refusal since the bucket was last full
  ASSERT_EQ(a.transport.closes.size(), 1u);
  EXPECT_EQ(a.transport.closes[0].first, 1008);
}

// A broker that answers later (as Redis does): the publish reply waits for it.
class deferred_broker : public broker::broker {
 public:
  void start() override {}
  void stop() override {}
  void publish(core::message, std::function<void(bc::broker::publish_status)> done) override {
    pending.push_back(std::move(done));
  }
  void subscribe(std::string_view) override {}
  void unsubscribe(std::string_view) override {}
  bool healthy() const override { return true; }
  std::string describe() const override { return "deferred"; }
  bool await_subscribed(std::string_view channel, std::function<void()> ready) override {
    awaiting.emplace_back(std::string(channel), std::move(ready));
    return false;
  }
  void history(bc::broker::history_request, std::function<void(bc::broker::history_result)> done) override {
    bc::broker::history_result r;
    r.top = {"e", 0};
    done(std::move(r));
  }
  std::vector<std::function<void(bc::broker::publish_status)>> pending;
  std::vector<std::pair<std::string, std::function<void()>>> awaiting;
};

TEST_F(client_session_test, subscribe_reply_waits_until_the_broker_has_the_channel) {
  deferred_broker slow;
  node_over slow_node{hub, slow};
  session_services slow_services{slow_node.engine, slow_node.pub, verifier, session_limits{}, stats};
  connection c{slow_services};
  authenticate(c);
  const std::size_t before = c.transport.texts.size();
  c.session->on_text(request("5", "subscribe", channel_params("news")));
  EXPECT_EQ(c.transport.texts.size(), before) << "replied before the broker confirmed";
  ASSERT_EQ(slow.awaiting.size(), 1u);
  EXPECT_EQ(slow.awaiting[0].first, "news");
  // The subscription is live locally already: a message published on this node meanwhile is delivered.
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
  slow.awaiting[0].second();
  ASSERT_EQ(c.transport.texts.size(), before + 1);
  const auto reply = json::parse(c.transport.texts.back());
  EXPECT_EQ(reply.at("requestId"), json::value(5));
  EXPECT_TRUE(reply.at("result").as_object().contains("subscriptionId"));
  EXPECT_TRUE(is_rfc3339_ms(reply.at("result").at("timestamp")));
}

TEST_F(client_session_test, subscribe_notification_neither_replies_nor_waits) {
  deferred_broker slow;
  node_over slow_node{hub, slow};
  session_services slow_services{slow_node.engine, slow_node.pub, verifier, session_limits{}, stats};
  connection c{slow_services};
  authenticate(c);
  c.notify(request("", "subscribe", channel_params("news")));
  EXPECT_TRUE(slow.awaiting.empty());
  EXPECT_EQ(hub.subscriber_count("news"), 1u);
}

TEST_F(client_session_test, refused_subscribe_does_not_wait_for_the_broker) {
  deferred_broker slow;
  node_over slow_node{hub, slow};
  session_services slow_services{slow_node.engine, slow_node.pub, verifier, session_limits{}, stats};
  connection c{slow_services};
  authenticate(c);
  expect_error(c.call(request("1", "subscribe", channel_params("not-mine"))), json::value(1),
               "PermissionDenied");
  EXPECT_TRUE(slow.awaiting.empty());
}

TEST_F(client_session_test, broker_failure_is_unavailable_with_request_id) {
  deferred_broker slow;
  node_over slow_node{hub, slow};
  session_services slow_services{slow_node.engine, slow_node.pub, verifier, session_limits{}, stats};
  connection c{slow_services};
  authenticate(c);
  c.session->on_text(request(R"("p")", "publish", publish_params("news")));
  c.session->on_text(request("", "publish", publish_params("news")));
  c.session->on_text(request("9", "publish", publish_params("news")));
  ASSERT_EQ(slow.pending.size(), 3u);
  const std::size_t before = c.transport.texts.size();
  slow.pending[0](broker::publish_status::unavailable);
  slow.pending[1](broker::publish_status::unavailable);  // a notification's failure still replies
  slow.pending[2](broker::publish_status::ok);
  ASSERT_EQ(c.transport.texts.size(), before + 3);
  expect_error(json::parse(c.transport.texts[before]), json::value("p"), "Unavailable");
  expect_error(json::parse(c.transport.texts[before + 1]), nullptr, "Unavailable");
  const auto ok = json::parse(c.transport.texts[before + 2]);
  EXPECT_EQ(ok.at("requestId"), json::value(9));
  EXPECT_TRUE(is_uuid_v7(ok.at("result").at("id")));
}

}  // namespace
}  // namespace bc::protocol
