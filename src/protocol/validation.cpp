#include "protocol/validation.hpp"

namespace bc::protocol {

bool is_valid_channel(std::string_view channel) {
  if (channel.empty() || channel.size() > 255) return false;
  bool segment_empty = true;
  for (char c : channel) {
    if (c == ':') {
      if (segment_empty) return false;
      segment_empty = true;
      continue;
    }
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
    segment_empty = false;
  }
  return !segment_empty;
}

bool is_valid_event(std::string_view event) {
  return !event.empty() && event.size() <= 255;
}

}  // namespace bc::protocol
