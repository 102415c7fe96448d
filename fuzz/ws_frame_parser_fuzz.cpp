// libFuzzer target for bc::ws::frame_parser.
//
// The input picks a message limit, then is parsed twice: once in a single feed and once in chunks of
// pseudo-random sizes (seeded from the input, so runs reproduce). Both must yield the same events and the
// same result, and every event must satisfy the parser's guarantees (UTF-8 text, limits, close codes,
// nothing after a close). Any violation aborts, which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/ws/close_code.hpp"
#include "net/ws/frame_parser.hpp"
#include "net/ws/utf8.hpp"

namespace {

using bc::ws::frame_handler;
using bc::ws::frame_parser;
using bc::ws::opcode;

void check(bool condition) {
  if (!condition) std::abort();
}

struct event {
  int kind;
  std::uint16_t code;
  std::string payload;
  bool operator==(const event&) const = default;
};

class checking_handler : public frame_handler {
 public:
  explicit checking_handler(std::size_t max_message_bytes) : max_(max_message_bytes) {}

  void on_message(opcode op, std::string_view payload) override {
    check(!closed_);
    check(op == opcode::text || op == opcode::binary);
    check(payload.size() <= max_);
    if (op == opcode::text) check(bc::ws::is_valid_utf8(payload));
    events.push_back({static_cast<int>(op), 0, std::string(payload)});
  }
  // Only with compression on; the payload is whatever the client sent (inflating is the session's job).
  void on_compressed_message(opcode op, std::string_view deflated) override {
    check(compression_ && !closed_);
    check(op == opcode::text || op == opcode::binary);
    check(deflated.size() <= max_);
    events.push_back({static_cast<int>(op) | 0x40, 0, std::string(deflated)});
  }
  bool compression_ = false;
  void on_ping(std::string_view payload) override { control(opcode::ping, payload); }
  void on_pong(std::string_view payload) override { control(opcode::pong, payload); }
  void on_close(std::uint16_t code, std::string_view reason) override {
    check(!closed_);
    closed_ = true;
    if (code == static_cast<std::uint16_t>(bc::ws::close_code::no_status)) {
      check(reason.empty());
    } else {
      check(bc::ws::is_valid_close_code_on_wire(code));
    }
    check(reason.size() <= 123);
    check(bc::ws::is_valid_utf8(reason));
    events.push_back({static_cast<int>(opcode::close), code, std::string(reason)});
  }

  std::vector<event> events;

 private:
  void control(opcode op, std::string_view payload) {
    check(!closed_);
    check(payload.size() <= 125);
    events.push_back({static_cast<int>(op), 0, std::string(payload)});
  }

  std::size_t max_;
  bool closed_ = false;
};

// Memory held may not exceed what the limits allow (a partial message plus a parked control frame, with
// std::string's geometric growth); an idle parser must be able to give everything back.
void check_memory(frame_parser& parser, std::size_t max) {
  check(parser.buffered_bytes() <= 2 * (max + 125) + 64);
  if (parser.idle()) {
    parser.release_memory();
    check(parser.buffered_bytes() == 0);
  }
}

bool same(const frame_parser::result& a, const frame_parser::result& b) {
  return a.ok == b.ok && (a.ok || (a.error == b.error && a.reason == b.reason));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  constexpr std::size_t limits[] = {0, 1, 125, 126, 1000, 65536};
  const std::size_t max = limits[data[0] % std::size(limits)];
  // permessage-deflate negotiated or not (RSV1 allowed on first data frames); older corpus inputs mostly
  // keep their meaning.
  const bool compression = (data[0] & 0x80) != 0;
  std::uint32_t rng = data[1] * 2654435761u + 1;  // chunk sizes, reproducible from the input
  const std::span<const std::uint8_t> stream(data + 2, size - 2);

  // One feed.
  std::vector<std::uint8_t> whole(stream.begin(), stream.end());
  frame_parser one(max, compression);
  checking_handler one_events(max);
  one_events.compression_ = compression;
  const frame_parser::result one_result = one.feed(whole, one_events);
  check_memory(one, max);

  // Random chunks, including empty ones.
  std::vector<std::uint8_t> pieces(stream.begin(), stream.end());
  frame_parser many(max, compression);
  checking_handler many_events(max);
  many_events.compression_ = compression;
  frame_parser::result many_result;
  std::size_t at = 0;
  while (at < pieces.size()) {
    rng = rng * 1103515245u + 12345u;
    const std::size_t want = (rng >> 16) % 4 == 0 ? (rng >> 8) % 300 : (rng >> 8) % 9;
    const std::size_t n = std::min(want, pieces.size() - at);
    const frame_parser::result r = many.feed(std::span(pieces).subspan(at, n), many_events);
    at += n;
    if (!many_result.ok) check(same(r, many_result));  // an error is sticky
    many_result = r;
    check_memory(many, max);
  }
  if (pieces.empty()) many_result = many.feed({}, many_events);

  check(same(one_result, many_result));
  check(one_events.events == many_events.events);
  if (!one_result.ok) {
    const auto e = one_result.error;
    check(e == bc::ws::close_code::protocol_error || e == bc::ws::close_code::invalid_payload ||
          e == bc::ws::close_code::message_too_big);
    check(!one_result.reason.empty());
    check(one.buffered_bytes() == 0);
  }
  return 0;
}
