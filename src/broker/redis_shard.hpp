#pragma once
// One Redis instance of the Redis broker: its publish and subscribe connections and this node's channels on
// it.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/broker.hpp"
#include "broker/redis_channel_tracker.hpp"
#include "broker/redis_connection.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_presence.hpp"
#include "broker/redis_sentinel.hpp"
#include "broker/redis_url.hpp"
#include "core/local_counter.hpp"

struct redisReply;

namespace bc::broker {

// A point-in-time copy of one shard's state and counters (for metrics and tests).
struct redis_shard_stats {
  std::size_t index = 0;  // the shard's number (in a cluster: one per primary seen, in order)
  std::string address;
  bool publish_up = false;
  bool subscribe_up = false;
  std::uint64_t published = 0;         // publishes answered `ok`
  std::uint64_t publish_failures = 0;  // publishes answered `unavailable`
  std::uint64_t received = 0;          // messages that arrived from Redis
  std::uint64_t invalid = 0;           // messages dropped: not a readable envelope
  std::uint64_t reconnects = 0;        // connections (publish or subscribe) re-established after a loss
  std::uint64_t connect_failures = 0;  // attempts to (re)connect that failed before the connection was ready
  std::uint64_t channels = 0;          // channels this node is subscribed to on this shard
  std::uint64_t in_flight = 0;         // publishes accepted, not yet answered
  std::uint64_t gaps = 0;              // jumps in a channel's offsets that history could not fill
  std::uint64_t skipped = 0;           // messages in those gaps (reported to the sink as lost)
  std::uint64_t repaired = 0;          // messages fetched from a channel's stream after a jump
  std::uint64_t duplicates = 0;        // messages dropped as already delivered
  std::uint64_t presence_members = 0;  // this node's members of the shard's channels
  std::uint64_t presence_refreshed = 0;  // member refreshes Redis answered
  std::uint64_t presence_readded = 0;    // of those, members Redis had lost (restart, expiry)
  std::uint64_t presence_errors = 0;     // presence commands that failed
  std::uint64_t controls = 0;            // server API commands received (shard 0 only)
  std::uint64_t failovers = 0;           // moves to another primary named by Sentinel (not the first one)
  std::uint64_t wait_failures = 0;       // publishes the script ran but too few replicas acknowledged (WAIT)
};

// One publish as the shard sends it: the envelope body (redis_envelope.hpp) and what the publish script
// needs (redis_scripts.hpp), prepared on the caller's thread.
struct redis_publish_request {
  std::string redis_channel;
  std::string meta_key;
  std::string stream_key;
  std::string body;
  std::size_t history_size = 0;
  std::int64_t history_ttl_ms = 0;
  // Redis Cluster: sent after ASKING (an ASK redirection), and how often it was redirected already.
  bool asking = false;
  unsigned redirects = 0;
};

// Publishing: one connection, publishes pipelined in call order. Each publish is one EVALSHA of the publish
// script (redis_scripts.hpp), loaded with SCRIPT LOAD when the connection opens (before the PING that marks
// it ready): it gives the message the channel's next offset, appends it to the channel's stream when the
// channel keeps history, and PUBLISHes it, atomically. A NOSCRIPT answer (the script cache was flushed)
// answers that publish `unavailable` (it did not run) and loads the scripts again, pipelined: the publishes
// after it succeed. Reads (history(), the tracker's fetches) run the read script on the same connection
// and through the same FIFO, so that the watchdog covers them too and a read sent after a publish of this
// node sees it.
//
// Publishes:  Their replies arrive in the same order, so
// the completions wait in a FIFO (`in_flight_`): a reply completes the oldest one; when the connection is
// lost the link (redis_link) runs every remaining callback with a null reply, completing them `unavailable`.
// A watchdog drops both connections when the oldest PUBLISH waits longer than `publish_timeout` (a hung
// Redis), so nothing waits forever; an idle publish connection sends a heartbeat PING through the same FIFO
// so that the watchdog also covers it.
//
// A publish is accepted only while both connections are ready: with the subscribe connection down (or still
// re-subscribing) the message could not reach this node's own subscribers, so it answers `unavailable`.
//
// Seen back before `ok`: a PUBLISH to a channel with local interest answers `ok` only once this node's
// subscribe connection has provably passed the point where Redis queued the message to it. Redis handles
// one connection's commands in order and queues the message to every subscriber before it answers the
// PUBLISH, so a ping sent on the subscribe connection after the PUBLISH reply arrived is answered after the
// message (already handed to the sink by then). The acknowledged publishes wait in `acked_` for the answer to
// the next ping (`pings_answered_` reaching their number; one ping covers every reply of a read); if the
// subscribe connection is lost first, or was lost since the PUBLISH was sent (`sub_epoch_`), they answer
// `unavailable`: Redis took them, but this node cannot tell whether its subscribers got them. Completions
// stay in call order: once one waits, later ones queue behind it.
//
// Subscribe connection liveness: that ping is a re-SUBSCRIBE of the anchor channel (answered in order like
// any command), sent at least every `heartbeat_interval`; one unanswered after `publish_timeout` drops the
// connection. (Not PING: hiredis 0.14, used before redis_link, lost PING's ["pong", ""] answer in subscribed
// mode; the anchor's confirmation also ends a re-subscribe batch, so it stayed.)
//
// Subscribing: one connection holding a SUBSCRIBE for each channel with local interest (`channels_`). After
// every (re)connect the whole set is subscribed again in one pipeline, followed by the shard's anchor
// channel; the anchor's confirmation, the last to arrive, marks the connection ready. The anchor also keeps
// the connection's subscription count above zero, so the connection never leaves subscribed mode between an
// UNSUBSCRIBE and a re-SUBSCRIBE of the same channel (which tripped hiredis 0.14's assertions).
//
// Subscribe before publish: Redis orders nothing across two connections, so a PUBLISH sent right after this
// node's SUBSCRIBE of the same channel could overtake it and miss the node's own subscribers (a client that
// subscribes and then publishes would not get its message). A publish to a channel whose SUBSCRIBE is still
// unconfirmed (`unconfirmed_`) therefore waits in `held_` until the confirmation arrives, then goes out in
// order; later publishes to that channel queue behind it. If the subscribe connection closes, or a
// confirmation takes longer than `publish_timeout` (which drops it), held publishes answer `unavailable`:
// they were not sent.
//
// Subscribe before reply: a client told "subscribed" expects every message published afterwards, on any node.
// Until Redis confirms the node's SUBSCRIBE, a message published on another node would not come back here, so
// the client's subscribe reply waits too (`waiters_`, see broker::await_subscribed), bounded the same way.
//
// Receiving: every message from the subscribe connection is decoded and handed to the shard's
// redis_channel_tracker, which delivers it to the sink in offset order, repairing jumps from the stream or
// reporting them as gaps. While the tracker holds messages (a repair in flight), acknowledged publishes that
// wait to be seen back keep waiting: `ok` still means this node's sink holds the message.
//
// Presence (redis_presence.hpp) runs its scripts on the publish connection, through the same FIFO as reads,
// so that a join or leave reaches the channel's Pub/Sub channel in order with the channel's publishes from
// this node. Join and leave envelopes (version 3, redis_envelope.hpp) arrive on the channel's Pub/Sub
// channel like messages but bypass the tracker: they have no offset, so they neither take nor reveal one.
//
// Sentinel (a `redis+sentinel://` endpoint, redis_sentinel.hpp): the connections start once a sentinel has
// named the primary, and move when the primary does (`endpoint_` is rewritten; a connection reads it on every
// connect). Every connection to a primary first asks ROLE and is marked ready only if the answer is `master`,
// so that a stale sentinel answer, or an old primary not yet demoted, is never taken for the primary. A
// connection lost or not connecting asks the sentinels again; so does a write answered READONLY (with or
// without Sentinel: the server was demoted under us), which drops both connections like a loss — the
// publishes in flight answer `unavailable`, never `ok`. See redis_shard_failover.cpp.
//
// The server API: shard 0's subscribe connection also subscribes to the node-wide control channel
// (`P!control`, subscribed before the anchor, so its confirmation comes first); a control() PUBLISHes there
// on shard 0's publish connection.
//
// Thread-safety: every member function runs on the broker thread, except the const ones (atomics).
class redis_shard {
 public:
  using publish_done = std::function<void(publish_status)>;

