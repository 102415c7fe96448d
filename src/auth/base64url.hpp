// Unpadded base64url (RFC 4648 §5), the encoding of every part of a compact JWT (RFC 7515 §2).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bc::auth {

// Encodes without '=' padding.
std::string base64url_encode(std::string_view data);

// Bytes that `encoded_size` characters decode to. Meaningless when encoded_size % 4 == 1 (decode rejects it).
constexpr std::size_t base64url_decoded_size(std::size_t encoded_size) {
  return encoded_size / 4 * 3 + encoded_size % 4 * 3 / 4;
}

// Decoding is strict, so that each byte string has exactly one accepted encoding (a JWT signature cannot be
// re-spelled): only the 64 url-safe characters, no '=' padding, no whitespace, length % 4 != 1, and the
// unused low bits of the last character must be zero.
//
// Writes exactly base64url_decoded_size(text.size()) bytes to `out`. On false, `out` may be partly written.
bool base64url_decode(std::string_view text, char* out);
// Replaces the contents of `out`; on false, `out` is unspecified.
bool base64url_decode(std::string_view text, std::string& out);

}  // namespace bc::auth
