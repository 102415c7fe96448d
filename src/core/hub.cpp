#include "core/hub.hpp"

#include <cassert>

namespace bc::core {

subscription::~subscription() {
  hub_.remove(*this);
}

const std::string& subscription::channel() const {
  return static_cast<hub::channel_entry*>(channel_)->name;
}

hub::hub(std::uint32_t shard_index, interest_listener* listener)
    : shard_index_(shard_index), listener_(listener) {}

hub::~hub() {
  assert(subscriptions_ == 0 && "subscriptions must not outlive their hub");
}

std::unique_ptr<subscription> hub::subscribe(std::string_view channel, subscriber& s, bool buffered,
                                             bool join_leave) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) {
    auto entry = std::make_unique<channel_entry>();
    entry->name = std::string(channel);
    entry->hash = channel_filter::hash(channel);
    filter_.add(entry->hash);
    it = channels_.emplace(entry->name, std::move(entry)).first;
    if (listener_) listener_->on_channel_active(channel);
  }
  channel_entry& entry = *it->second;
  // Ids are unique per node: the shard index in the top bits, a per-shard counter below.
  const std::uint64_t id = (static_cast<std::uint64_t>(shard_index_) << 40) | ++next_id_;
  std::unique_ptr<subscription> sub(new subscription(*this, &entry, id));
  sub->index_ = static_cast<std::uint32_t>(entry.slots.size());
  sub->buffering_ = buffered;
  sub->join_leave_ = join_leave;
  entry.slots.push_back(slot{&s, 0, sub.get(), buffered, join_leave, false});
  if (join_leave) ++entry.join_leave;
  ++subscriptions_;
  return sub;
}

void hub::remove(subscription& s) {
  auto& entry = *static_cast<channel_entry*>(s.channel_);
  assert(s.index_ < entry.slots.size() && entry.slots[s.index_].owner == &s);
  if (s.join_leave_) --entry.join_leave;
  // Swap-remove: order among subscribers carries no meaning, and this keeps removal O(1).
  if (s.index_ + 1 != entry.slots.size()) {
    entry.slots[s.index_] = entry.slots.back();
    entry.slots[s.index_].owner->index_ = s.index_;
  }
  entry.slots.pop_back();
  --subscriptions_;
  if (entry.slots.empty()) {
    filter_.remove(entry.hash);
    const std::string name = std::move(entry.name);
    channels_.erase(name);
    if (listener_) listener_->on_channel_idle(name);
  }
}

std::size_t hub::deliver(const publication_ptr& pub) {
  auto it = channels_.find(std::string_view(pub->channel));
  if (it == channels_.end()) return 0;
  auto& slots = it->second->slots;
  // Subscribers may not unsubscribe from inside deliver() (see subscriber), so the vector is stable here.
  if (pub->presence_event) {
    if (it->second->join_leave == 0) return 0;
    std::size_t reached = 0;
    for (slot& s : slots) {
      if (!s.join_leave) continue;
      if (s.buffering) {
        s.owner->held_.push_back(pub);
      } else {
        s.target->deliver(pub, 0);
        ++reached;
      }
    }
    return reached;
  }
  if (pub->skipped != 0) {
    for (slot& s : slots) {
      if (s.buffering) {
        s.owner->held_.push_back(pub);
      } else if (!s.trailing || past_start(s, *pub)) {
        s.seq += pub->skipped;
      }
    }
    return 0;
  }
  for (slot& s : slots) {
    if (s.buffering) {
      s.owner->held_.push_back(pub);
    } else if (!s.trailing || past_start(s, *pub)) {
      s.target->deliver(pub, ++s.seq);
    }
  }
  return slots.size();
}

bool hub::past_start(slot& s, const publication& pub) {
  if (pub.offset == 0) return true;  // no position (a peer too old to send one): deliver
  const subscription& o = *s.owner;
  // A gap marker carries no epoch: its broker reports it in the channel's current one.
  if (!pub.epoch.empty() && pub.epoch != o.start_epoch_) {
    s.trailing = false;  // a new epoch began: everything in it is new to this subscription
    return true;
  }
  if (pub.offset <= o.start_offset_) return false;  // the replay (or the client's start) covers it
  s.trailing = false;  // offsets reach a thread in order: nothing at or before the start follows
  if (pub.skipped != 0 && pub.offset - pub.skipped < o.start_offset_) {
    s.seq += pub.offset - o.start_offset_;  // only the part after the start is a loss for this subscription
    return false;
  }
  return true;
}

void hub::go_live(subscription& sub, const std::vector<publication_ptr>& replay, std::string_view epoch,
                  std::uint64_t offset) {
  auto& entry = *static_cast<channel_entry*>(sub.channel_);
  assert(sub.index_ < entry.slots.size() && entry.slots[sub.index_].owner == &sub);
  slot& s = entry.slots[sub.index_];
  for (const auto& pub : replay) s.target->deliver(pub, ++s.seq);
  auto held = std::move(sub.held_);
  sub.held_.clear();
  sub.buffering_ = false;
  s.buffering = false;
  // Messages up to the position are the replay's (or before the client's start), whether they were held
  // back or are still queued for this thread: from here on they are dropped until one past it arrives.
  sub.start_offset_ = offset;
  sub.start_epoch_ = std::string(epoch);
  s.trailing = offset != 0;
  for (const auto& pub : held) {
    if (pub->presence_event) {
      s.target->deliver(pub, 0);  // no seq: not part of the channel's stream
    } else if (s.trailing && !past_start(s, *pub)) {
      continue;
    } else if (pub->skipped != 0) {
      s.seq += pub->skipped;
    } else {
      s.target->deliver(pub, ++s.seq);
    }
  }
}

std::size_t hub::subscriber_count(std::string_view channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? 0 : it->second->slots.size();
}

}  // namespace bc::core
