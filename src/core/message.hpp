#pragma once
// A published message and its wire form: what crosses threads and brokers.

#include <cstdint>
#include <memory>
#include <string>

#include "core/lazy_bytes.hpp"

namespace bc::core {

// What a publisher sent, stamped by the node that accepted it. The payload is opaque to the core: the
// protocol layer has already validated it and hands it over as encoded bytes.
//
// A presence event (kind join / leave, PROTOCOL "(ext) Presence") travels the same way with other meanings:
// `id` is the client id it is about, `event` its user, `payload` its info claim as JSON text (empty: none);
// it has no offset, no epoch, no create time.
struct message {
  enum class kind : std::uint8_t { publication, join, leave };
  std::string id;                   // UUIDv7 text, unique across nodes, time-ordered
  std::int64_t create_time_ms = 0;  // unix milliseconds
  std::string channel;
  std::string event;
  std::string payload;
  // The channel position, given by the broker at the channel's single ordering point (PROTOCOL "(ext)
  // Channel positions"): the next offset of the channel in `epoch`. 0 / empty until the broker ordered it,
  // and from a peer too old to send one.
  std::uint64_t offset = 0;
  std::string epoch;
  kind type = kind::publication;
};

// A message's wire form, built once per node by an encoder (protocol layer, injected into the engine) after
// the broker has ordered the message, and shared, immutable, by every shard and every subscriber. A
// subscriber's frame is `head + seq + tail`; the core only routes by `channel` and carries the bytes, it
// never reads them. The message's fields live in the bytes only: the payload is stored once.
//
// A gap marker (`skipped` > 0) carries no bytes: the messages with offsets offset-skipped+1 … offset were
// published but cannot be delivered (lost between nodes, no history to fetch them from). Each subscription's
// seq advances past them, so that its client sees the gap (hub::deliver).
//
// A presence event (`presence_event`: a join or leave) is a whole frame in `tail` with an empty `head` and
// no seq: the hub hands it only to subscriptions that asked for join/leave, without touching their seq, and
// the transport writes it without a seq. `from` is the client id it is about (a connection skips its own).
struct publication {
  std::string channel;
  std::string head;
  std::string tail;
  std::uint64_t offset = 0;  // the message's channel offset (0: unknown)
  std::string epoch;
  std::uint64_t skipped = 0;
  bool presence_event = false;
  std::string from;
  // The transport's compressed form of `tail`, built by the first delivery that needs it (never read by
  // the core; see docs/design.md "Compression").
  lazy_bytes compressed_tail;
};

using publication_ptr = std::shared_ptr<const publication>;

}  // namespace bc::core
