#pragma once
// The bytes a message is carried in across Redis between Broadcaster nodes.

#include <string>
#include <string_view>

#include "broker/broker.hpp"
#include "core/message.hpp"
#include "core/presence_set.hpp"

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

// Version 3, what is not a publication (no offset, no epoch; built by the node, or by the presence scripts
// from parts the node gave them, redis_scripts.hpp):
//
//   0xBC 0x03                     magic + version
//   1 byte kind                   'j' join, 'l' leave (on the channel's Pub/Sub channel);
//                                 'd' disconnect_user, 'u' unsubscribe_user (on the node-wide control
//                                 channel)
//   varint len, channel bytes     empty for 'd'
//   join / leave: the member record as the presence keys store it:
//     varint len, client id bytes
//     varint len, user bytes
//     info bytes                  the rest: the info claim as JSON text, empty for none
//   control: varint len, user bytes
//
// Nodes before presence in Redis drop version 3 as unreadable (and count it), never mistake it for a message.

// The member record (above), stored in Redis once per member and appended to a join / leave header.
std::string encode_presence_record(const core::presence_member& m);
bool decode_presence_record(std::string_view bytes, core::presence_member& out);
// What a join (`kind::join`) or leave (`kind::leave`) envelope of `channel` starts with: the record follows.
std::string encode_presence_header(core::message::kind type, std::string_view channel);
std::string encode_control_envelope(const control_message& msg);
bool decode_control_envelope(std::string_view bytes, control_message& out);

// False (and `out` unspecified) when `bytes` is not a well-formed version-1 or version-2 envelope, or a
// version-3 join / leave (decoded into a message of that kind: `id` the client id, `event` the user,
// `payload` the info, as core::message says).
bool decode_envelope(std::string_view bytes, core::message& out);

}  // namespace bc::broker
