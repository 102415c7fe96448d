// libFuzzer target for protocol::is_valid_channel and is_valid_event.
//
// The input is a candidate channel name (or event name). Each verdict is compared with a second,
// independently written reading of docs/protocol.md ("1-255 characters of letters, digits, _, -, with :
// separating non-empty segments"; an event is 1-255 characters, checked on valid UTF-8, which is all the JSON
// parser lets through). A name the validator accepts must also be safe where the encoder writes it unescaped:
// the broadcast built with it must parse as JSON and carry the same channel back. Any disagreement aborts.
#include <boost/json.hpp>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"
#include "protocol/encoder.hpp"
#include "protocol/validation.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

// Splits on ':' and checks every segment: non-empty, only [A-Za-z0-9_-].
bool reference_channel(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  std::vector<std::string_view> segments;
  std::size_t start = 0;
  while (true) {
    const auto colon = name.find(':', start);
    segments.push_back(
        name.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  for (auto seg : segments) {
    if (seg.empty()) return false;
    for (char c : seg) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x80) return false;  // isalnum must only see ASCII here
      if (!std::isalnum(u) && c != '_' && c != '-') return false;
    }
  }
  return true;
}

// The number of code points when `s` is valid UTF-8 (RFC 3629: shortest form, no surrogates, at most
// U+10FFFF); -1 otherwise.
long reference_code_points(std::string_view s) {
  long n = 0;
  for (std::size_t i = 0; i < s.size(); ++n) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::size_t len = b < 0x80           ? 1
                            : (b >> 5) == 0x6  ? 2
                            : (b >> 4) == 0xE  ? 3
                            : (b >> 3) == 0x1E ? 4
                                               : 0;
    if (len == 0 || i + len > s.size()) return -1;
    std::uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += len;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view name(reinterpret_cast<const char*>(data), size);

  const bool valid = bc::protocol::is_valid_channel(name);
  check(valid == reference_channel(name));
  if (const long chars = reference_code_points(name); chars >= 0) {
    check(bc::protocol::is_valid_event(name) == (chars >= 1 && chars <= 255));
  }

  if (valid) {
    bc::core::message m;
    m.id = "019b76da-a87b-7123-8abc-0123456789ab";
    m.create_time_ms = 1'767'225'600'123;
    m.channel = std::string(name);
    m.event = std::string(name);
    m.payload = "null";
    const auto pub = bc::protocol::encode_publication(m);
    boost::system::error_code ec;
    const auto v = boost::json::parse(pub->head + "1" + pub->tail, ec);
    check(!ec);
    check(v.at("params").at("channel") == boost::json::value(name));
    check(v.at("params").at("event") == boost::json::value(name));
  }
  return 0;
}
