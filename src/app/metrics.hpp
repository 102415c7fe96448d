#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bc::broker {
class broker;
}
namespace bc::engine {
class channel_interest;
}

namespace bc::app {

class shard;

// Renders the Prometheus text exposition, summing every shard's per-thread counters, with the build and the
// process series. `broker_kind` ("memory" or "redis") labels broadcaster_build_info.
std::string render_metrics(const std::vector<std::unique_ptr<shard>>& shards,
                           const engine::channel_interest& interest, const broker::broker& broker,
                           std::string_view broker_kind);

}  // namespace bc::app
