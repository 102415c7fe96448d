#include "broker/memory_broker.hpp"

namespace bc::broker {

void memory_broker::publish(core::message msg, std::function<void(publish_status)> done) {
  // The ordering point of a single node: the order of these calls.
  if (stopped_.load(std::memory_order_relaxed)) return done(publish_status::unavailable);
  done(sink_.try_deliver(std::move(msg)) ? publish_status::ok : publish_status::overloaded);
}

}  // namespace bc::broker
