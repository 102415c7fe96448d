#pragma once
// Everything the server writes on the wire as JSON: replies, error objects, broadcast frames.

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "core/message.hpp"
#include "protocol/error_code.hpp"

namespace bc::protocol {

// `s` as a JSON string literal, quotes included.
std::string json_quote(std::string_view s);

// Appends `v` as compact JSON. Numbers keep their shortest round-trip form (2.5 stays 2.5, not 2.5E0),
// so a payload reaches subscribers the way the publisher wrote it, up to whitespace. Returns false for a
// number that parsed to infinity (1E400): JSON has no way to say it, so such a payload is refused.
bool append_json(std::string& out, const boost::json::value& v);

// {"requestId":<id>,"result":<result>}; without requestId when id_json is empty.
std::string encode_result(std::string_view id_json, std::string_view result_json);

// {"requestId":<id>,"error":{"code":..,"message":..}}; without requestId when id_json is empty.
std::string encode_error(std::string_view id_json, error_code code, std::string_view message);

// {"error":{"code":..,"message":..}}: the REST error body.
std::string encode_error_body(error_code code, std::string_view message);

// {"id":..,"createTime":..}: the answer to a publish, over WebSocket and REST.
std::string encode_publish_result(const core::message& msg);

// Builds the broadcast frame pieces once per publish: head + seq + tail is
// {"method":"broadcast","params":{"seq":N,"id":..,"createTime":..,"channel":..,"event":..,"payload":..}}.
// `msg.payload` must already be valid JSON text.
core::publication_ptr encode_publication(core::message msg);

}  // namespace bc::protocol
