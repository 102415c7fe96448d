#include "broker/memory_broker.hpp"

namespace bc::broker {

void memory_broker::publish(core::message msg, std::function<void(publish_status)> done) {
  // The ordering point of a single node: the order of these calls.
  done(sink_.try_deliver(std::move(msg)) ? publish_status::ok : publish_status::overloaded);
}

}  // namespace bc::broker
