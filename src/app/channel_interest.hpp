#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "broker/broker.hpp"
#include "core/hub.hpp"

namespace bc::app {

// Counts, across all shards, how many hubs hold each channel, and tells the broker when a channel gains its
// first or loses its last local subscriber on this node. Thread-safe: hubs call it from their own threads.
// Its lock is on the subscribe path only, never on delivery.
class channel_interest final : public core::interest_listener {
 public:
  explicit channel_interest(broker::broker& b) : broker_(b) {}
  void on_channel_active(std::string_view channel) override;
  void on_channel_idle(std::string_view channel) override;
  std::size_t channel_count() const;

 private:
  broker::broker& broker_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, unsigned> hubs_per_channel_;
};

}  // namespace bc::app
