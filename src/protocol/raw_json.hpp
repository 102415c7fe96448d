#pragma once
// Finds the source text of members of a JSON object that Boost.JSON has already accepted, so that a payload
// is delivered, and a request id echoed, byte for byte as the client wrote them. Re-serialising the DOM
// instead loses what a double cannot hold: 18446744073709551617 became ...616, 1e-400 became 0, -0 became 0,
// and 1e400 (infinity) could not be written at all. Copying the span is also cheaper than serialising.
//
// Every function here assumes its input is one well-formed JSON value (checked first with parse_json, whose
// depth limit also bounds the nesting). On other input the answer is unspecified, but reads never leave the
// text and the scan never recurses.

#include <cstddef>
#include <span>
#include <string_view>

namespace bc::protocol::raw_json {

// The raw text of the value of member `key` of the object `object_text` is: from its first byte to its last,
// whitespace around it excluded, whitespace inside it kept. Empty when `object_text` is not an object or has
// no such member (a present value is never empty text).
//
// Keys are compared as Boost.JSON compares them, after decoding escapes: "pay\u006coad" is the key payload.
// With a duplicated key the last occurrence is the one found, because that is the member Boost.JSON 1.81's
// DOM keeps (object.ipp: "keeping the last of any duplicate keys"); the value a caller validated in the DOM
// and the text it delivers are therefore the same member.
std::string_view find_member(std::string_view object_text, std::string_view key);

// The same for several keys in one pass over the object: values[i] is the member named keys[i], or empty.
// `values` must be at least as long as `keys`.
void find_members(std::string_view object_text, std::span<const std::string_view> keys,
                  std::span<std::string_view> values);

// True when `key_text` (a key as written between its quotes, escapes undecoded) decodes to `key`.
bool key_equals(std::string_view key_text, std::string_view key);

// True when the JSON number `number_text` is zero, however it is spelled: 0, -0, 0.0, 0e5, -0.000E-7 (every
// digit of the mantissa is 0). 1e-400 is not zero, although a double reads it as 0. False for text that is
// not a number.
bool is_zero(std::string_view number_text);

}  // namespace bc::protocol::raw_json
