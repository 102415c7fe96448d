#pragma once
// The per-thread fan-out shard: channel -> local subscribers, and delivery with per-subscription seq.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/channel_filter.hpp"
#include "core/message.hpp"
#include "core/subscriber.hpp"

namespace bc::core {

// Told when a channel gains its first or loses its last local subscriber on one hub, so that a broker can
// subscribe a node only to channels somebody listens to. Called on the hub's thread.
class interest_listener {
 public:
  virtual ~interest_listener() = default;
  virtual void on_channel_active(std::string_view channel) = 0;
  virtual void on_channel_idle(std::string_view channel) = 0;
};

class hub;

// One subscriber's membership in one channel. Owned by the subscriber side (it must outlive nothing: the
// destructor unsubscribes), address-stable, and used only on its hub's thread.
class subscription {
 public:
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription();

  std::uint64_t id() const { return id_; }
  const std::string& channel() const;
  // Not yet live: what is published meanwhile is held back until hub::go_live.
  bool buffering() const { return buffering_; }
  // Receives the channel's join/leave events (set at subscribe).
  bool join_leave() const { return join_leave_; }
  // Recorded in the channel's presence: kept by the engine, so that only such a subscription's end is told.
  bool in_presence() const { return in_presence_; }
  void set_in_presence(bool v) { in_presence_ = v; }

 private:
  friend class hub;
  subscription(hub& h, void* channel, std::uint64_t id) : hub_(h), channel_(channel), id_(id) {}
  hub& hub_;
  void* channel_;            // hub::channel_entry, opaque outside the hub
  std::uint32_t index_ = 0;  // position in the channel's slot vector, kept current by the hub
  std::uint64_t id_;
  bool buffering_ = false;
  bool join_leave_ = false;
  bool in_presence_ = false;
  std::vector<publication_ptr> held_;  // while buffering
  // After go_live, until a message past it arrives: the position the subscription started from. Messages
  // at or before it may still be on their way through this thread's inbox (queued before the position was
  // read, drained after go_live) and are dropped (hub::past_start).
  std::uint64_t start_offset_ = 0;
  std::string start_epoch_;
};

// Owns one thread's channel index. Not thread-safe by design: everything happens on the owning thread, and
// other threads reach it only by posting to that thread (see app/shard). No locks, no atomics on the
// delivery path.
class hub {
 public:
  explicit hub(std::uint32_t shard_index, interest_listener* listener = nullptr);
  ~hub();
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;

  std::uint32_t shard_index() const { return shard_index_; }

  // Adds `s` to `channel`; the returned subscription removes itself when destroyed. Its seq starts at 0, so
  // the first delivered message carries seq 1. A `buffered` subscription holds back what is published to it
  // until go_live(): the channel's position is read, and a replay from history fetched, in between. A
  // `join_leave` subscription also receives the channel's presence events.
  std::unique_ptr<subscription> subscribe(std::string_view channel, subscriber& s, bool buffered = false,
                                          bool join_leave = false);

  // The hand-over from history to the live stream, without a duplicate or a hole: delivers `replay` (the
  // messages after the client's position up to `offset`, in order), then what was held back, except what
  // the replay or the position already covers (offsets up to `offset` in `epoch`: published before the
  // position was read). From then on the subscription is live.
  void go_live(subscription& sub, const std::vector<publication_ptr>& replay, std::string_view epoch,
               std::uint64_t offset);

  // Hands `pub` to every local subscriber of its channel, incrementing each subscription's seq first, so a
  // message a subscriber drops still consumes its number. A gap marker (pub->skipped) advances every seq by
  // the number of messages it stands for. A presence event (pub->presence_event) goes only to the
  // subscriptions that asked for join/leave, with seq 0 and no seq consumed: nothing at all when none of the
  // channel's did. Returns the number of subscribers reached.
  std::size_t deliver(const publication_ptr& pub);
  std::size_t channel_count() const { return channels_.size(); }
  std::size_t subscription_count() const { return subscriptions_; }
  std::size_t subscriber_count(std::string_view channel) const;

  // The one member other threads may call: whether this hub may hold `channel` (hash from
  // channel_filter::hash). False means it certainly held none when asked, so a publisher need not wake it.
  bool may_have(std::uint64_t channel_hash) const { return filter_.may_contain(channel_hash); }

 private:
  friend class subscription;
  struct slot {
    subscriber* target;
    std::uint64_t seq;
    subscription* owner;
    bool buffering;  // a copy of owner->buffering_, read where the slot is already in cache
    bool join_leave;
    bool trailing;  // live, but messages up to owner->start_offset_ may still arrive: drop them
  };
  struct channel_entry {
    std::string name;
    std::uint64_t hash;
    std::vector<slot> slots;
    std::uint32_t join_leave = 0;  // slots that receive presence events
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  void remove(subscription& s);
  // For a trailing slot: false when `pub` is at or before the subscription's start (and for a gap marker
  // straddling it, advances seq by the part after it). Clears `trailing` once past the start.
  static bool past_start(slot& s, const publication& pub);

  std::uint32_t shard_index_;
  interest_listener* listener_;
  std::uint64_t next_id_ = 0;
  std::size_t subscriptions_ = 0;
  // unique_ptr keeps each entry's address stable across rehashing: subscriptions point at it.
  std::unordered_map<std::string, std::unique_ptr<channel_entry>, string_hash, std::equal_to<>> channels_;
  channel_filter filter_;
};

}  // namespace bc::core
