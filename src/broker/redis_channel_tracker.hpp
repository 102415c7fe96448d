#pragma once
// No silent loss between nodes: the Redis broker's per-channel position tracking on the receiving side.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker.hpp"
#include "core/local_counter.hpp"
#include "core/message.hpp"

namespace bc::broker {

// For every channel with local interest on one shard, the (epoch, offset) of the last message handed to the
// sink. Messages arrive from the subscribe connection in offset order unless something was lost on the way
// (the connection dropped, Redis restarted). A message whose offset is not last+1 in the same epoch (or the
// first of a new epoch, counted from 0) is a jump: it and every later message of that channel are held while
// the missing range is read from the channel's stream (`fetch`), then delivered in order; what the stream no
// longer has (history off, trimmed, expired, another epoch by now) becomes one sink.deliver_gap() at its
// place in the order. Offsets at or below the last one of the same epoch are duplicates and dropped. The
// first message of a newly tracked channel starts tracking (there is nothing to compare it with).
//
// After the subscribe connection was lost and is back, check_all() reads every tracked channel's position
// (one pipelined read each) and fetches, or reports as a gap, what was published meanwhile: a loss is seen
// even when no later message reveals it. Messages arriving during such a check are held the same way.
//
// Messages without a position (version-1 envelopes from older nodes) and for channels not tracked are
// delivered as they come.
//
// Thread-safety: none; everything runs on the broker thread. `fetch` must answer later (never inside the
// call), exactly once, on the same thread; the tracker must outlive every pending fetch.
class redis_channel_tracker {
 public:
  struct range {
    bool ok = false;                      // false: Redis did not answer (connection lost, error)
    std::string epoch;                    // the channel's epoch when read
    std::uint64_t top = 0;                // the channel's last offset when read
    std::vector<core::message> messages;  // from the stream, oldest first
  };
  using range_done = std::function<void(range)>;
  // Reads up to `count` entries of `channel`'s stream from offset `first` on, when `epoch` is still the
  // channel's; with `any_epoch`, from offset 1 of the current epoch when it is not.
  using fetch_fn =
      std::function<void(const std::string& channel, const std::string& epoch, std::uint64_t first,
                         std::uint64_t count, bool any_epoch, range_done done)>;

  static constexpr std::uint64_t max_fetch = 1000;  // entries per read; longer ranges take several

  redis_channel_tracker(delivery_sink& sink, fetch_fn fetch, std::string name);

  void track(const std::string& channel);
  void untrack(const std::string& channel);
  void on_message(core::message msg);
  void check_all();
  // Redis Cluster, a channel moving between shards: its last delivered position (false when it has none
  // yet), tracking it from a known position, and checking one channel's position as check_all() does.
  bool position(const std::string& channel, std::string& epoch, std::uint64_t& last) const;
  void track_from(const std::string& channel, const std::string& epoch, std::uint64_t last);
  void check(const std::string& channel);

  // No message is held: everything that arrived has reached the sink (or was dropped as a duplicate).
  bool idle() const { return held_ == 0; }
  // Called whenever the tracker becomes idle again.
  void on_idle(std::function<void()> f) { on_idle_ = std::move(f); }

  std::uint64_t gaps() const { return gaps_.get(); }
  std::uint64_t skipped() const { return skipped_.get(); }
  std::uint64_t repaired() const { return repaired_.get(); }
  std::uint64_t duplicates() const { return duplicates_.get(); }

 private:
  struct channel_state {
    std::uint64_t generation = 0;  // tells a fetch answer for an earlier tracking of the channel apart
    bool started = false;
    std::string epoch;
    std::uint64_t last = 0;  // in `epoch`
    bool busy = false;       // a fetch is in flight; messages wait in `held`
    bool checking = false;   // that fetch is a position check (its target is the position it reads)
    bool check_pending = false;
    std::uint64_t want = 0;   // deliver up to this offset (not checking)
    std::uint64_t asked = 0;  // entries asked for
    std::deque<core::message> held;
  };

  void process(const std::string& channel, channel_state& st, core::message msg);
  void start_fetch(const std::string& channel, channel_state& st, bool check);
  void on_range(const std::string& channel, std::uint64_t generation, range r);
  void drain(const std::string& channel, channel_state& st);
  void gap(const std::string& channel, channel_state& st, std::uint64_t upto);
  void deliver(core::message msg);
  void warn_later(const std::string& channel);

  delivery_sink& sink_;
  fetch_fn fetch_;
  std::string name_;  // for logs: "redis shard 0"
  std::unordered_map<std::string, channel_state> channels_;
  std::uint64_t generations_ = 0;
  std::size_t held_ = 0;
  std::function<void()> on_idle_;
  std::chrono::steady_clock::time_point last_warn_{};
  std::uint64_t unlogged_gaps_ = 0, unlogged_skipped_ = 0, unlogged_repaired_ = 0;

  core::local_counter gaps_;        // gaps reported to the sink
  core::local_counter skipped_;     // messages in them
  core::local_counter repaired_;    // messages delivered from the stream after a jump
  core::local_counter duplicates_;  // messages dropped as already delivered
};

}  // namespace bc::broker