  redis_shard(boost::asio::io_context& ioc, std::size_t index, redis_endpoint endpoint,
              const redis_options& opts, delivery_sink& sink);
  ~redis_shard();
  redis_shard(const redis_shard&) = delete;
  redis_shard& operator=(const redis_shard&) = delete;

  void start();
  void stop();  // in-flight publishes complete `unavailable`

  void publish(redis_publish_request req, publish_done done);
  // broker::history for a channel of this shard.
  void history(history_request req, std::function<void(history_result)> done);
  void subscribe(const std::string& redis_channel);
  void unsubscribe(const std::string& redis_channel);
  // Calls `ready` once the channel's SUBSCRIBE is confirmed on the open subscribe connection (at once when
  // it is, or when no connection is open); at the latest when the connection closes or after publish_timeout.
  void await_subscribed(const std::string& redis_channel, std::function<void()> ready);

  // broker::add_presence / remove_presence / presence / presence_stats for a channel of this shard.
  void add_presence(presence_target target, core::presence_member m);
  void remove_presence(const presence_target& target, const std::string& client_id);
  void presence(const presence_target& target, std::size_t max, std::function<void(presence_result)> done);
  void presence_stats(const presence_target& target, std::function<void(presence_stats_result)> done);
  // broker::control, on shard 0: PUBLISHes the control envelope; `ok` once Redis answered the PUBLISH.
  void control(std::string envelope, publish_done done);

