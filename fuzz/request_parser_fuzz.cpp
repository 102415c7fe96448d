// libFuzzer target for the WebSocket request path: protocol::parse_request and the client_session dispatcher.
//
// The input is one or more text messages separated by '\n'. The first byte picks the session's starting
// state (unauthenticated, authenticated with full rights, or with the subscribe scope only), so the fuzzer
// reaches every method without having to forge a JWT. Each message is first given to parse_request alone,
// then to client_session::on_text on a session wired to a real hub and a memory broker, exactly as a
// connection's thread runs it.
//
// Besides the sanitizers, every output is checked: each reply is one JSON object with exactly one of result
// or error (a known code), requestId equal to the request's id; each broadcast frame (head + seq + tail) is
// the JSON notification with seq 1, 2, ... per subscription; the hub's books match the session's. Any
// violation aborts, which libFuzzer reports as a crash.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../tests/support/direct_thread.hpp"
#include "auth/jwt_signer.hpp"
#include "auth/jwt_verifier.hpp"
#include "broker/memory_broker.hpp"
#include "core/hub.hpp"
#include "engine/node.hpp"
#include "engine/thread_engine.hpp"
#include "protocol/client_session.hpp"
#include "protocol/encoder.hpp"
#include "protocol/publisher.hpp"
#include "protocol/request.hpp"
#include "protocol/session_stats.hpp"
#include "protocol/time_format.hpp"

namespace {

namespace json = boost::json;
using namespace bc;

constexpr std::string_view k_secret = "fuzz-secret";

void check(bool condition) {
  if (!condition) std::abort();
}

json::value parse_or_abort(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  check(!ec);
  return v;
}

class checking_transport : public protocol::client_transport {
 public:
  void send_text(std::string text) override { texts.push_back(std::move(text)); }
  void send_publication(const core::publication_ptr& pub, std::uint64_t seq) override {
    const json::value v = parse_or_abort(pub->head + std::to_string(seq) + pub->tail);
    check(v.is_object() && v.at("method") == "broadcast");
    const auto& params = v.at("params").as_object();
    check(params.at("seq") == json::value(seq));
    const std::string channel(params.at("channel").as_string());
    check(channel == pub->channel);
    // seq counts per subscription; the harness never unsubscribes between publishes without noticing.
    auto& last = last_seq[channel];
    check(seq == last + 1 || seq == 1);
    last = seq;
    ++deliveries;
  }
  void close(std::uint16_t, std::string_view) override { ++closes; }
  std::function<void(std::function<void()>)> make_deferrer() override {
    return [](std::function<void()> f) { f(); };
  }

