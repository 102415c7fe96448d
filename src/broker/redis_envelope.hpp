#pragma once
// The bytes a message is carried in across Redis between Broadcaster nodes.

#include <string>
#include <string_view>

#include "core/message.hpp"

namespace bc::broker {

// Binary envelope (all integers are unsigned LEB128 varints). The body, what a node sends to Redis:
//
//   varint create_time_ms         unix milliseconds (two's complement bits of the int64)
//   varint len, id bytes          UUIDv7 text
//   varint len, channel bytes
//   varint len, event bytes
//   payload bytes                 the rest: the publisher's JSON value, already serialized
//
// Version 2, what crosses Redis (built by the publish script, redis_scripts.hpp, once it gave the message
// its channel position; also what the channel's stream keeps):
//
//   0xBC 0x02                     magic + version
//   varint len, epoch bytes       the channel's epoch (1..127 bytes, so the script writes one length byte)
//   varint len, offset digits     the channel offset in decimal ASCII (the script has no varint arithmetic)
//   body
//
// Version 1, from nodes before channel positions: `0xBC 0x01` then the body; it still decodes (offset 0,
// empty epoch: the receiving node does not track it).
//
// 3-6 bytes of framing on top of the fields (plus epoch and offset in version 2); nothing is escaped or
// re-encoded. `seq` is not in it: it belongs to a subscription and is assigned by the delivering node. A
// future version changes the second byte; a node drops (and counts) envelopes it cannot read rather than
// guessing.
std::string encode_envelope_body(const core::message& msg);
// Version 1 (what nodes before channel positions sent).
std::string encode_envelope(const core::message& msg);
// Version 2 with msg.epoch and msg.offset: the bytes the publish script builds (tests, and a reference).
std::string encode_envelope_v2(const core::message& msg);

// False (and `out` unspecified) when `bytes` is not a well-formed version-1 or version-2 envelope.
bool decode_envelope(std::string_view bytes, core::message& out);

}  // namespace bc::broker
