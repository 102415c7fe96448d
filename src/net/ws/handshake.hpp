#pragma once

#include <string>
#include <string_view>

namespace bc::ws {

// Pure pieces of the RFC 6455 opening handshake (4.2); the HTTP session does the rest.

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + RFC GUID)).
std::string accept_key(std::string_view sec_websocket_key);

// Whether a Sec-WebSocket-Key is the base64 form of 16 bytes: 22 base64 characters followed by "==".
bool is_valid_client_key(std::string_view sec_websocket_key);

}  // namespace bc::ws
