#pragma once
// The seam between "a message was published on this node" and "deliver it to local subscribers everywhere".

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"
#include "core/presence_set.hpp"

namespace bc::broker {

// overloaded: refused for a full queue on this node, nothing delivered (retry later).
enum class publish_status { ok, unavailable, overloaded };

// A node-level command of the server API (PROTOCOL "(ext) Server API"), for every node: each acts on its own
// connections of `user`.
struct control_message {
  enum class kind { disconnect_user, unsubscribe_user };
  kind what = kind::disconnect_user;
  std::string user;
  std::string channel;  // unsubscribe_user only
};

// Where a broker hands every message that must reach this node's subscribers, once it has ordered it: the
// node's engine, which encodes it once and routes it to each worker thread. Thread-safe; called from any
// thread; order of calls is delivery order.
class delivery_sink {
 public:
  virtual ~delivery_sink() = default;
  // Must take the message (one that came from another node cannot be refused): it may wait, boundedly, for
  // room in the node's queues.
  virtual void deliver(core::message msg) = 0;
  // For a message published on this node (the embedded broker): refuses it, delivering it nowhere, when the
  // node's queues are full, so that the publisher can be told to slow down instead of memory growing.
  virtual bool try_deliver(core::message msg) {
    deliver(std::move(msg));
    return true;
  }
  // In delivery order with deliver(): the messages of `channel` with offsets last_offset-count+1 …
  // last_offset were published but will never be delivered here (lost on the way, not in history). Every
  // subscription of the channel on this node then skips `count` seq numbers, so that its client sees the gap.
  virtual void deliver_gap(std::string channel, std::uint64_t last_offset, std::uint64_t count) = 0;
  // A join or leave (core::message::kind): not ordered with the channel's offsets and consuming none; never
  // refused, never waited for (a notification the node drops under overload is only a notification).
  virtual void deliver_presence_event(core::message /*event*/) {}
  // A control message (broker::control): acted on by every connection of its user on this node.
  virtual void deliver_control(control_message /*msg*/) {}
};

// A channel's position (PROTOCOL "(ext) Channel positions"): the offset of its last message in `epoch`.
struct stream_position {
  std::string epoch;
  std::uint64_t offset = 0;
  bool operator==(const stream_position&) const = default;
};

struct history_request {
  std::string channel;
  // Absent: the newest `limit` messages. Present: the first `limit` messages after it (none when its epoch is
  // not the channel's).
  std::optional<stream_position> since;
  std::size_t limit = 0;  // 0: the position only
};

struct history_result {
  // `unavailable`: the broker cannot answer now (Redis down); nothing else is meaningful then.
  publish_status status = publish_status::ok;
  stream_position top;                  // the channel's position when read; epoch never empty when ok
  std::vector<core::message> messages;  // oldest first, offsets strictly increasing, each stamped
  // With `since`: `messages` hold every message after `since` up to `top`, without a hole (same epoch,
  // nothing trimmed, `limit` not reached). Without `since`: false.
  bool complete = false;
};

struct presence_result {
  publish_status status = publish_status::ok;  // `unavailable`: nothing else is meaningful
  std::vector<core::presence_member> clients;
  bool truncated = false;  // there were more than the cap asked for
};

struct presence_stats_result {
  publish_status status = publish_status::ok;
  core::presence_counts counts;
};

// Thread-safety: every member may be called from any thread.
// Delivery guarantee: a publish answered `ok` will be delivered as far as this node can know: the memory
// broker handed it to the sink; the Redis broker had Redis accept it while both of the shard's connections
// were up, and, for a channel with subscribers on this node, saw it come back on the subscribe connection.
// Either way, when `done(ok)` runs for a channel this node has interest in, the node's sink holds the
// message. Publications from one thread to one channel reach every node's sink in publish order. Nothing is
// retried silently. `unavailable`: not delivered by this node's doing, though a message Redis accepted just
// before a connection was lost may still have reached other nodes (docs/redis.md); `overloaded`: refused
// whole, sent nowhere. After stop(), every publish answers `unavailable`.
// tests/unit/broker/broker_conformance_test.cpp checks this contract on every broker.
class broker {
 public:
  virtual ~broker() = default;

