#pragma once
// The seam between "a message was published on this node" and "deliver it to local subscribers everywhere".

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"

namespace bc::broker {

// overloaded: refused for a full queue on this node, nothing delivered (retry later).
enum class publish_status { ok, unavailable, overloaded };

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

  // True while publishes can succeed (for /health).
  virtual bool healthy() const = 0;
  virtual std::string describe() const = 0;  // short state for logs and /info, e.g. "memory"
  // Appends broker-specific series in the Prometheus text format (none by default).
  virtual void append_metrics(std::string& /*out*/) const {}
};

}  // namespace bc::broker
