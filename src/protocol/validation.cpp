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
  if (event.empty()) return false;
  if (event.size() <= 255) return true;      // the common case: no counting
  if (event.size() > 4 * 255) return false;  // no code point takes more than 4 bytes
  std::size_t chars = 0;
  for (const char c : event) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a continuation
  return chars <= 255;
}

}  // namespace bc::protocol