  // Redis Cluster (redis_shard_cluster.cpp; the shard is one primary, redis_cluster.hpp moves channels and
  // members between shards as slots move).
  // Called on a hint that the slot map changed: MOVED/ASK, a sunsubscribe from Redis, a lost connection, a
  // connection that found a replica.
  void on_topology(std::function<void(const std::string& why)> hint) { topology_hint_ = std::move(hint); }
  // A publish answered MOVED or ASK (it did not run), handed back with where Redis says its slot is; `done`
  // is still to be called. Without a handler it answers `unavailable`.
  struct redirection {
    bool ask = false;  // ASK: this command only, after ASKING; MOVED: the slot's owner now
    // TRYAGAIN (a slot being migrated, some of the keys moved): the same node (`ask`: it was asked with
    // ASKING) or the owner, a moment later.
    bool retry = false;
    std::uint16_t slot = 0;
    std::string host;
    int port = 0;
  };
  using redirect_fn =
      std::function<void(const redirection& to, redis_publish_request req, publish_done done)>;
  void on_redirect(redirect_fn f) { redirect_ = std::move(f); }
  // Whether this shard's subscribe connection holds the node-wide control channel (shard 0 without Cluster).
  void set_control(bool hold);
  // A channel with local interest leaves this shard: its subscription, position and presence members are
  // handed over (to the shard that owns its slot now), without touching Redis's copy of the members.
  struct channel_handover {
    bool tracked = false;
    std::string epoch;
    std::uint64_t last = 0;  // in `epoch`: the last offset delivered here
    // Publishes held for the channel's unconfirmed subscription: the new shard sends them, in order.
    std::vector<std::pair<redis_publish_request, publish_done>> held;
  };
  channel_handover release_channel(const std::string& redis_channel);
  // Takes the channel over: subscribes it, and once the subscription is confirmed reads its position, so
  // that what was published meanwhile is delivered from the stream or reported as a gap.
  void adopt_channel(const std::string& redis_channel, const channel_handover& from);
  bool has_presence(const std::string& channel) const { return presence_.has(channel); }
  redis_presence::channel_members release_presence(const std::string& channel) {
    return presence_.take(channel);
  }
  void adopt_presence(redis_presence::channel_members moved) { presence_.adopt(std::move(moved)); }

  // Any thread. Publishes are accepted only while up().
  bool up() const { return pub_.ready() && sub_.ready(); }
  // Any thread. history() needs only the publish connection: positions and streams are read there.
  bool readable() const { return pub_.ready(); }
  std::size_t index() const { return index_; }
  void count_rejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }
  redis_shard_stats stats() const;

