#pragma once
// A published message and its wire form: what crosses threads and brokers.

#include <cstdint>
#include <memory>
#include <string>

namespace bc::core {

// What a publisher sent, stamped by the node that accepted it. The payload is opaque to the core: the
// protocol layer has already validated it and hands it over as encoded bytes.
struct message {
  std::string id;                   // UUIDv7 text, unique across nodes, time-ordered
  std::int64_t create_time_ms = 0;  // unix milliseconds
  std::string channel;
  std::string event;
  std::string payload;
};

// A message's wire form, built once per node by an encoder (protocol layer, injected into the engine) after
// the broker has ordered the message, and shared, immutable, by every shard and every subscriber. A
// subscriber's frame is `head + seq + tail`; the core only routes by `channel` and carries the bytes, it
// never reads them. The message's fields live in the bytes only: the payload is stored once.
struct publication {
  std::string channel;
  std::string head;
  std::string tail;
};

using publication_ptr = std::shared_ptr<const publication>;

}  // namespace bc::core
