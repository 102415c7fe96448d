#pragma once
// The params that name a channel position or bound a history read: `since` and `limit` (subscribe,
// history), shared by the WebSocket methods and the REST endpoint.

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "broker/broker.hpp"

namespace bc::protocol {

// Longest epoch a client may send back: ours are 16 hex digits; anything much longer is not one of ours.
inline constexpr std::size_t max_epoch_length = 64;

// params.since = {"epoch": non-empty string, "offset": integer >= 0}; absent or null leaves `out` empty.
// False, with `message`, when it is malformed.
bool read_since(const boost::json::object& params, std::optional<broker::stream_position>& out,
                std::string& message);

// params.limit = integer >= 0; absent or null leaves `out` empty. False, with `message`, when malformed.
bool read_limit(const boost::json::object& params, std::optional<std::uint64_t>& out, std::string& message);

// The same from text (REST query parameters): a decimal integer >= 0 that fits 64 bits.
std::optional<std::uint64_t> parse_count(std::string_view text);

}  // namespace bc::protocol
