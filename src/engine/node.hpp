#pragma once
// The node: the one path every publication takes between the protocol and the worker threads' hubs.
//
//   protocol (publisher, client_session)          the engine knows no JSON and no sockets:
//        | stamp(), publish()                       the encoder is injected
//        v
//   broker (memory | redis): orders the message  <- the channel's single ordering point
//        | delivery_sink::deliver / try_deliver
//        v
//   node: encodes once per node, routes to the threads whose hubs may hold the channel
//        | local_thread::push (bounded inbox)
//        v
//   hub (per thread): seq per subscription, fan-out
//
// Both brokers hand the node the message *after* ordering it, so the wire form is built exactly once per node
// and per-channel positions (offsets, epochs) can later be stamped at that point. Subscriptions go through a
// thread_engine (one per worker thread), which holds that thread's hub.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "core/channel_rules.hpp"
#include "core/message.hpp"
#include "engine/channel_interest.hpp"
#include "engine/local_thread.hpp"

namespace bc::engine {

// Builds a message's shared wire pieces (protocol::encode_publication).
using publication_encoder = std::function<core::publication_ptr(core::message)>;

// Thread-safety: attach() and add_thread() before start; everything else from any thread.
class node final : public broker::delivery_sink {
 public:
  explicit node(publication_encoder encode, core::channel_rules rules = {});

  void attach(broker::broker& b);
  void add_thread(local_thread& t);

  // Gives `msg` its node-independent identity: a UUIDv7 id (unique across nodes, time-ordered) and the create
  // time. The publisher's answer is built from them, before the broker has ordered the message.
  static void stamp(core::message& msg);
  // Hands a stamped message to the broker. `done` is called exactly once, on any thread, possibly inside.
  void publish(core::message msg, std::function<void(broker::publish_status)> done);

  // The channel's position and history (see broker::history).
  void history(broker::history_request req, std::function<void(broker::history_result)> done) {
    broker_->history(std::move(req), std::move(done));
  }
  // A message's wire form, as deliveries carry it (for replays out of history).
  core::publication_ptr encode(core::message msg) const { return encode_(std::move(msg)); }
  const core::channel_rules& rules() const { return rules_; }

  // Presence (PROTOCOL "(ext) Presence"). Whether `channel` keeps presence; false at once, without a rule
  // walk, when no channel does.
  bool presence_enabled(std::string_view channel) const {
    return any_presence_ && rules_.for_channel(channel).presence;
  }
  // Whether join/leave may be asked for on `channel` (presence on, and no rule switching join_leave off).
  bool join_leave_enabled(std::string_view channel) const {
    if (!any_presence_) return false;
    const auto o = rules_.for_channel(channel);
    return o.presence && o.join_leave;
  }
  // The node's id (set once, before start), the prefix of every client id it hands out.
  void set_id(std::string id) { id_ = std::move(id); }
  // A connection's id for presence, unique across nodes: the node's id and a counter.
  std::string new_client_id() {
    return id_ + "-" + std::to_string(next_client_.fetch_add(1, std::memory_order_relaxed) + 1);
  }
  void presence(std::string channel, std::size_t max, std::function<void(broker::presence_result)> done) {
    broker_->presence(std::move(channel), max, std::move(done));
  }
  void presence_stats(std::string channel, std::function<void(broker::presence_stats_result)> done) {
    broker_->presence_stats(std::move(channel), std::move(done));
  }
  // The server API: through the broker to every node (deliver_control).
  void control(broker::control_message msg, std::function<void(broker::publish_status)> done) {
    broker_->control(std::move(msg), std::move(done));
  }

  broker::broker& broker() { return *broker_; }
  // What the hubs tell when a channel gains its first or loses its last subscriber on their thread.
  core::interest_listener& interest_listener() { return interest_; }
  const channel_interest& interest() const { return interest_; }

  // broker::delivery_sink
  void deliver(core::message msg) override;
  bool try_deliver(core::message msg) override;
  void deliver_gap(std::string channel, std::uint64_t last_offset, std::uint64_t count) override;
  void deliver_presence_event(core::message event) override;
  void deliver_control(broker::control_message msg) override;

 private:
  bool wanted(std::uint64_t hash) const;
  void push(const core::publication_ptr& pub, std::uint64_t hash);

  publication_encoder encode_;
  const core::channel_rules rules_;
  const bool any_presence_;
  std::string id_ = "node";
  std::atomic<std::uint64_t> next_client_{0};
  broker::broker* broker_ = nullptr;
  channel_interest interest_;
  std::vector<local_thread*> threads_;
};

}  // namespace bc::engine
