// Verification of the HS256 JWTs clients present in `auth` (docs/protocol.md, "Authentication").
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bc::auth {

// Why a token was refused. Every value but missing_claim/invalid_claim maps to the protocol's
// Unauthenticated. Numbered from 0 without gaps: the per-reason counters are indexed by it.
enum class jwt_error {
  none,
  malformed,         // not three non-empty base64url parts, or a header/payload that is not a JSON object
  unsupported_alg,   // header alg is anything but "HS256" (including "none" and a missing alg)
  bad_signature,     // HMAC mismatch, or a signature that is not 32 bytes
  expired,           // now > exp + leeway; also a missing or non-numeric exp
  not_yet_valid,     // nbf > now + leeway; also a non-numeric nbf
  issued_in_future,  // iat > now + leeway; also a missing or non-numeric iat
  wrong_audience,    // aud is neither "broadcaster" nor an array containing it
  missing_claim,     // sub missing/empty/not a string; authorizedChannels or scope missing
  invalid_claim,     // authorizedChannels not a non-empty array of strings; scope not an array; info too big
};

// Short, stable reason for logs and metrics labels: "malformed", "expired", ...; empty for a number that is
// no jwt_error. No default and -Wswitch as an error: a new value without a name does not compile. The metrics
// size their per-reason counters by the named values (util::enum_count).
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
constexpr std::string_view to_string(jwt_error error) {
  switch (error) {
    case jwt_error::none:
      return "none";
    case jwt_error::malformed:
      return "malformed";
    case jwt_error::unsupported_alg:
      return "unsupported_alg";
    case jwt_error::bad_signature:
      return "bad_signature";
    case jwt_error::expired:
      return "expired";
    case jwt_error::not_yet_valid:
      return "not_yet_valid";
    case jwt_error::issued_in_future:
      return "issued_in_future";
    case jwt_error::wrong_audience:
      return "wrong_audience";
    case jwt_error::missing_claim:
      return "missing_claim";
    case jwt_error::invalid_claim:
      return "invalid_claim";
  }
  return {};
}
#pragma GCC diagnostic pop

// True when the protocol answers InvalidArgument (missing_claim, invalid_claim), false for Unauthenticated.
bool is_invalid_argument(jwt_error error);

// What a verified token allows.
struct claims {
  std::string sub;
  std::int64_t exp = 0;  // unix seconds, the token's exp rounded down, without the leeway
  std::vector<std::string> authorized_channels;  // as given in the token, deduplicated, sorted
  bool can_subscribe = false;
  bool can_publish = false;
  // The info claim (PROTOCOL "(ext) Presence") as compact JSON text; empty when the token has none.
  std::string info;

  bool authorizes(std::string_view channel) const;
};

struct verify_result {
  jwt_error error = jwt_error::none;
  std::string message;  // human readable, safe to send to the client: never quotes the token or the secret
  auth::claims claims;  // valid only when error == none (qualified: a plain `claims claims;` is ill-formed)

  bool ok() const { return error == jwt_error::none; }
};

// Checks, in this order: structure, alg, signature, then exp/nbf/iat/aud (Unauthenticated class), then sub,
// authorizedChannels, scope and info (InvalidArgument class). The payload is parsed only once its signature
// holds.
//
// Immutable after construction: verify() may run on any number of threads at once, and copies share the keyed
// HMAC state (OpenSSL documents concurrent use through const APIs such as EVP_MAC_CTX_dup as safe). Each
// thread verifies on a copy of that state of its own, made once (see signature_matches).
class jwt_verifier {
 public:
  // Throws std::invalid_argument for an empty secret (it would let anyone sign tokens) and std::runtime_error
  // if OpenSSL cannot set up HMAC-SHA256.
  explicit jwt_verifier(std::string secret, std::chrono::seconds leeway = std::chrono::seconds(30));

  verify_result verify(std::string_view token, std::int64_t now_unix_seconds) const;

 private:
  bool signature_matches(std::string_view signing_input, std::string_view signature) const;
  // This thread's copy of keyed_mac_, made on the first verify of this verifier (or its copies) here.
  EVP_MAC_CTX* thread_mac() const;

  // HMAC-SHA256 keyed with the secret, never updated: each thread works on a copy, so the secret is not
  // re-hashed into the pads per token and the secret itself need not be kept.
  std::shared_ptr<EVP_MAC_CTX> keyed_mac_;
  // Tells this verifier's keyed state from any other's (a new one may reuse a freed one's address): the key
  // of the per-thread copy. Copies of a verifier share it, as they share keyed_mac_.
  std::uint64_t id_;
  double leeway_;
};

}  // namespace bc::auth
