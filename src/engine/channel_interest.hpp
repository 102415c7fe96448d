#pragma once
// Counts, across all worker threads, how many hubs hold each channel, and tells the broker when a channel
// gains its first or loses its last local subscriber on this node.

#include <mutex>
#include <string>
#include <unordered_map>

#include "broker/broker.hpp"
#include "core/hub.hpp"

namespace bc::engine {

// Thread-safe: hubs call it from their own threads. Its lock is on the subscribe path only, never on
// delivery.
class channel_interest final : public core::interest_listener {
 public:
  // Set once, before any hub has a subscriber.
  void attach(broker::broker& b) { broker_ = &b; }

  void on_channel_active(std::string_view channel) override;
  void on_channel_idle(std::string_view channel) override;
  std::size_t channel_count() const;

 private:
  broker::broker* broker_ = nullptr;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, unsigned> hubs_per_channel_;
};

}  // namespace bc::engine
