#pragma once

#include <atomic>

#include "broker/broker.hpp"

namespace bc::broker {

// The embedded single-node broker: a publish goes straight to this node's fan-out.
class memory_broker final : public broker {
 public:
  explicit memory_broker(delivery_sink& sink) : sink_(sink) {}

  void start() override {}
  // From here on publishes answer `unavailable` (as the Redis broker's do), and the node is not healthy.
  void stop() override { stopped_.store(true, std::memory_order_relaxed); }
  void publish(core::message msg, std::function<void(publish_status)> done) override;
  void subscribe(std::string_view) override {}
  void unsubscribe(std::string_view) override {}
  void history(history_request, std::function<void(history_result)> done) override {
    history_result r;
    r.status = publish_status::unavailable;  // TODO: being written
    done(std::move(r));
  }
  bool healthy() const override { return !stopped_.load(std::memory_order_relaxed); }
  std::string describe() const override { return "memory"; }

 private:
  delivery_sink& sink_;
  std::atomic<bool> stopped_{false};
};

}  // namespace bc::broker
