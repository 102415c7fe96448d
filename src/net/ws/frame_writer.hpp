#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/ws/close_code.hpp"
#include "net/ws/opcode.hpp"

namespace bc::ws {

// Encoding side of the frame layer: headers are written separately from payloads so the session can send
// a header buffer plus shared, immutable payload buffers in one writev without copying the payload.

// Largest header: 2 bytes + 8-byte extended length + 4-byte masking key.
constexpr std::size_t max_header_bytes = 14;

// Server-to-client header (servers never mask). Returns the header length: 2, 4 or 10. `compressed` sets
// RSV1: the payload is a permessage-deflate message (first frame of a message only).
std::size_t write_header(std::uint8_t* out, opcode op, std::uint64_t payload_len, bool fin = true,
                         bool compressed = false);

// Client-to-server header with its masking key (load generator and tests). Returns 6, 8 or 14. The caller
// masks the payload with apply_mask(payload, len, key).
std::size_t write_masked_header(std::uint8_t* out, opcode op, std::uint64_t payload_len,
                                std::array<std::uint8_t, 4> key, bool fin = true, bool compressed = false);

// XORs data with the masking key in place (masking and unmasking are the same operation). `offset` is the
// position of data[0] within the frame payload, so a payload can be processed in pieces that span reads.
void apply_mask(std::uint8_t* data, std::size_t len, std::array<std::uint8_t, 4> key, std::size_t offset = 0);

// Close frame body: big-endian code followed by the reason, cut to 123 bytes on a UTF-8 boundary so the
// body fits the 125-byte control frame limit. Codes that must not appear on the wire (no_status,
// abnormal) yield an empty body, i.e. a close frame without status.
std::string make_close_payload(close_code code, std::string_view reason);

// Header plus unmasked payload in one string; meant for small control frames and tests, not the data path.
std::string encode_frame(opcode op, std::string_view payload);

}  // namespace bc::ws
