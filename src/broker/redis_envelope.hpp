#pragma once
// The bytes a message is carried in across Redis between Broadcaster nodes.

#include <string>
#include <string_view>

#include "core/message.hpp"

namespace bc::broker {

// Binary envelope, version 1 (all integers are unsigned LEB128 varints):
//
//   0xBC 0x01                     magic + version
//   varint create_time_ms         unix milliseconds (two's complement bits of the int64)
//   varint len, id bytes          UUIDv7 text
//   varint len, channel bytes
//   varint len, event bytes
//   payload bytes                 the rest: the publisher's JSON value, already serialized
//
// 3-6 bytes of framing on top of the fields; nothing is escaped or re-encoded. `seq` is not in it: it belongs
// to a subscription and is assigned by the delivering node. A future version changes the second byte; a node
// drops (and counts) envelopes it cannot read rather than guessing.
std::string encode_envelope(const core::message& msg);

// False (and `out` unspecified) when `bytes` is not a well-formed version-1 envelope.
bool decode_envelope(std::string_view bytes, core::message& out);

}  // namespace bc::broker