  std::vector<std::string> texts;
  std::map<std::string, std::uint64_t> last_seq;
  std::size_t deliveries = 0;
  std::size_t closes = 0;
};

const std::string_view k_codes[] = {"InvalidArgument",    "NotFound",          "AlreadyExists",
                                    "FailedPrecondition", "PermissionDenied",  "Unauthenticated",
                                    "Internal",           "ResourceExhausted", "Unavailable"};

// One reply: {"requestId"?: id, "result": {...}} or {"requestId"?: id, "error": {"code","message"}}.
void check_reply(std::string_view text, const std::string& id_json) {
  const json::value v = parse_or_abort(text);
  check(v.is_object());
  const auto& o = v.as_object();
  const bool has_result = o.contains("result");
  const bool has_error = o.contains("error");
  check(has_result != has_error);
  check(o.size() == (o.contains("requestId") ? 2u : 1u));
  if (!id_json.empty()) {
    // The id exactly as the client wrote it (raw_json), so compared as text: Boost reads some numbers as NaN.
    check(o.contains("requestId"));
    check(text.substr(0, 13 + id_json.size() + 1) == "{\"requestId\":" + id_json + ",");
  }
  if (has_error) {
    const auto& e = o.at("error").as_object();
    check(e.size() == 2);
    const auto& code = e.at("code").as_string();
    bool known = false;
    for (auto c : k_codes) known |= code == c;
    check(known);
    check(!e.at("message").as_string().empty());
  } else {
    check(o.at("result").is_object());
  }
}

std::string token(bool publish) {
  const std::int64_t now = bc::protocol::now_unix_ms() / 1000;
  json::object claims{{"sub", "fuzzer"},
                      {"aud", "broadcaster"},
                      {"iat", now - 60},
                      {"exp", now + 10 * 365 * 24 * 3600LL},
                      {"authorizedChannels", json::array{"news", "chat:room-1", "a", "b", "c"}},
                      {"scope", publish ? json::array{"subscribe", "publish"} : json::array{"subscribe"}}};
  return auth::sign_hs256(k_secret, json::serialize(claims));
}

struct world {
  world() {
    node.add_thread(thread);
    node.attach(memory);
  }
  core::hub hub{1};
  engine::node node{protocol::encode_publication};
  bc::testing::direct_thread thread{hub};
  broker::memory_broker memory{node};
  engine::thread_engine engine{node, hub};
  protocol::publisher pub{node};
  auth::jwt_verifier verifier{std::string(k_secret)};
  protocol::session_stats stats;
  protocol::session_services services{engine, pub, verifier, protocol::session_limits{3, 30}, stats};
  std::string full_token = token(true);
  std::string subscribe_token = token(false);
};

void fuzz_one_message(world& w, protocol::client_session& session, checking_transport& t,
                      std::string_view text) {
  // parse_request on its own.
  const auto parsed = protocol::parse_request(text);
  if (parsed.req) {
    check(parsed.req->id_json == parsed.id_json);
    if (!parsed.id_json.empty()) parse_or_abort(parsed.id_json);
  } else {
    check(!parsed.message.empty());
    check(parsed.code == protocol::error_code::invalid_argument ||
          parsed.code == protocol::error_code::not_found);
    if (!parsed.id_json.empty()) parse_or_abort(parsed.id_json);
  }

  // And through the dispatcher.
  const std::size_t before = t.texts.size();
  const std::size_t deliveries_before = t.deliveries;
  session.on_text(text);
  const std::size_t replies = t.texts.size() - before;
  check(replies <= 1);
  // A request with an id always gets exactly one reply; a failure always replies.
  if (!parsed.req || !parsed.id_json.empty()) check(replies == 1);
  if (replies == 1) check_reply(t.texts.back(), parsed.id_json);
  // Only a successful publish delivers, at most once (the session subscribes once per channel).
  check(t.deliveries - deliveries_before <= 1);
  if (t.deliveries != deliveries_before) check(parsed.req && parsed.req->verb == protocol::method::publish);
  // The hub and the session agree on what is subscribed.
  check(w.hub.subscription_count() == session.subscription_count());
  check(session.subscription_count() <= w.services.limits.max_subscriptions);
  check(w.stats.subscriptions.get() == session.subscription_count());
  check(t.closes == 0);
  (void)w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static world* w = new world();  // built once: the verifier and tokens cost more than a run
  if (size == 0) return 0;
  const std::uint8_t mode = data[0] % 3;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  {
    checking_transport t;
    protocol::client_session session(w->services, t);
    if (mode != 0) {
      const std::string& tok = mode == 1 ? w->full_token : w->subscribe_token;
      session.on_text(R"({"id":1,"method":"auth","params":{"token":")" + tok + "\"}}");
      check(session.authenticated());
      t.texts.clear();
    }
    while (true) {
      const auto nl = rest.find('\n');
      fuzz_one_message(*w, session, t, rest.substr(0, nl));
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  // The session is gone: so are its subscriptions.
  check(w->hub.subscription_count() == 0);
  check(w->hub.channel_count() == 0);
  check(w->stats.subscriptions.get() == 0);
  return 0;
}
