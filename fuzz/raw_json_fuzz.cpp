// libFuzzer target for protocol::raw_json, cross-checked against Boost.JSON's DOM.
//
// The input is a JSON document. Whatever it is, the scanner must stay inside it (ASan). When parse_json
// accepts it and it is an object, then at every level of nesting: for each member the DOM holds,
// find_member's span is trimmed, lies inside the text, and parses to a value equal to that member
// (equal_json: up to Boost 1.81's own rounding quirks), so duplicate keys and escaped keys resolve to the
// member the DOM kept; find_members finds the same spans in one pass; keys the DOM does not hold give
// nothing; and a number raw_json::is_zero calls zero is zero in the DOM (an integer zero in the DOM is zero
// for is_zero too). Any violation aborts.
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "equal_json.hpp"
#include "protocol/raw_json.hpp"
#include "protocol/request.hpp"

namespace {

namespace json = boost::json;
namespace raw = bc::protocol::raw_json;
using bc::fuzzing::equal_json;

void check(bool condition) {
  if (!condition) std::abort();
}

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

json::value parse_or_abort(std::string_view text) {
  std::string message;
  auto v = bc::protocol::parse_json(text, message);
  check(v.has_value());
  return std::move(*v);
}

void check_number(std::string_view text, const json::value& v) {
  // (Boost.JSON 1.81 reads 0e400 as NaN: zero times an infinite power of ten.)
  if (raw::is_zero(text)) check(v.to_number<double>() == 0.0 || std::isnan(v.to_number<double>()));
  if (v.is_int64() || v.is_uint64()) check(raw::is_zero(text) == (v.to_number<double>() == 0.0));
}

void check_object(std::string_view text, const json::object& obj) {
  std::vector<std::string_view> keys;
  for (const auto& kv : obj) {
    const std::string_view key = kv.key();
    keys.push_back(key);
    const std::string_view span = raw::find_member(text, key);
    check(!span.empty());
    check(span.data() >= text.data() && span.data() + span.size() <= text.data() + text.size());
    check(!is_space(span.front()) && !is_space(span.back()));
    const json::value member = parse_or_abort(span);
    check(equal_json(member, kv.value()));
    if (member.is_number()) check_number(span, member);
    if (member.is_object()) check_object(span, member.get_object());
    if (member.is_array()) {
      // Arrays are not searched, but objects inside them are members' values too: reach them through a
      // wrapper so the scanner sees them as documents of their own.
      // (Only when serialising reads back as the same value: Boost writes an infinite double as 1e99999.)
      for (const auto& e : member.get_array()) {
        if (!e.is_object()) continue;
        const std::string wrapped = "{\"x\":" + json::serialize(e) + "}";
        std::string message;
        const auto again = bc::protocol::parse_json(wrapped, message);
        if (!again || !equal_json(again->at("x"), e)) continue;
        check_object(raw::find_member(wrapped, "x"), again->at("x").get_object());
      }
    }
    // Near misses of a key are found only when the DOM holds them.
    for (const std::string& other : {std::string(key) + "x", std::string(key.substr(0, key.size() / 2))}) {
      if (!obj.contains(other)) check(raw::find_member(text, other).empty());
    }
  }
  // All keys in one pass agree with one key at a time.
  std::vector<std::string_view> values(keys.size());
  raw::find_members(text, keys, values);
  for (std::size_t i = 0; i < keys.size(); ++i) check(values[i] == raw::find_member(text, keys[i]));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Any bytes: the scan stays inside them and ends.
  (void)raw::find_member(text, "payload");
  (void)raw::find_member(text, "id");
  (void)raw::key_equals(text, "payload");
  (void)raw::is_zero(text);

  std::string message;
  const auto doc = bc::protocol::parse_json(text, message);
  if (!doc || !doc->is_object()) {
    if (doc) check(raw::find_member(text, "").empty() && raw::find_member(text, "payload").empty());
    return 0;
  }
  check_object(text, doc->get_object());

  // The request parser, which uses the scanner, echoes the DOM's id and carries the DOM's payload.
  const auto parsed = bc::protocol::parse_request(text);
  if (parsed.req) {
    const auto& obj = doc->get_object();
    const auto* id = obj.if_contains("id");
    if (!parsed.req->id_json.empty()) {
      check(id != nullptr);
      check(equal_json(parse_or_abort(parsed.req->id_json), *id));
      check(parsed.req->id_json == raw::find_member(text, "id"));
    }
    if (!parsed.req->payload_json.empty()) {
      check(equal_json(parse_or_abort(parsed.req->payload_json), parsed.req->params.at("payload")));
    } else if (parsed.req->verb == bc::protocol::method::publish) {
      check(!parsed.req->params.contains("payload"));
    }
  }
  return 0;
}