 private:
  using read_handler = std::function<void(redisReply*)>;  // null: no answer (connection lost)
  struct in_flight {
    publish_done done;  // empty for a heartbeat PING, a SCRIPT LOAD or a read
    read_handler read;  // a read's
    std::chrono::steady_clock::time_point sent;
    std::size_t bytes;
    std::uint64_t sub_epoch;  // the subscribe connection's when sent to a channel with local interest, else 0
    // A WAIT after a publish (redis_options::wait_replicas): the publish script's answer, set when it came.
    std::shared_ptr<bool> script_ok = nullptr;
    // Cluster: the publish itself, handed back to redis_cluster when Redis answers MOVED or ASK (not run).
    std::shared_ptr<redis_publish_request> req = nullptr;
  };
  struct acked {
    publish_done done;
    publish_status status;
    bool must_see;  // ok only if the subscribe connection answers ping number `ping`
    std::uint64_t ping;
  };
  struct waiter {
    std::function<void()> ready;
    std::chrono::steady_clock::time_point since;
  };
  struct held {
    redis_publish_request req;
    publish_done done;
    std::chrono::steady_clock::time_point since;
  };

  void on_pub_open(redis_link* ac);
  void on_pub_close();
  void on_sub_open(redis_link* ac);
  void on_sub_close();
  void confirmed(const std::string& redis_channel);
  void send_publish(redis_publish_request req, publish_done done);
  void load_scripts(redis_link* ac, bool pipelined);
  static void on_script_loaded(redis_link* ac, void* reply, void* privdata);
  struct script;
  void send_script(script& sc, std::vector<std::string> args, read_handler handler);
  void on_control_message(std::string_view bytes);
  void send_read(const std::string& channel, const char* mode, const std::string& since_epoch,
                 std::uint64_t first, std::uint64_t count, std::uint64_t window, read_handler handler);
  void fetch(const std::string& channel, const std::string& epoch, std::uint64_t first, std::uint64_t count,
             bool any_epoch, redis_channel_tracker::range_done done);
  // A fetch while the publish connection is down waits for it (the subscribe connection often comes back
  // first, and a jump it reveals is in the stream): reporting the range lost at once would make a gap of what
  // history still holds. It is answered `not ok` after parked_fetch_limit, or at stop().
  struct parked_fetch {
    std::chrono::steady_clock::time_point at;
    std::string channel, epoch;
    std::uint64_t first = 0, count = 0;
    bool any_epoch = false;
    redis_channel_tracker::range_done done;
  };
  void run_parked_fetches();
  void expire_parked_fetches(std::chrono::steady_clock::time_point now, bool all);
  struct history_op;
  void history_step(std::shared_ptr<history_op> op);
  void on_sub_message(std::string_view redis_channel, std::string_view bytes);
  void release_acked();
  void check_positions();
  std::string new_epoch();
  void release(const std::string& redis_channel);
  void fail_held();
  void finish(publish_done& done, publish_status status);
  void want_ping();
  void send_sub_ping();
  void on_pong();
  void fail_acked();
  void wake(const std::string& redis_channel);
  void wake_all();
  static void on_ping_reply(redis_link* ac, void* reply, void* privdata);
  static void on_pub_reply(redis_link* ac, void* reply, void* privdata);
  static void on_sub_reply(redis_link* ac, void* reply, void* privdata);
  void send_subscribe(redis_link* ac, const char* command, const std::string* first, std::size_t n);
  void do_watch();
  void on_watch();
  void check_subscribe_timeout(std::chrono::steady_clock::time_point now);
  void watch_subscribe(std::chrono::steady_clock::time_point now);
  void complete_publish(in_flight& op, publish_status status);
  // Sentinel (redis_shard_failover.cpp).
  void on_master(const std::string& host, int port, bool announced, const std::string& why);
  void check_role(redis_link* ac, bool publish_side);
  static void on_pub_role(redis_link* ac, void* reply, void* privdata);
  static void on_sub_role(redis_link* ac, void* reply, void* privdata);
  static void on_replication_info(redis_link* ac, void* reply, void* privdata);
  void role_answered(redis_connection& conn, bool& ok, const redisReply* r);
  bool readonly(redis_link* ac, const redisReply* r);
  void not_the_primary(const std::string& why);
  // Redis Cluster (redis_shard_cluster.cpp).
  void send_cluster_subscribe(redis_link* ac, bool subscribe, const std::string& redis_channel);
  bool on_cluster_sub_reply(std::string_view kind, std::string_view channel);
  bool cluster_redirect(const redisReply* r);
  bool redirected(const redisReply* r, in_flight& op);

