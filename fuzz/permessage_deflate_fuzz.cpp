// libFuzzer target for the permessage-deflate pieces a client controls: the Sec-WebSocket-Extensions offer
// (ws::negotiate_deflate) and a compressed message's payload (ws::message_inflater, bounded).
//
// The first byte picks the inflate bound; the rest is used both as an extensions header and as a deflated
// payload. Checked: the inflater never returns more than the bound, reports too_big only past it, and a
// reused stream still round-trips a known message afterwards (no state leaks from a bad message); a
// negotiation that accepts always answers with both no_context_takeover parameters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/ws/deflate_offer.hpp"
#include "net/ws/message_deflater.hpp"
#include "net/ws/message_inflater.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  constexpr std::size_t bounds[] = {0, 1, 100, 4096, 65536};
  const std::size_t bound = bounds[data[0] % std::size(bounds)];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  const bc::ws::deflate_agreement a = bc::ws::negotiate_deflate(input);
  if (a.enabled) {
    check(
        a.response.starts_with("permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
  } else {
    check(a.response.empty());
  }

  static bc::ws::message_inflater inflater;
  static bc::ws::message_deflater deflater(6);
  std::string out;
  const auto s = inflater.inflate(input, bound, out);
  if (s == bc::ws::message_inflater::status::ok) check(out.size() <= bound);
  if (s == bc::ws::message_inflater::status::too_big) check(out.size() == bound + 1);

  // Whatever came before, the stream is fresh for the next message.
  const std::string text = "after the fuzzed message: " + std::to_string(size);
  std::string deflated;
  check(deflater.compress(text, deflated));
  check(inflater.inflate(deflated, 1024, out) == bc::ws::message_inflater::status::ok);
  check(out == text);
  return 0;
}
