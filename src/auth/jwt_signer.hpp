// Makes HS256 JWTs: the server's dev mode prints one as a sample, and tests build their tokens with it.
#pragma once

#include <string>
#include <string_view>

namespace bc::auth {

// Returns the compact JWT base64url({"alg":"HS256","typ":"JWT"}).base64url(payload_json).signature.
// payload_json is signed byte for byte and not validated, so tests can also sign payloads the verifier must
// reject. Throws std::runtime_error only if OpenSSL fails (out of memory).
std::string sign_hs256(std::string_view secret, std::string_view payload_json);

}  // namespace bc::auth
