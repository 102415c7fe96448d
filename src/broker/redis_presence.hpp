#pragma once
// One shard's side of presence in Redis: this node's members of the shard's channels, kept in Redis with an
// expiry the node keeps refreshing (docs/redis.md "Presence").

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/broker.hpp"
#include "core/local_counter.hpp"
#include "core/presence_set.hpp"

struct redisReply;

namespace bc::broker {

// What the presence scripts need to know of one channel: its keys, its Pub/Sub channel, and the headers its
// join and leave envelopes start with (empty: the channel announces none). Built once per channel on the
// caller's thread.
struct presence_target {
  std::string channel;
  std::string expiry_key;
  std::string members_key;
  std::string users_key;
  std::string redis_channel;
  std::string join_header;
  std::string leave_header;
  // channel_options::join_leave_limit as the scripts take it: a join or leave is published only while the
  // channel has at most this many members, counting the one joining or leaving ("0": no limit).
  std::string join_leave_limit = "0";
};
presence_target make_presence_target(std::string_view prefix, std::string_view channel, bool announce,
                                     std::size_t join_leave_limit = 0);

// Every member of this node is kept twice: here (so that it can be refreshed and, after Redis lost it or
// this node lost Redis, published again) and in Redis, where it expires `ttl` after its last refresh unless
// the node refreshes it; a node that dies therefore leaves presence within `ttl`, and the first presence
// script to run after that (any node's read, add or refresh) removes it and announces its leave.
//
// Refreshing: every ttl/3 (and at once whenever the publish connection is ready again, after a loss or a
// Redis restart that lost everything) a pass re-adds every local member with the add script, which only
// moves the expiry of a member Redis still has and records, silently, one it lost. Batches are per channel,
// at most `batch_members` records or `batch_bytes` each, and at most `passes_in_flight` batches wait for an
// answer at a time, so that a pass over many members interleaves with publishes instead of queueing ahead of
// them. A member removed locally after the pass began is skipped when its batch is built; a batch already
// sent runs before the remove sent after it (one connection, in order), so a refresh never resurrects it.
//
// Removals made while Redis is unreachable are remembered (at most `max_pending_removals`) and sent before
// the re-adding pass, so that a member that left during a short outage leaves Redis (and announces its leave)
// at once rather than after its expiry.
//
// Thread-safety: everything on the broker thread, except the counters.
class redis_presence {
 public:
  enum class script { add, remove, read };
  using reply_handler = std::function<void(redisReply*)>;  // null: no answer (connection lost)
  // Runs `which` with KEYS = the first three of `args`, ARGV = the rest, and calls `done` exactly once,
  // never inside the call.
  using send_fn = std::function<void(script which, std::vector<std::string> args, reply_handler done)>;

  static constexpr std::size_t batch_members = 100;
  static constexpr std::size_t batch_bytes = 64 * 1024;
  static constexpr std::size_t passes_in_flight = 4;
  static constexpr std::size_t max_pending_removals = 100000;
  // Expired members a script removes before doing its own work: bounded, so that the members of a big
  // node that died are cleared over several calls rather than in one long script.
  static constexpr std::size_t cleanup_on_write = 100;
  static constexpr std::size_t cleanup_on_read = 1000;

  redis_presence(boost::asio::io_context& ioc, std::chrono::milliseconds ttl, send_fn send,
                 std::function<bool()> connected);

  void start();
  void stop();

  void add(presence_target target, core::presence_member m);
  void remove(const presence_target& target, const std::string& client_id);
  void read(const presence_target& target, std::size_t max, std::function<void(presence_result)> done);
  void stats(const presence_target& target, std::function<void(presence_stats_result)> done);
  // The publish connection is ready again: send what was held back and re-add every member.
  void on_connected();

  std::uint64_t members() const { return members_.get(); }
  std::uint64_t refreshed() const { return refreshed_.get(); }  // members refreshed (Redis answered)
  std::uint64_t readded() const { return readded_.get(); }      // of those, members Redis did not have
  std::uint64_t errors() const { return errors_.get(); }        // presence commands that failed

  struct channel_members {
    presence_target target;
    std::unordered_map<std::string, std::string> records;  // client id -> member record
  };
  // Redis Cluster: a channel's members move to the shard that owns the channel's slot now. take() forgets
  // them here without touching Redis (the keys moved with the slot, or a promoted replica has them);
  // adopt() keeps them here and re-adds them at once, silently (no join: nobody left), like a refresh.
  bool has(const std::string& channel) const { return channels_.count(channel) != 0; }
  channel_members take(const std::string& channel);
  void adopt(channel_members moved);

 private:
  void do_tick();
  void start_pass();
  void pump();
  void send_add(const presence_target& t, std::vector<std::string> records, bool announce, bool refresh);
  void send_remove(const presence_target& t, const std::string& client_id);

  const std::chrono::milliseconds ttl_;
  const std::string ttl_ms_;
  send_fn send_;
  std::function<bool()> connected_;
  boost::asio::steady_timer timer_;
  bool stopped_ = true;
  std::unordered_map<std::string, channel_members> channels_;  // channels with members on this node
  std::vector<std::pair<presence_target, std::string>> pending_removals_;  // while not connected

  // The refresh pass: what was there when it began, in channel order, and how far it got.
  std::uint64_t pass_ = 0;  // numbers the passes, so that answers to an abandoned one are told apart
  bool pass_running_ = false;
  std::vector<std::pair<std::string, std::string>> pass_members_;  // (channel, client id)
  std::size_t pass_next_ = 0;
  std::size_t pass_waiting_ = 0;  // batches sent, unanswered

  core::local_counter members_;
  core::local_counter refreshed_;
  core::local_counter readded_;
  core::local_counter errors_;
};

}  // namespace bc::broker
