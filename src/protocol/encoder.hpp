#pragma once
// Everything the server writes on the wire as JSON: replies, error objects, broadcast frames.

#include <string>
#include <string_view>

#include "broker/broker.hpp"
#include "core/message.hpp"
#include "protocol/error_code.hpp"

namespace bc::protocol {

// `s` as a JSON string literal, quotes included.
std::string json_quote(std::string_view s);

// {"requestId":<id>,"result":<result>}; without requestId when id_json is empty.
std::string encode_result(std::string_view id_json, std::string_view result_json);

// {"requestId":<id>,"error":{"code":..,"message":..}}; without requestId when id_json is empty.
std::string encode_error(std::string_view id_json, error_code code, std::string_view message);

// {"error":{"code":..,"message":..}}: the REST error body.
std::string encode_error_body(error_code code, std::string_view message);

// {"id":..,"createTime":..}: the answer to a publish, over WebSocket and REST.
std::string encode_publish_result(const core::message& msg);

// Builds the broadcast frame pieces once per publish: head + seq + tail is
// {"method":"broadcast","params":{"seq":N,"id":..,"createTime":..,"channel":..,"offset":..,"epoch":..,
// "event":..,"payload":..}} (offset and epoch only when the broker gave them).
// `msg.payload` must already be valid JSON text: the publisher's own bytes (raw_json), copied, never
// re-serialised. A join / leave (msg.type) becomes a presence event instead: {"method":"join"|"leave",
// "params":{"channel","clientId","user","info"?}} whole in the tail, no seq (core::publication).
core::publication_ptr encode_publication(core::message msg);

// "epoch":..,"offset":.. (members to put inside an object).
std::string encode_position(const broker::stream_position& pos);

// {"publications":[{"id","createTime","channel","offset","epoch","event","payload"}...],"epoch":..,"offset":..}:
// the answer to `history`, over WebSocket and REST.
std::string encode_history_result(const broker::history_result& r);

// {"clients":{ID:{"user","info"?},...},"truncated":true?} and {"numClients","numUsers"}: the answers to
// `presence` and `presenceStats`, over WebSocket and REST.
std::string encode_presence_result(const broker::presence_result& r);
std::string encode_presence_stats(const core::presence_counts& c);

}  // namespace bc::protocol
