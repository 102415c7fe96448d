#include "engine/channel_interest.hpp"

namespace bc::engine {

void channel_interest::on_channel_active(std::string_view channel) {
  std::lock_guard lock(mutex_);
  // The broker is told under the lock so that subscribe/unsubscribe for one channel reach it in order.
  if (++hubs_per_channel_[std::string(channel)] == 1 && broker_) broker_->subscribe(channel);
}

void channel_interest::on_channel_idle(std::string_view channel) {
  std::lock_guard lock(mutex_);
  auto it = hubs_per_channel_.find(std::string(channel));
  if (it == hubs_per_channel_.end()) return;
  if (--it->second == 0) {
    hubs_per_channel_.erase(it);
    if (broker_) broker_->unsubscribe(channel);
  }
}

std::size_t channel_interest::channel_count() const {
  std::lock_guard lock(mutex_);
  return hubs_per_channel_.size();
}

}  // namespace bc::engine
