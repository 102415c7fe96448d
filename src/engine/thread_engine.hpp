#pragma once
// The engine as the sessions of one worker thread use it: publish through the node, subscribe on this
// thread's hub. Every way a subscription starts and ends goes through here, so that what must happen then
// (the broker's interest, recovery's replay, later presence's join/leave) happens in one place.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/hub.hpp"
#include "core/subscriber.hpp"
#include "engine/node.hpp"

namespace bc::engine {

// What a subscription starts from (PROTOCOL "(ext) Channel positions, history and recovery").
struct subscribe_answer {
  // `unavailable`: the broker could not say where the channel stands (Redis down): the subscription goes live
  // without a position (and without recovery); messages flow once the broker is back.
  broker::publish_status status = broker::publish_status::ok;
  broker::stream_position top;  // the channel's position when the subscription started
  // With a `since`: whether every message after it is in `replay` (nothing is replayed otherwise).
  std::optional<bool> recovered;
  std::vector<core::publication_ptr> replay;  // offsets since+1 … top.offset, in order
};

// A connection as the server API reaches it (PROTOCOL "(ext) Server API"), on its thread.
class user_connection {
 public:
  virtual ~user_connection() = default;
  // Close the connection with 4003.
  virtual void disconnect_by_server() = 0;
  // End the subscription to `channel`, if any, and tell the client.
  virtual void unsubscribe_by_server(std::string_view channel) = 0;

 private:
  friend class thread_engine;
  std::size_t user_slot_ = 0;  // its place among its user's connections on the thread (thread_engine::users_)
};

// Used only on its thread (publish() may be called from any).
class thread_engine {
 public:
  thread_engine(node& n, core::hub& h) : node_(n), hub_(h) {}

  // See node::stamp and node::publish.
  static void stamp(core::message& msg) { node::stamp(msg); }
  void publish(core::message msg, std::function<void(broker::publish_status)> done) {
    node_.publish(std::move(msg), std::move(done));
  }

  using ready_callback = std::function<void(std::uint64_t id, subscribe_answer)>;

  // Subscribes `s` to `channel` on this thread's hub.
  //
  // Without `when_ready` the subscription is live at once and has no position (a notification without
  // `since`: nobody reads the answer). With it, the subscription holds back what is published to it while:
  // the broker confirms this node's subscription (messages published anywhere from then on reach it), then
  // the channel's position is read and, for `since`, the missed messages are fetched from history. Then
  // `when_ready(id, answer)` runs, on any thread; the caller, back on this thread, answers the client and
  // calls go_live() (or unsubscribes). Reading the position after the broker's confirmation is what makes
  // the hand-over exact: every message after the position reaches the held-back queue, and hub::go_live drops
  // those the position already covers.
  //
  // Presence: `member` is the connection as presence shows it; without `when_ready` the subscription enters
  // the channel's presence at once (else the caller calls enter_presence when it answers). `join_leave`:
  // it also receives the channel's join/leave events (the caller checked join_leave_enabled).
  std::unique_ptr<core::subscription> subscribe(std::string_view channel, core::subscriber& s,
                                                std::optional<broker::stream_position> since,
                                                ready_callback when_ready,
                                                const core::presence_member* member = nullptr,
                                                bool join_leave = false);

  // Delivers the answer's replay, then the held-back messages after the position; the subscription is live.
  void go_live(core::subscription& sub, const subscribe_answer& answer) {
    hub_.go_live(sub, answer.replay, answer.top.epoch, answer.top.offset);
  }
  // Records the subscription in its channel's presence as `member` (announcing a join where join/leave is
  // on), if the channel keeps presence; nothing otherwise. Called just before the client is told it is
  // subscribed, so that once it knows, presence shows it.
  void enter_presence(core::subscription& sub, const core::presence_member* member);

  bool presence_enabled(std::string_view channel) const { return node_.presence_enabled(channel); }
  bool join_leave_enabled(std::string_view channel) const { return node_.join_leave_enabled(channel); }
  std::string new_client_id() { return node_.new_client_id(); }
  // The channel's members, at most `max` (answers on any thread).
  void presence(std::string channel, std::size_t max, std::function<void(broker::presence_result)> done) {
    node_.presence(std::move(channel), max, std::move(done));
  }
  void presence_stats(std::string channel, std::function<void(broker::presence_stats_result)> done) {
    node_.presence_stats(std::move(channel), std::move(done));
  }

  // The server API's reach on this thread: connections register under their user once authenticated, and
  // leave before they are destroyed.
  void add_user(const std::string& user, user_connection& c);
  void remove_user(const std::string& user, user_connection& c);
  // A control message from the broker (node::deliver_control), run on this thread.
  void on_control(const broker::control_message& msg);

  // The channel's position and history, for the `history` method (the answer comes on any thread).
  void history(broker::history_request req, std::function<void(broker::history_result)> done) {
    node_.history(std::move(req), std::move(done));
  }
  // The most messages a `history` call or a recovery may return for `channel`: its history size.
  std::size_t history_limit(std::string_view channel) const {
    return node_.rules().for_channel(channel).history_size;
  }

  // The one way out of a subscription: unsubscribe, a token refresh that no longer allows the channel, the
  // connection closing, the server API. Nothing is delivered to it afterwards; it leaves presence (announced
  // as a leave where join/leave is on) if it was there, as `member`.
  void unsubscribe(std::unique_ptr<core::subscription> sub, const core::presence_member* member = nullptr);

  core::hub& hub() { return hub_; }

 private:
  node& node_;
  core::hub& hub_;
  // Per user, its connections on this thread; each knows its slot, so that leaving is O(1) however many
  // connections share one `sub` (a multimap's removal walked them all: with thousands of connections of one
  // anonymous user, a disconnect storm was quadratic).
  std::unordered_map<std::string, std::vector<user_connection*>> users_;
};

}  // namespace bc::engine
