#pragma once
// The engine as the sessions of one worker thread use it: publish through the node, subscribe on this
// thread's hub. Every way a subscription starts and ends goes through here, so that what must happen then
// (the broker's interest, later presence's join/leave and recovery's replay) happens in one place.

#include <functional>
#include <memory>
#include <string_view>

#include "core/hub.hpp"
#include "core/subscriber.hpp"
#include "engine/node.hpp"

namespace bc::engine {

// Used only on its thread (publish() may be called from any).
class thread_engine {
 public:
  thread_engine(node& n, core::hub& h) : node_(n), hub_(h) {}

  // See node::stamp and node::publish.
  static void stamp(core::message& msg) { node::stamp(msg); }
  void publish(core::message msg, std::function<void(broker::publish_status)> done) {
    node_.publish(std::move(msg), std::move(done));
  }

  struct subscribed {
    std::unique_ptr<core::subscription> subscription;
    // Messages published anywhere from now on reach the subscription. When false (the Redis broker has not
    // confirmed this node's subscription yet), `when_live(id)` is called later, on any thread, once they do
    // or once waiting longer cannot help (connection lost, timeout).
    bool live = true;
  };
  // Subscribes `s` to `channel` on this thread's hub. An empty `when_live` asks for no wait (live is true).
  subscribed subscribe(std::string_view channel, core::subscriber& s,
                       std::function<void(std::uint64_t id)> when_live);

  // The one way out of a subscription: unsubscribe, a token refresh that no longer allows the channel, the
  // connection closing. Nothing is delivered to it afterwards.
  void unsubscribe(std::unique_ptr<core::subscription> sub) { sub.reset(); }

  core::hub& hub() { return hub_; }

 private:
  node& node_;
  core::hub& hub_;
};

}  // namespace bc::engine
