#pragma once

#include <cstdint>

#include "core/message.hpp"

namespace bc::core {

// The receiving end of subscriptions: one connection. Implemented above the core (by the protocol layer),
// so the core never sees sockets or encodings.
//
// Called only on the thread of the hub that holds the subscription. deliver() must not unsubscribe or
// destroy anything synchronously (the hub is iterating its subscriber list): a subscriber that wants to go
// away because of a delivery (slow consumer) defers that to a later task.
class subscriber {
 public:
  virtual ~subscriber() = default;
  virtual void deliver(const publication_ptr& pub, std::uint64_t seq) = 0;
};

}  // namespace bc::core
