#include "broker/memory_broker.hpp"

namespace bc::broker {

void memory_broker::publish(core::publication_ptr pub, std::function<void(publish_status)> done) {
  sink_.deliver(std::move(pub));
  done(publish_status::ok);
}

}  // namespace bc::broker
