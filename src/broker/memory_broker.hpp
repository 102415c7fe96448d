#pragma once

#include "broker/broker.hpp"

namespace bc::broker {

// The embedded single-node broker: a publish goes straight to this node's fan-out.
class memory_broker final : public broker {
 public:
  explicit memory_broker(delivery_sink& sink) : sink_(sink) {}

  void start() override {}
  void stop() override {}
  void publish(core::message msg, std::function<void(publish_status)> done) override;
  void subscribe(std::string_view) override {}
  void unsubscribe(std::string_view) override {}
  bool healthy() const override { return true; }
  std::string describe() const override { return "memory"; }

 private:
  delivery_sink& sink_;
};

}  // namespace bc::broker
