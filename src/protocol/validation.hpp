#pragma once

#include <string_view>

namespace bc::protocol {

// 1-255 characters of [A-Za-z0-9_-], with ':' separating non-empty segments ("chat:room-42").
bool is_valid_channel(std::string_view channel);

// A non-empty string of at most 255 characters (Unicode code points: the text is valid UTF-8, as the JSON
// parser guarantees, so 255 two-byte characters pass and a 256-character ASCII string does not).
bool is_valid_event(std::string_view event);

}  // namespace bc::protocol
