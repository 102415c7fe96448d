#include "engine/thread_engine.hpp"

namespace bc::engine {

std::unique_ptr<core::subscription> thread_engine::subscribe(std::string_view channel, core::subscriber& s,
                                                             std::optional<broker::stream_position> since,
                                                             ready_callback when_ready,
                                                             const core::presence_member* member,
                                                             bool join_leave) {
  // The hub tells the node's channel interest (and so the broker) when this is the node's first subscriber of
  // the channel; await_subscribed must come after that, from the same thread.
  auto sub = hub_.subscribe(channel, s, /*buffered=*/static_cast<bool>(when_ready), join_leave);
  if (!when_ready) {
    enter_presence(*sub, member);
    return sub;
  }
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
      if (asked) a.recovered = false;
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

namespace bc::engine {

// A subscription is a member from when it is live: a client that sees itself in presence (or another sees
// its join) receives the channel's messages from then on. Nothing at all for channels without presence.
void thread_engine::enter_presence(core::subscription& sub, const core::presence_member* member) {
  if (member == nullptr || sub.in_presence() || !node_.presence_enabled(sub.channel())) return;
  sub.set_in_presence(true);
  node_.broker().add_presence(sub.channel(), *member, node_.join_leave_enabled(sub.channel()));
}

void thread_engine::unsubscribe(std::unique_ptr<core::subscription> sub,
                                const core::presence_member* member) {
  if (member != nullptr && sub->in_presence()) {
    // Out of the hub first: the subscription does not receive its own leave.
    std::string channel = sub->channel();
    sub.reset();
    const bool announce = node_.join_leave_enabled(channel);
    node_.broker().remove_presence(std::move(channel), *member, announce);
    return;
  }
  sub.reset();
}

void thread_engine::add_user(const std::string& user, user_connection& c) {
  auto& conns = users_[user];
  c.user_slot_ = conns.size();
  conns.push_back(&c);
}

void thread_engine::remove_user(const std::string& user, user_connection& c) {
  const auto it = users_.find(user);
  if (it == users_.end()) return;
  auto& conns = it->second;
  const std::size_t slot = c.user_slot_;
  if (slot >= conns.size() || conns[slot] != &c) return;  // not registered under this user
  conns[slot] = conns.back();
  conns[slot]->user_slot_ = slot;
  conns.pop_back();
  if (conns.empty()) users_.erase(it);
}

void thread_engine::on_control(const broker::control_message& msg) {
  // A snapshot: acting on a connection may change the index (not today, but a close could).
  const auto it = users_.find(msg.user);
  if (it == users_.end()) return;
  const std::vector<user_connection*> targets = it->second;
  for (auto* c : targets) {
    if (msg.what == broker::control_message::kind::disconnect_user) {
      c->disconnect_by_server();
    } else {
      c->unsubscribe_by_server(msg.channel);
    }
  }
}

}  // namespace bc::engine