  const std::size_t index_;
  redis_endpoint endpoint_;  // host and port rewritten on failover (Sentinel); read by pub_ and sub_
  const redis_options& opts_;
  delivery_sink& sink_;
  const std::string anchor_;       // a Redis channel no Broadcaster channel maps to
  const std::string control_;      // the node-wide control channel (shard 0 subscribes to it)
  const std::string meta_ttl_ms_;  // redis_options::position_ttl, as the script's argument
  struct script {
    redis_shard* shard;
    const char* name;
    const char* source;
    std::string sha;  // from SCRIPT LOAD; empty until loaded on this connection
  };
  script publish_script_;
  script read_script_;
  script presence_add_script_;
  script presence_remove_script_;
  script presence_read_script_;
  // Every script, loaded on each new publish connection; the last one's answer ends a reload.
  std::vector<script*> scripts_;
  bool reloading_ = false;   // a SCRIPT LOAD after NOSCRIPT is in flight
  bool check_owed_ = false;  // the subscribe connection came back: the tracker must check positions
  std::mt19937_64 rng_;      // epochs for channels that have none yet
  std::deque<in_flight> in_flight_;
  std::deque<parked_fetch> parked_fetches_;
  std::size_t in_flight_bytes_ = 0;
  std::chrono::steady_clock::time_point last_sent_{};
  std::unordered_set<std::string> channels_;  // Redis channel names with local interest
  std::unordered_map<std::string, unsigned>
      unconfirmed_;  // SUBSCRIBEs sent on the open connection, unanswered
  std::unordered_map<std::string, std::deque<held>> held_;
  std::unordered_map<std::string, std::vector<waiter>> waiters_;  // subscribe replies held until confirmed
  std::size_t held_count_ = 0;
  std::size_t held_bytes_ = 0;
  std::deque<acked> acked_;  // answered by Redis, waiting for a subscribe-connection ping (see above)
  std::deque<std::chrono::steady_clock::time_point> sub_pings_;  // sent, unanswered, oldest first
  std::chrono::steady_clock::time_point last_sub_ping_{};
  std::uint64_t pings_sent_ = 0;      // on the subscribe connection, ever (numbers the pings)
  std::uint64_t pings_answered_ = 0;  // set to pings_sent_ when the connection closes
  std::uint64_t ping_wanted_ = 0;     // a ping with this number must go out (posted, one per read)
  bool ping_posted_ = false;
  std::uint64_t sub_epoch_ = 1;  // +1 whenever the subscribe connection closes
  boost::asio::steady_timer watchdog_;
  bool stopped_ = true;
  redis_channel_tracker tracker_;  // before the connections: outlives their pending callbacks
  redis_connection pub_;
  redis_connection sub_;
  redis_presence presence_;                   // after pub_: its connected() reads it
  std::unique_ptr<redis_sentinel> sentinel_;  // with a redis+sentinel:// endpoint only
  bool connections_started_ = false;          // with Sentinel, once the first primary is known
  bool pub_role_ok_ = false;                  // ROLE answered `master` on the open connection
  bool sub_role_ok_ = false;
  // The primary's master_replid (INFO replication), passed to the publish script: a new one after a failover
  // starts new epochs (redis_scripts.hpp). Empty without Sentinel.
  std::string replication_id_;
  std::string replication_id2_;  // Cluster: master_replid2, the id of the primary this one replaced
  bool holds_control_ = false;   // subscribes the control channel (shard 0 without Cluster)
  std::function<void(const std::string&)> topology_hint_;
  redirect_fn redirect_;
  std::unordered_set<std::string> check_on_confirm_;  // adopted channels: read their position once subscribed
  // An address ROLE or READONLY showed is not the primary, and when: a sentinel's answer naming it is not
  // followed for a while (sentinels catch up with a failover at different times), an announcement is.
  std::string not_primary_;
  std::chrono::steady_clock::time_point not_primary_at_{};
  core::local_counter failovers_;
  core::local_counter wait_failures_;

  core::local_counter published_;
  core::local_counter failures_;
  core::local_counter received_;
  core::local_counter invalid_;
  core::local_counter channel_count_;
  core::local_counter in_flight_count_;
  core::local_counter controls_;
  // Publishes refused before reaching the broker thread (written from any thread).
  std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace bc::broker
