// libFuzzer target for auth::jwt_verifier (and the base64url codec under it).
//
// The first input byte picks how the rest becomes a token:
//   0: the rest is the token text, as a client would send it (structure, base64url, header, signature
//   checks); 1: the rest is "<header JSON>\n<payload JSON>", encoded and correctly signed with the verifier's
//   secret, so
//      the fuzzer reaches the header and claim checks that a forged signature would never get past;
//   2: the rest is a payload JSON, signed under the standard {"alg":"HS256","typ":"JWT"} header.
// The clock is fixed so runs reproduce. Every verdict must be consistent: an accepted token has a non-empty
// sub, a non-empty sorted and de-duplicated channel list that authorizes() each entry, and no message; a
// refused one has an error and a message. Any violation aborts.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/base64url.hpp"
#include "auth/jwt_signer.hpp"
#include "auth/jwt_verifier.hpp"

namespace {

using namespace bc::auth;

constexpr std::string_view k_secret = "fuzz-secret-0123456789";
constexpr std::int64_t k_now = 1'700'000'000;

void check(bool condition) {
  if (!condition) std::abort();
}

std::string hmac_b64(std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), k_secret.data(), static_cast<int>(k_secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &size);
  return base64url_encode({reinterpret_cast<const char*>(mac), size});
}

void check_base64url(std::string_view bytes) {
  const std::string encoded = base64url_encode(bytes);
  check(encoded.find('=') == std::string::npos);
  std::string decoded;
  check(base64url_decode(encoded, decoded));
  check(decoded == bytes);
  // Decoding arbitrary text must stay in bounds and, when it succeeds, re-encode to the same text
  // (strictness).
  std::string out;
  if (base64url_decode(bytes, out)) check(base64url_encode(out) == bytes);
}

void check_verdict(const verify_result& r) {
  if (r.ok()) {
    check(r.message.empty());
    check(!r.claims.sub.empty());
    const auto& ch = r.claims.authorized_channels;
    check(!ch.empty());
    check(std::is_sorted(ch.begin(), ch.end()));
    check(std::adjacent_find(ch.begin(), ch.end()) == ch.end());
    for (const auto& c : ch) check(r.claims.authorizes(c));
    check(r.claims.exp >= k_now - 30);  // not expired, leeway included
  } else {
    check(r.error != jwt_error::none);
    check(!r.message.empty());
    check(!to_string(r.error).empty());  // every error has a name
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const jwt_verifier verifier{std::string(k_secret)};
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  check_base64url(rest);

  std::string token;
  switch (data[0] % 3) {
    case 0:
      token = std::string(rest);
      break;
    case 1: {
      const auto nl = rest.find('\n');
      const std::string_view header = rest.substr(0, nl);
      const std::string_view payload =
          nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      token = base64url_encode(header) + "." + base64url_encode(payload);
      token += "." + hmac_b64(token);
      break;
    }
    default:
      token = sign_hs256(k_secret, rest);
      break;
  }

  const verify_result r = verifier.verify(token, k_now);
  check_verdict(r);
  // Deterministic: the same token gets the same verdict.
  const verify_result again = verifier.verify(token, k_now);
  check(again.error == r.error && again.message == r.message && again.claims.sub == r.claims.sub &&
        again.claims.authorized_channels == r.claims.authorized_channels && again.claims.exp == r.claims.exp);
  if (r.ok() && data[0] % 3 != 0) {
    // A valid token is refused once its signature is touched.
    std::string forged = token;
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    check(!verifier.verify(forged, k_now).ok());
  }
  return 0;
}
