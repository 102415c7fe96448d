#pragma once
// The one publish path shared by WebSocket clients and the REST API: validate, build the message from the
// publisher's own bytes, have the engine stamp it and hand it to the broker.

#include <boost/json/object.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "broker/broker.hpp"
#include "engine/node.hpp"
#include "protocol/error_code.hpp"

namespace bc::protocol {

struct publish_outcome {
  bool ok = false;
  error_code code = error_code::internal;
  std::string body;  // ok: the result object {"id","createTime"}; else the error message
  // The REST status when it is not the code's usual one: a node too busy to queue the message answers
  // ResourceExhausted with 503, the status HTTP clients and proxies retry on.
  unsigned http_status = 0;
};

// Thread-safe: holds no per-call state.
class publisher {
 public:
  explicit publisher(engine::node& n) : node_(n) {}

  // Checks `params` ({"channel","event","payload"}) for shape and validity; on success returns nullopt and
  // leaves the channel in `channel`.
  static std::optional<publish_outcome> validate(const boost::json::object& params, std::string& channel);

  // Publishes a validated request. `payload_json` is the source text of params.payload (raw_json::find_member
  // on the document `params` came from): subscribers receive exactly these bytes, not a re-serialisation of
  // the DOM. `done` runs exactly once, on any thread. Returns false when the message was refused before
  // reaching the broker (done has then run already, with the error).
  bool publish(const boost::json::object& params, std::string_view payload_json,
               std::function<void(publish_outcome)> done);

 private:
  engine::node& node_;
};

}  // namespace bc::protocol
