#include "engine/node.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "core/channel_filter.hpp"
#include "core/message_id.hpp"

namespace bc::engine {

namespace {
bool any_presence(const core::channel_rules& rules) {
  if (rules.defaults().presence) return true;
  for (const auto& r : rules.rules()) {
    if (r.presence.value_or(false)) return true;
  }
  return false;
}
}  // namespace

node::node(publication_encoder encode, core::channel_rules rules)
    : encode_(std::move(encode)), rules_(std::move(rules)), any_presence_(any_presence(rules_)) {
  if (!encode_) throw std::invalid_argument("the engine needs a publication encoder");
}

void node::attach(broker::broker& b) {
  broker_ = &b;
  interest_.attach(b);
}

void node::add_thread(local_thread& t) {
  threads_.push_back(&t);
}

void node::stamp(core::message& msg) {
  thread_local core::message_id_generator ids;
  msg.create_time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  msg.id = ids.next(msg.create_time_ms);
}

void node::publish(core::message msg, std::function<void(broker::publish_status)> done) {
  broker_->publish(std::move(msg), std::move(done));
}

// The inboxes are bounded in bytes (--inbox-limit): a thread that falls behind its hand-overs must not let
// publishers grow memory without limit. A local publish is refused as a whole (no thread gets it) when any
// thread it is for is full; a message from the broker cannot be refused, so the broker's thread waits for
// room, which holds back what Redis sends this node (Redis buffers it, up to its own output limit for
// subscribers), and queues it anyway after max_inbox_wait, counted, rather than lose it.
void node::deliver(core::message msg) {
  constexpr auto max_inbox_wait = std::chrono::seconds(1);
  const auto hash = core::channel_filter::hash(msg.channel);
  const auto deadline = std::chrono::steady_clock::now() + max_inbox_wait;
  for (auto* t : threads_) {
    if (!t->may_have(hash)) continue;
    while (t->inbox_full() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (t->inbox_full()) t->count_overflow();
  }
  // Encoded once for the whole node, and only when some thread may have a subscriber.
  if (wanted(hash)) push(encode_(std::move(msg)), hash);
}

bool node::try_deliver(core::message msg) {
  const auto hash = core::channel_filter::hash(msg.channel);
  for (auto* t : threads_) {
    if (t->may_have(hash) && t->inbox_full()) {
      t->count_refused();
      return false;
    }
  }
  if (wanted(hash)) push(encode_(std::move(msg)), hash);
  return true;
}

void node::deliver_gap(std::string channel, std::uint64_t last_offset, std::uint64_t count) {
  const auto hash = core::channel_filter::hash(channel);
  if (count == 0 || !wanted(hash)) return;
  auto marker = std::make_shared<core::publication>();
  marker->channel = std::move(channel);
  marker->offset = last_offset;
  marker->skipped = count;
  // No epoch: a gap is reported by the broker that tracks the channel's current one.
  push(marker, hash);
}

// Like a publication, but never waited for nor refused: a join/leave under overload is queued over the limit
// rather than hold up the connection that joined. Encoded only when some thread may hold the channel; the
// hubs then hand it only to the subscriptions that asked for join/leave.
void node::deliver_presence_event(core::message event) {
  const auto hash = core::channel_filter::hash(event.channel);
  if (wanted(hash)) push(encode_(std::move(event)), hash);
}

void node::deliver_control(broker::control_message msg) {
  for (auto* t : threads_) t->control(msg);
}

bool node::wanted(std::uint64_t hash) const {
  for (auto* t : threads_) {
    if (t->may_have(hash)) return true;
  }
  return false;
}

void node::push(const core::publication_ptr& pub, std::uint64_t hash) {
  // Wake only the threads that may hold subscribers of the channel: with small channels (one user's
  // notifications) that is one thread, not all of them.
  for (auto* t : threads_) {
    if (t->may_have(hash)) t->push(pub);
  }
}

}  // namespace bc::engine
