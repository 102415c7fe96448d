#include "engine/thread_engine.hpp"

namespace bc::engine {

thread_engine::subscribed thread_engine::subscribe(std::string_view channel, core::subscriber& s,
                                                   std::function<void(std::uint64_t id)> when_live) {
  subscribed out;
  // The hub tells the node's channel interest (and so the broker) when this is the node's first subscriber of
  // the channel; await_subscribed must come after that, from the same thread.
  out.subscription = hub_.subscribe(channel, s);
  if (when_live) {
    out.live = node_.broker().await_subscribed(
        channel, [when_live = std::move(when_live), id = out.subscription->id()] { when_live(id); });
  }
  return out;
}

}  // namespace bc::engine
