// libFuzzer target for the REST publish endpoint without HTTP: protocol::rest_api::publish with a valid
// `Authorization: Bearer <key>`, the input as the request body, over a memory broker whose sink records what
// would be fanned out.
//
// Checked on every input: `done` runs exactly once with a status from docs/protocol.md's table and a JSON
// body. A 200 answer is {"id","createTime"} and exactly one publication reached the sink, whose frame (head +
// seq + tail) is the broadcast notification carrying the body's channel, event and payload (the body's own
// payload text, so the same JSON value) under that id. Any other answer is {"error":{"code","message"}} with
// the status of its code, and nothing was published. Any violation aborts.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/api_keys.hpp"
#include "broker/memory_broker.hpp"
#include "engine/node.hpp"
#include "equal_json.hpp"
#include "protocol/encoder.hpp"
#include "protocol/error_code.hpp"
#include "protocol/publisher.hpp"
#include "protocol/rest_api.hpp"
#include "protocol/session_stats.hpp"

namespace {

namespace json = boost::json;
using namespace bc;

void check(bool condition) {
  if (!condition) std::abort();
}

json::value parse_or_abort(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  check(!ec);
  return v;
}

// What the broker hands on, encoded as the engine would.
class recording_sink : public broker::delivery_sink {
 public:
  void deliver(core::message msg) override { pubs.push_back(protocol::encode_publication(std::move(msg))); }
  void deliver_gap(std::string, std::uint64_t, std::uint64_t) override {}
  std::vector<core::publication_ptr> pubs;
};

struct world {
  world() { node.attach(memory); }
  recording_sink sink;
  broker::memory_broker memory{sink};
  engine::node node{protocol::encode_publication};
  protocol::publisher pub{node};
  auth::api_keys keys{{"fuzz-key-1", "fuzz-key-2"}};
  protocol::rest_api api{pub, keys, node};
  protocol::session_stats stats;
};

std::optional<protocol::error_code> code_named(std::string_view name) {
  using protocol::error_code;
  for (auto c : {error_code::invalid_argument, error_code::not_found, error_code::already_exists,
                 error_code::failed_precondition, error_code::permission_denied, error_code::unauthenticated,
                 error_code::internal, error_code::resource_exhausted, error_code::unavailable}) {
    if (protocol::to_string(c) == name) return c;
  }
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static world* w = new world();
  w->sink.pubs.clear();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const std::uint64_t published_before = w->stats.published_rest.get();

  int calls = 0;
  protocol::http_reply reply;
  w->api.publish(size % 2 ? "Bearer fuzz-key-1" : "bearer fuzz-key-2", body, w->stats,
                 [&](protocol::http_reply r) {
                   ++calls;
                   reply = std::move(r);
                 });
  check(calls == 1);  // the memory broker answers synchronously
  const json::value answer = parse_or_abort(reply.body);
  check(answer.is_object());

  if (reply.status == 200) {
    check(w->sink.pubs.size() == 1);
    check(w->stats.published_rest.get() == published_before + 1);
    const auto& result = answer.as_object();
    check(result.size() == 2 && result.contains("id") && result.contains("createTime"));
    const auto& pub = *w->sink.pubs[0];
    const json::value frame = parse_or_abort(pub.head + "1" + pub.tail);
    const json::value request = parse_or_abort(body);
    const auto& params = frame.at("params").as_object();
    check(frame.at("method") == "broadcast");
    check(params.at("seq") == 1);
    check(params.at("id") == result.at("id"));
    check(params.at("createTime") == result.at("createTime"));
    check(params.at("channel") == request.at("channel"));
    check(params.at("event") == request.at("event"));
    // The payload is the body's own text (raw_json), so it reads back as the same value (equal_json: up to
    // Boost 1.81's own rounding quirks), 1e400 as infinite as in the request, nothing refused for it.
    check(bc::fuzzing::equal_json(params.at("payload"), request.at("payload")));
  } else {
    check(w->sink.pubs.empty());
    check(w->stats.published_rest.get() == published_before);
    const auto& o = answer.as_object();
    check(o.size() == 1);
    const auto& e = o.at("error").as_object();
    check(e.size() == 2 && !e.at("message").as_string().empty());
    const auto code = code_named(e.at("code").as_string());
    check(code.has_value());
    check(reply.status == protocol::http_status(*code));
    // A well-formed key was given, so the answer is about the body.
    check(*code == protocol::error_code::invalid_argument);
  }
  return 0;
}