  virtual void start() = 0;
  virtual void stop() = 0;

  // `msg` is stamped (id, create time). The broker gives it the channel's next offset (and the epoch) at the
  // channel's ordering point, keeps it in the channel's history when the channel's rule says so, and hands
  // it to every node's sink with them, in offset order. `done` is called exactly once, on any thread
  // (possibly inside this call).
  virtual void publish(core::message msg, std::function<void(publish_status)> done) = 0;

  // The channel's position and, per `req`, messages from its history. `done` is called exactly once, on any
  // thread (possibly inside this call). A channel never published to has a position too (offset 0, an epoch
  // that its first publish keeps).
  virtual void history(history_request req, std::function<void(history_result)> done) = 0;

  // Node-level interest: called when the first local subscriber of `channel` appears on this node and when
  // the last one leaves (the caller counts across shards). A broker that delivers everything may ignore it.
  virtual void subscribe(std::string_view channel) = 0;
  virtual void unsubscribe(std::string_view channel) = 0;

  // For a client's subscribe reply: once it is sent, messages published to `channel` on any node must reach
  // this node. Returns true when that holds already (a broker that delivers everything: the default), and
  // then never calls `ready`. Else returns false and calls `ready` exactly once, later, on any thread: when
  // the broker has confirmed this node's subscription, or when waiting longer cannot help (connection lost,
  // timeout, stopping). Call it after the subscribe() of `channel` that the new subscriber caused (if any),
  // from the same thread.
  virtual bool await_subscribed(std::string_view /*channel*/, std::function<void()> /*ready*/) {
    return true;
  }

  // Presence (PROTOCOL "(ext) Presence"), for channels whose rule enables it; the node calls these only for
  // such channels. add_presence when a subscription went live, remove_presence when it ended, each once, from
  // the subscription's thread. With `announce`, the broker also hands a join / leave event (core::message
  // with kind join / leave) to every node's sink (delivery_sink::deliver_presence_event), after recording.
  // The defaults keep nothing and answer `unavailable`: a broker that does not keep presence still compiles
  // and says so instead of answering wrongly. (Both brokers keep it; the Redis broker cluster-wide, members
  // of a node that died leaving within PRESENCE_TTL: docs/redis.md "Presence".)
  virtual void add_presence(std::string /*channel*/, core::presence_member /*m*/, bool /*announce*/) {}
  virtual void remove_presence(std::string /*channel*/, core::presence_member /*m*/, bool /*announce*/) {}
  // At most `max` members of `channel` across the cluster. `done` exactly once, on any thread (maybe inside).
  virtual void presence(std::string /*channel*/, std::size_t /*max*/,
                        std::function<void(presence_result)> done) {
    presence_result r;
    r.status = publish_status::unavailable;
    done(std::move(r));
  }
  virtual void presence_stats(std::string /*channel*/, std::function<void(presence_stats_result)> done) {
    presence_stats_result r;
    r.status = publish_status::unavailable;
    done(std::move(r));
  }

  // The server API: hands `msg` to every node's sink (delivery_sink::deliver_control), this node's included.
  // `done(ok)` once it is on its way to all of them; exactly once, on any thread (maybe inside). The default
  // answers `unavailable`: acting on this node only would be a silent half of a cluster-wide command.
  virtual void control(control_message /*msg*/, std::function<void(publish_status)> done) {
    done(publish_status::unavailable);
  }

  // True while publishes can succeed (for /health).
  virtual bool healthy() const = 0;
  virtual std::string describe() const = 0;  // short state for logs and /info, e.g. "memory"
  // Appends broker-specific series in the Prometheus text format (none by default).
  virtual void append_metrics(std::string& /*out*/) const {}
};

}  // namespace bc::broker
