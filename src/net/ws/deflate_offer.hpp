#pragma once
// The server's side of permessage-deflate negotiation (RFC 7692 section 7): which of a client's offers to
// accept, and what to answer.

#include <string>
#include <string_view>

namespace bc::ws {

// What the server agreed to on one connection.
//
// Whatever the client offered, an accepted agreement always carries server_no_context_takeover and
// client_no_context_takeover: each message is compressed as a fresh stream in both directions, so a
// connection keeps no compression state between messages (idle connections cost nothing more), and one
// compressed form of a publication serves every subscriber.
struct deflate_agreement {
  bool enabled = false;
  std::string response;  // the Sec-WebSocket-Extensions value to send back; empty when !enabled
};

// `offers` is every Sec-WebSocket-Extensions value of the request, joined with ", " (RFC 7230 3.2.2).
// Accepts the first permessage-deflate offer whose parameters are all known, well-formed, given once, and
// honourable; declines the others (other extensions are ignored). The server cannot honour
// server_max_window_bits below 15: its compressed publications are shared by every subscriber and built
// with a 32 KiB window. A header that does not parse declines everything (the connection proceeds
// uncompressed).
deflate_agreement negotiate_deflate(std::string_view offers);

}  // namespace bc::ws
