#include "broker/memory_broker.hpp"

namespace bc::broker {

void memory_broker::publish(core::publication_ptr pub, std::function<void(publish_status)> done) {
  done(sink_.try_deliver(std::move(pub)) ? publish_status::ok : publish_status::overloaded);
}

}  // namespace bc::broker
