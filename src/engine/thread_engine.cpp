#include "engine/thread_engine.hpp"

namespace bc::engine {

std::unique_ptr<core::subscription> thread_engine::subscribe(std::string_view channel, core::subscriber& s,
                                                             std::optional<broker::stream_position> since,
                                                             ready_callback when_ready) {
  // The hub tells the node's channel interest (and so the broker) when this is the node's first subscriber of
  // the channel; await_subscribed must come after that, from the same thread.
  auto sub = hub_.subscribe(channel, s, /*buffered=*/static_cast<bool>(when_ready));
  if (!when_ready) return sub;
  broker::history_request req;
  req.channel = std::string(channel);
  if (since) req.limit = history_limit(channel);
  req.since = std::move(since);
  auto read_position = [&n = node_, req = std::move(req), when_ready = std::move(when_ready),
                        id = sub->id()] {
    const bool asked = req.since.has_value();
    n.history(req, [&n, asked, when_ready, id](broker::history_result r) {
      subscribe_answer a;
      a.status = r.status;
      a.top = std::move(r.top);
      if (asked && r.status == broker::publish_status::ok) {
        a.recovered = r.complete;
        // Only a complete replay: a partial one would leave a hole the client's seq could not show.
        if (r.complete) {
          a.replay.reserve(r.messages.size());
          for (auto& m : r.messages) a.replay.push_back(n.encode(std::move(m)));
        }
      }
      when_ready(id, std::move(a));
    });
  };
  if (node_.broker().await_subscribed(channel, read_position)) read_position();
  return sub;
}

}  // namespace bc::engine
