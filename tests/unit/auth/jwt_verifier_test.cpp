#include "auth/jwt_verifier.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "auth/base64url.hpp"
#include "auth/jwt_signer.hpp"

namespace bc::auth {
namespace {

namespace json = boost::json;

constexpr std::string_view k_secret = "test-secret-do-not-use-0123456789";
constexpr std::int64_t k_now = 1'700'000'000;
constexpr std::int64_t k_leeway = 30;

json::object valid_claims() {
  return {{"sub", "user-1"},
          {"aud", "broadcaster"},
          {"exp", k_now + 3600},
          {"iat", k_now - 10},
          {"authorizedChannels", json::array{"news", "chat:room-1"}},
          {"scope", json::array{"subscribe", "publish"}}};
}

std::string sign(const json::object& claims, std::string_view secret = k_secret) {
  return sign_hs256(secret, json::serialize(claims));
}

// HMAC-SHA256 computed here, independently of the code under test.
std::string hmac_b64(std::string_view secret, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &size);
  return base64url_encode({reinterpret_cast<const char*>(mac), size});
}

// A token from hand-written JSON, validly signed over whatever header it has.
std::string craft(std::string_view header, std::string_view payload, std::string_view secret = k_secret) {
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  return input + "." + hmac_b64(secret, input);
}

std::string valid_payload() {
  return json::serialize(valid_claims());
}

std::vector<std::string> parts_of(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = token.find('.', start)) != std::string::npos; start = dot + 1) {
    parts.push_back(token.substr(start, dot - start));
  }
  parts.push_back(token.substr(start));
  return parts;
}

class JwtVerifier : public ::testing::Test {
 protected:
  verify_result verify(std::string_view token, std::int64_t now = k_now) const {
    return verifier_.verify(token, now);
  }
  jwt_error error_of(std::string_view token, std::int64_t now = k_now) const {
    return verify(token, now).error;
  }
  jwt_error error_with(const char* key, json::value value, std::int64_t now = k_now) const {
    auto claims = valid_claims();
    claims[key] = std::move(value);
    return error_of(sign(claims), now);
  }
  jwt_error error_without(const char* key) const {
    auto claims = valid_claims();
    claims.erase(key);
    return error_of(sign(claims));
  }

  const jwt_verifier verifier_{std::string(k_secret), std::chrono::seconds(k_leeway)};
};

// --- a valid token
// ---------------------------------------------------------------------------------------------

TEST_F(JwtVerifier, AcceptsAValidToken) {
  const auto result = verify(sign(valid_claims()));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.error, jwt_error::none);
  EXPECT_EQ(result.claims.sub, "user-1");
  EXPECT_EQ(result.claims.exp, k_now + 3600);
  EXPECT_EQ(result.claims.authorized_channels, (std::vector<std::string>{"chat:room-1", "news"}));
  EXPECT_TRUE(result.claims.can_subscribe);
  EXPECT_TRUE(result.claims.can_publish);
}

TEST_F(JwtVerifier, AcceptsAHeaderWithoutTypOrWithOtherFields) {
  EXPECT_EQ(error_of(craft(R"({"alg":"HS256"})", valid_payload())), jwt_error::none);
  EXPECT_EQ(error_of(craft(R"({"typ":"at+jwt","kid":"k1","alg":"HS256"})", valid_payload())),
            jwt_error::none);
}

// RFC 7515 appendix A.1: an HS256 token signed by someone else. Its claims are not ours (no iat, no aud), so
// it must get past the signature and fail on the claims.
TEST_F(JwtVerifier, ChecksTheSignatureOfRfc7515ExampleA1) {
  std::string key;
  ASSERT_TRUE(base64url_decode(
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow", key));
  const jwt_verifier rfc_verifier(key);
  const std::string token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
      "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  EXPECT_EQ(rfc_verifier.verify(token, 1300819380).error, jwt_error::issued_in_future);
  EXPECT_EQ(rfc_verifier.verify(token, 1300819380).message, "token has no iat");
  std::string tampered = token;
  tampered.back() = 'g';  // 'k' -> 'g' changes a signature bit and keeps the unused low bits zero
  EXPECT_EQ(rfc_verifier.verify(tampered, 1300819380).error, jwt_error::bad_signature);
}

TEST_F(JwtVerifier, CopiesVerifyTheSame) {
  const jwt_verifier copy = verifier_;
  EXPECT_TRUE(copy.verify(sign(valid_claims()), k_now).ok());
  EXPECT_EQ(copy.verify(sign(valid_claims(), "other"), k_now).error, jwt_error::bad_signature);
}

TEST_F(JwtVerifier, VerifiesConcurrently) {
  const std::string good = sign(valid_claims());
  const std::string forged = sign(valid_claims(), "other");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (std::size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (!verifier_.verify(good, k_now).ok()) ++failures[t];
        if (verifier_.verify(forged, k_now).error != jwt_error::bad_signature) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// Each thread keeps one keyed HMAC state, re-initialised per token: a second verifier on the same thread, or
// a new one in the place of a destroyed one, must use its own key, and a token after a failure must not see
// what the failed one left in the state.
TEST_F(JwtVerifier, ThreadStateFollowsTheVerifier) {
  const std::string ours = sign(valid_claims());
  const std::string theirs = sign(valid_claims(), "other-secret");
  const jwt_verifier other("other-secret");
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(verifier_.verify(ours, k_now).ok());
    EXPECT_EQ(verifier_.verify(theirs, k_now).error, jwt_error::bad_signature);
    EXPECT_TRUE(other.verify(theirs, k_now).ok());
    EXPECT_EQ(other.verify(ours, k_now).error, jwt_error::bad_signature);
  }
  for (int i = 0; i < 3; ++i) {
    const std::string secret = "secret-" + std::to_string(i);
    const jwt_verifier fresh(secret);  // may take the address of the previous one
    EXPECT_TRUE(fresh.verify(sign(valid_claims(), secret), k_now).ok());
    EXPECT_EQ(fresh.verify(ours, k_now).error, jwt_error::bad_signature);
  }
  EXPECT_TRUE(verifier_.verify(ours, k_now).ok());
}

TEST(JwtVerifierSetup, RejectsAnEmptySecret) {
  EXPECT_THROW(jwt_verifier(std::string()), std::invalid_argument);
}

// --- structure: three non-empty base64url parts, JSON object header and payload
// --------------------------------

TEST_F(JwtVerifier, RejectsAWrongNumberOfParts) {
  const auto parts = parts_of(sign(valid_claims()));
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(error_of(""), jwt_error::malformed);
  EXPECT_EQ(error_of(parts[0]), jwt_error::malformed);
  EXPECT_EQ(error_of(parts[0] + "." + parts[1]), jwt_error::malformed);
  EXPECT_EQ(error_of(parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[2]), jwt_error::malformed);
  EXPECT_EQ(error_of(parts[0] + "." + parts[1] + "." + parts[2] + "."), jwt_error::malformed);
  EXPECT_EQ(error_of("." + parts[0] + "." + parts[1] + "." + parts[2]), jwt_error::malformed);
}

TEST_F(JwtVerifier, RejectsEmptyParts) {
  const auto parts = parts_of(sign(valid_claims()));
  EXPECT_EQ(error_of("." + parts[1] + "." + parts[2]), jwt_error::malformed);
  EXPECT_EQ(error_of(parts[0] + ".." + parts[2]), jwt_error::malformed);
  EXPECT_EQ(error_of(parts[0] + "." + parts[1] + "."), jwt_error::malformed);
  EXPECT_EQ(error_of(".."), jwt_error::malformed);
}

// The classic alg=none attack has an empty signature: refused on structure, before alg is even read.
TEST_F(JwtVerifier, RejectsAlgNoneWithEmptySignatureAsMalformed) {
  const std::string token =
      base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + base64url_encode(valid_payload()) + ".";
  EXPECT_EQ(error_of(token), jwt_error::malformed);
}

TEST_F(JwtVerifier, RejectsPartsThatAreNotBase64url) {
  const auto parts = parts_of(sign(valid_claims()));
  const auto join = [](const std::string& a, const std::string& b, const std::string& c) {
    return a + "." + b + "." + c;
  };
  EXPECT_EQ(error_of(join(parts[0] + "=", parts[1], parts[2])), jwt_error::malformed);
  EXPECT_EQ(error_of(join(parts[0], parts[1], parts[2] + "=")), jwt_error::malformed);
  EXPECT_EQ(error_of(join(parts[0], parts[1] + "==", parts[2])), jwt_error::malformed);
  EXPECT_EQ(error_of(join(parts[0], "ab+/" + parts[1], parts[2])), jwt_error::malformed);
  EXPECT_EQ(error_of(join(parts[0], parts[1], parts[2].substr(0, 42) + "*")), jwt_error::malformed);
  EXPECT_EQ(error_of(join(" " + parts[0], parts[1], parts[2])), jwt_error::malformed);
  std::string impossible_length = parts[1];
  while (impossible_length.size() % 4 != 1) impossible_length += 'A';
  EXPECT_EQ(error_of(join(parts[0], impossible_length, parts[2])), jwt_error::malformed);
  // A signature with non-zero unused bits: a second spelling of the same bytes, refused.
  EXPECT_EQ(error_of(join(parts[0], parts[1], parts[2].substr(0, 42) + "B")), jwt_error::malformed);
}

TEST_F(JwtVerifier, RejectsAHeaderThatIsNotAJsonObject) {
  EXPECT_EQ(error_of(craft("not json", valid_payload())), jwt_error::malformed);
  EXPECT_EQ(error_of(craft(R"(["alg","HS256"])", valid_payload())), jwt_error::malformed);
  EXPECT_EQ(error_of(craft(R"("HS256")", valid_payload())), jwt_error::malformed);
  EXPECT_EQ(error_of(craft(R"({"alg":"HS256")", valid_payload())), jwt_error::malformed);
  EXPECT_EQ(error_of(craft(R"({"alg":"HS256"} {})", valid_payload())), jwt_error::malformed);
}

TEST_F(JwtVerifier, RejectsAValidlySignedPayloadThatIsNotAJsonObject) {
  EXPECT_EQ(error_of(sign_hs256(k_secret, "not json")), jwt_error::malformed);
  EXPECT_EQ(error_of(sign_hs256(k_secret, "[1,2]")), jwt_error::malformed);
  EXPECT_EQ(error_of(sign_hs256(k_secret, "null")), jwt_error::malformed);
  EXPECT_EQ(error_of(sign_hs256(k_secret, R"({"sub":"a")")), jwt_error::malformed);
  EXPECT_EQ(error_of(sign_hs256(k_secret, "{\"sub\":\"\xff\"}")), jwt_error::malformed);  // invalid UTF-8
}

// --- alg: HS256 only
// -------------------------------------------------------------------------------------------

TEST_F(JwtVerifier, RejectsEveryAlgButHs256) {
  for (const char* header :
       {R"({"alg":"none"})", R"({"alg":"HS512","typ":"JWT"})", R"({"alg":"HS384"})", R"({"alg":"RS256"})",
        R"({"alg":"ES256"})", R"({"alg":"hs256"})", R"({"alg":"HS256 "})", R"({"alg":""})", R"({"alg":null})",
        R"({"alg":["HS256"]})", R"({"typ":"JWT"})", "{}"}) {
    EXPECT_EQ(error_of(craft(header, valid_payload())), jwt_error::unsupported_alg) << header;
  }
}

// alg none with a non-empty (even correct-looking) signature is still refused, for its alg.
TEST_F(JwtVerifier, RejectsAlgNoneWithASignature) {
  EXPECT_EQ(error_of(craft(R"({"alg":"none","typ":"JWT"})", valid_payload())), jwt_error::unsupported_alg);
}

TEST_F(JwtVerifier, ChecksAlgBeforeTheSignature) {
  EXPECT_EQ(error_of(craft(R"({"alg":"HS512"})", valid_payload(), "wrong secret")),
            jwt_error::unsupported_alg);
}

// RFC 7515 §4.1.11: we understand no extension, so any crit header is refused.
TEST_F(JwtVerifier, RejectsCriticalHeaderExtensions) {
  EXPECT_EQ(error_of(craft(R"({"alg":"HS256","crit":["exp"],"exp":1})", valid_payload())),
            jwt_error::malformed);
}

// --- signature
// -------------------------------------------------------------------------------------------------

TEST_F(JwtVerifier, RejectsATokenSignedWithAnotherSecret) {
  EXPECT_EQ(error_of(sign(valid_claims(), "another-secret")), jwt_error::bad_signature);
  EXPECT_EQ(error_of(sign(valid_claims(), std::string(k_secret) + "x")), jwt_error::bad_signature);
  EXPECT_EQ(error_of(sign(valid_claims(), k_secret.substr(1))), jwt_error::bad_signature);
}

TEST_F(JwtVerifier, RejectsATamperedPayload) {
  const auto parts = parts_of(sign(valid_claims()));
  auto claims = valid_claims();
  claims["sub"] = "admin";
  const std::string forged_payload = base64url_encode(json::serialize(claims));
  EXPECT_EQ(error_of(parts[0] + "." + forged_payload + "." + parts[2]), jwt_error::bad_signature);
}

TEST_F(JwtVerifier, RejectsATamperedHeader) {
  const auto parts = parts_of(sign(valid_claims()));
  const std::string other_header = base64url_encode(R"({"alg":"HS256"})");
  EXPECT_EQ(error_of(other_header + "." + parts[1] + "." + parts[2]), jwt_error::bad_signature);
}

TEST_F(JwtVerifier, RejectsATamperedSignature) {
  const std::string token = sign(valid_claims());
  // Every character but the last (whose low bits must stay zero, see RejectsPartsThatAreNotBase64url).
  for (std::size_t i = token.rfind('.') + 1; i + 1 < token.size(); ++i) {
    std::string tampered = token;
    tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(error_of(tampered), jwt_error::bad_signature) << i;
  }
}

TEST_F(JwtVerifier, RejectsASignatureOfTheWrongLength) {
  const auto parts = parts_of(sign(valid_claims()));
  const std::string head = parts[0] + "." + parts[1] + ".";
  std::string mac;
  ASSERT_TRUE(base64url_decode(parts[2], mac));
  ASSERT_EQ(mac.size(), 32u);
  EXPECT_EQ(error_of(head + base64url_encode(mac.substr(0, 31))), jwt_error::bad_signature);
  EXPECT_EQ(error_of(head + base64url_encode(mac + "x")), jwt_error::bad_signature);
  EXPECT_EQ(error_of(head + base64url_encode(mac + mac)), jwt_error::bad_signature);
  EXPECT_EQ(error_of(head + base64url_encode("x")), jwt_error::bad_signature);
}

// Nothing in the payload is looked at before the signature holds.
TEST_F(JwtVerifier, ChecksTheSignatureBeforeAnyClaim) {
  auto expired = valid_claims();
  expired["exp"] = k_now - 3600;
  EXPECT_EQ(error_of(sign(expired, "other")), jwt_error::bad_signature);
  auto no_sub = valid_claims();
  no_sub.erase("sub");
  EXPECT_EQ(error_of(sign(no_sub, "other")), jwt_error::bad_signature);
  EXPECT_EQ(error_of(sign_hs256("other", "not json")), jwt_error::bad_signature);
}

// --- time claims: exp, nbf, iat with leeway
// -------------------------------------------------------------------

TEST_F(JwtVerifier, RejectsAnExpiredTokenAfterTheLeeway) {
  auto claims = valid_claims();
  claims["exp"] = k_now;
  const std::string token = sign(claims);
  EXPECT_EQ(error_of(token, k_now), jwt_error::none);
  EXPECT_EQ(error_of(token, k_now + k_leeway), jwt_error::none);
  EXPECT_EQ(error_of(token, k_now + k_leeway + 1), jwt_error::expired);
  EXPECT_EQ(verify(token, k_now + k_leeway + 1).message, "token expired");
}

TEST_F(JwtVerifier, LeewayIsConfigurable) {
  const jwt_verifier strict(std::string(k_secret), std::chrono::seconds(0));
  auto claims = valid_claims();
  claims["exp"] = k_now;
  EXPECT_TRUE(strict.verify(sign(claims), k_now).ok());
  EXPECT_EQ(strict.verify(sign(claims), k_now + 1).error, jwt_error::expired);
}

TEST_F(JwtVerifier, TreatsAMissingOrNonNumericExpAsExpired) {
  EXPECT_EQ(error_without("exp"), jwt_error::expired);
  auto claims = valid_claims();
  claims.erase("exp");
  EXPECT_EQ(verify(sign(claims)).message, "token has no exp");
  EXPECT_EQ(error_with("exp", "1800000000"), jwt_error::expired);
  EXPECT_EQ(error_with("exp", nullptr), jwt_error::expired);
  EXPECT_EQ(error_with("exp", true), jwt_error::expired);
}

// Boost.JSON reads 0e40000005 as NaN (found by the jwt_verifier fuzzer); every comparison with NaN is false,
// so such an exp once meant a token that never expired, and such an nbf or iat was always in the past.
TEST_F(JwtVerifier, TreatsNonFiniteTimesAsInvalid) {
  const auto with = [](std::string_view claim, std::string_view literal) {
    auto claims = valid_claims();
    claims.erase(claim);
    std::string payload = json::serialize(claims);
    payload.insert(1, "\"" + std::string(claim) + "\":" + std::string(literal) + ",");
    return craft(R"({"alg":"HS256"})", payload);
  };
  for (const std::string_view literal : {"0e40000005", "-0e40000005", "1e400", "-1e400"}) {
    EXPECT_EQ(error_of(with("exp", literal)), jwt_error::expired) << literal;
    EXPECT_EQ(error_of(with("nbf", literal)), jwt_error::not_yet_valid) << literal;
    EXPECT_EQ(error_of(with("iat", literal)), jwt_error::issued_in_future) << literal;
  }
}

TEST_F(JwtVerifier, AcceptsFloatingPointTimes) {
  auto claims = valid_claims();
  claims["exp"] = static_cast<double>(k_now) + 0.5;
  claims["iat"] = static_cast<double>(k_now) - 0.25;
  claims["nbf"] = static_cast<double>(k_now) - 0.25;
  const std::string token = sign(claims);
  const auto result = verify(token);
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.claims.exp, k_now);  // rounded down
  EXPECT_EQ(error_of(token, k_now + k_leeway), jwt_error::none);
  EXPECT_EQ(error_of(token, k_now + k_leeway + 1), jwt_error::expired);
}

TEST_F(JwtVerifier, ClampsAnExpBeyondInt64) {
  auto claims = valid_claims();
  claims["exp"] = 1e300;
  auto result = verify(sign(claims));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.claims.exp, std::numeric_limits<std::int64_t>::max());
  claims["exp"] = std::numeric_limits<std::uint64_t>::max();
  result = verify(sign(claims));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.claims.exp, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(error_with("exp", -1e300), jwt_error::expired);
}

TEST_F(JwtVerifier, RejectsATokenIssuedInTheFuture) {
  EXPECT_EQ(error_with("iat", k_now + k_leeway), jwt_error::none);
  EXPECT_EQ(error_with("iat", k_now + k_leeway + 1), jwt_error::issued_in_future);
  EXPECT_EQ(error_with("iat", static_cast<double>(k_now + k_leeway) + 0.5), jwt_error::issued_in_future);
}

TEST_F(JwtVerifier, TreatsAMissingOrNonNumericIatAsIssuedInTheFuture) {
  EXPECT_EQ(error_without("iat"), jwt_error::issued_in_future);
  EXPECT_EQ(error_with("iat", "1700000000"), jwt_error::issued_in_future);
  EXPECT_EQ(error_with("iat", json::array{k_now}), jwt_error::issued_in_future);
}

TEST_F(JwtVerifier, HonoursNbfWhenPresent) {
  EXPECT_EQ(error_with("nbf", k_now), jwt_error::none);
  EXPECT_EQ(error_with("nbf", k_now + k_leeway), jwt_error::none);
  EXPECT_EQ(error_with("nbf", k_now + k_leeway + 1), jwt_error::not_yet_valid);
  EXPECT_EQ(error_with("nbf", "soon"), jwt_error::not_yet_valid);
  EXPECT_EQ(error_with("nbf", nullptr), jwt_error::not_yet_valid);
}

// --- audience
// --------------------------------------------------------------------------------------------------

TEST_F(JwtVerifier, RequiresTheBroadcasterAudience) {
  EXPECT_EQ(error_without("aud"), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", "other"), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", "Broadcaster"), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", ""), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", nullptr), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", json::array{}), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", json::array{"a", "b"}), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", json::array{json::array{"broadcaster"}}), jwt_error::wrong_audience);
  EXPECT_EQ(error_with("aud", json::object{{"broadcaster", true}}), jwt_error::wrong_audience);
}

TEST_F(JwtVerifier, AcceptsAnAudienceArrayContainingBroadcaster) {
  EXPECT_EQ(error_with("aud", json::array{"broadcaster"}), jwt_error::none);
  EXPECT_EQ(error_with("aud", json::array{"other", 42, "broadcaster"}), jwt_error::none);
}

// --- content claims: sub, authorizedChannels, scope
// ------------------------------------------------------------

TEST_F(JwtVerifier, RequiresANonEmptyStringSub) {
  EXPECT_EQ(error_without("sub"), jwt_error::missing_claim);
  EXPECT_EQ(error_with("sub", ""), jwt_error::missing_claim);
  EXPECT_EQ(error_with("sub", 42), jwt_error::missing_claim);
  EXPECT_EQ(error_with("sub", nullptr), jwt_error::missing_claim);
  auto claims = valid_claims();
  claims.erase("sub");
  EXPECT_EQ(verify(sign(claims)).message, "missing claim: sub");
}

TEST_F(JwtVerifier, RequiresAuthorizedChannels) {
  EXPECT_EQ(error_without("authorizedChannels"), jwt_error::missing_claim);
  auto claims = valid_claims();
  claims.erase("authorizedChannels");
  EXPECT_EQ(verify(sign(claims)).message, "missing claim: authorizedChannels");
}

TEST_F(JwtVerifier, RejectsAuthorizedChannelsThatAreNotANonEmptyArrayOfStrings) {
  EXPECT_EQ(error_with("authorizedChannels", "news"), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("authorizedChannels", nullptr), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("authorizedChannels", json::array{}), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("authorizedChannels", json::array{"news", 1}), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("authorizedChannels", json::array{"news", nullptr}), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("authorizedChannels", json::object{{"news", true}}), jwt_error::invalid_claim);
}

TEST_F(JwtVerifier, SortsAndDeduplicatesChannels) {
  auto claims = valid_claims();
  claims["authorizedChannels"] = json::array{"b", "a:x", "b", "c", "a:x", "a"};
  const auto result = verify(sign(claims));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.claims.authorized_channels, (std::vector<std::string>{"a", "a:x", "b", "c"}));
}

TEST_F(JwtVerifier, AuthorizesExactlyTheListedChannels) {
  auto claims = valid_claims();
  claims["authorizedChannels"] = json::array{"news", "chat:room-1", "user:abc_1", "a", "zz"};
  const auto result = verify(sign(claims));
  ASSERT_TRUE(result.ok()) << result.message;
  for (const char* channel : {"news", "chat:room-1", "user:abc_1", "a", "zz"}) {
    EXPECT_TRUE(result.claims.authorizes(channel)) << channel;
  }
  for (const char* channel :
       {"", "new", "newsx", "News", "chat", "chat:room-2", "chat:room-1:x", "b", "zzz"}) {
    EXPECT_FALSE(result.claims.authorizes(channel)) << channel;
  }
}

TEST_F(JwtVerifier, RequiresAScopeArray) {
  EXPECT_EQ(error_without("scope"), jwt_error::missing_claim);
  EXPECT_EQ(error_with("scope", "subscribe"), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("scope", nullptr), jwt_error::invalid_claim);
  EXPECT_EQ(error_with("scope", json::object{{"subscribe", true}}), jwt_error::invalid_claim);
}

TEST_F(JwtVerifier, ReadsScopeIgnoringUnknownAndNonStringEntries) {
  const auto scope_of = [this](json::array scope) {
    auto claims = valid_claims();
    claims["scope"] = std::move(scope);
    const auto result = verify(sign(claims));
    EXPECT_TRUE(result.ok()) << result.message;
    return std::pair{result.claims.can_subscribe, result.claims.can_publish};
  };
  EXPECT_EQ(scope_of({}), std::pair(false, false));
  EXPECT_EQ(scope_of({"subscribe"}), std::pair(true, false));
  EXPECT_EQ(scope_of({"publish"}), std::pair(false, true));
  EXPECT_EQ(scope_of({"publish", "subscribe"}), std::pair(true, true));
  EXPECT_EQ(scope_of({"admin", 7, nullptr, json::array{"publish"}, "Subscribe", "subscribe"}),
            std::pair(true, false));
}

// --- order of checks and error classes
// -------------------------------------------------------------------------

TEST_F(JwtVerifier, ReportsValidityProblemsBeforeMissingContent) {
  auto claims = valid_claims();
  claims.erase("sub");
  claims.erase("scope");
  claims["exp"] = k_now - 3600;
  EXPECT_EQ(error_of(sign(claims)), jwt_error::expired);
  claims["exp"] = k_now + 3600;
  claims["aud"] = "other";
  EXPECT_EQ(error_of(sign(claims)), jwt_error::wrong_audience);
  claims["aud"] = "broadcaster";
  claims["iat"] = k_now + 3600;
  EXPECT_EQ(error_of(sign(claims)), jwt_error::issued_in_future);
}

TEST_F(JwtVerifier, ChecksContentClaimsInOrder) {
  auto claims = valid_claims();
  claims.erase("sub");
  claims["authorizedChannels"] = 1;
  claims["scope"] = 1;
  EXPECT_EQ(verify(sign(claims)).message, "missing claim: sub");
  claims["sub"] = "u";
  EXPECT_EQ(error_of(sign(claims)), jwt_error::invalid_claim);
  EXPECT_EQ(verify(sign(claims)).message, "authorizedChannels must be a non-empty array of strings");
}

TEST(JwtError, MapsToProtocolErrorClasses) {
  EXPECT_FALSE(is_invalid_argument(jwt_error::malformed));
  EXPECT_FALSE(is_invalid_argument(jwt_error::unsupported_alg));
  EXPECT_FALSE(is_invalid_argument(jwt_error::bad_signature));
  EXPECT_FALSE(is_invalid_argument(jwt_error::expired));
  EXPECT_FALSE(is_invalid_argument(jwt_error::not_yet_valid));
  EXPECT_FALSE(is_invalid_argument(jwt_error::issued_in_future));
  EXPECT_FALSE(is_invalid_argument(jwt_error::wrong_audience));
  EXPECT_TRUE(is_invalid_argument(jwt_error::missing_claim));
  EXPECT_TRUE(is_invalid_argument(jwt_error::invalid_claim));
}

TEST(JwtError, HasShortStableNames) {
  EXPECT_EQ(to_string(jwt_error::none), "none");
  EXPECT_EQ(to_string(jwt_error::malformed), "malformed");
  EXPECT_EQ(to_string(jwt_error::unsupported_alg), "unsupported_alg");
  EXPECT_EQ(to_string(jwt_error::bad_signature), "bad_signature");
  EXPECT_EQ(to_string(jwt_error::expired), "expired");
  EXPECT_EQ(to_string(jwt_error::not_yet_valid), "not_yet_valid");
  EXPECT_EQ(to_string(jwt_error::issued_in_future), "issued_in_future");
  EXPECT_EQ(to_string(jwt_error::wrong_audience), "wrong_audience");
  EXPECT_EQ(to_string(jwt_error::missing_claim), "missing_claim");
  EXPECT_EQ(to_string(jwt_error::invalid_claim), "invalid_claim");
}

// --- messages
// --------------------------------------------------------------------------------------------------

TEST_F(JwtVerifier, GivesShortMessages) {
  EXPECT_EQ(verify("a.b").message, "token must be three non-empty parts");
  EXPECT_EQ(verify(craft(R"({"alg":"none"})", valid_payload())).message, "alg must be HS256");
  EXPECT_EQ(verify(sign(valid_claims(), "other")).message, "invalid signature");
  EXPECT_EQ(verify(sign(valid_claims()), k_now + 3600 + k_leeway + 1).message, "token expired");
  EXPECT_TRUE(verify(sign(valid_claims())).message.empty());
}

TEST_F(JwtVerifier, MessagesNeverQuoteTheTokenOrTheSecret) {
  auto claims = valid_claims();
  claims["sub"] = 12345678;
  std::vector<std::string> tokens = {
      sign(claims),
      sign(valid_claims(), "other-secret"),
      craft(R"({"alg":"RS256"})", valid_payload()),
      sign_hs256(k_secret, "not json at all"),
      sign(valid_claims()) + "=",
      sign(valid_claims()) + ".x",
  };
  for (const auto& token : tokens) {
    const auto result = verify(token);
    ASSERT_FALSE(result.ok());
    EXPECT_FALSE(result.message.empty());
    EXPECT_EQ(result.message.find(k_secret), std::string::npos);
    for (const auto& part : parts_of(token)) {
      if (part.size() >= 4) {
        EXPECT_EQ(result.message.find(part), std::string::npos) << result.message;
      }
    }
    EXPECT_EQ(result.message.find("12345678"), std::string::npos);
  }
}

// --- signer
// ----------------------------------------------------------------------------------------------------

// The example token from jwt.io, signed with its published secret.
TEST(SignHs256, MatchesAKnownToken) {
  EXPECT_EQ(sign_hs256("your-256-bit-secret", R"({"sub":"1234567890","name":"John Doe","iat":1516239022})"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
}

TEST(SignHs256, UsesTheFixedHeaderAndTheVerbatimPayload) {
  const auto parts = parts_of(sign_hs256("s", "{ \"x\" : 1 }"));
  ASSERT_EQ(parts.size(), 3u);
  std::string header, payload;
  ASSERT_TRUE(base64url_decode(parts[0], header));
  ASSERT_TRUE(base64url_decode(parts[1], payload));
  EXPECT_EQ(header, R"({"alg":"HS256","typ":"JWT"})");
  EXPECT_EQ(payload, "{ \"x\" : 1 }");
  EXPECT_EQ(parts[2], hmac_b64("s", parts[0] + "." + parts[1]));
}

}  // namespace
}  // namespace bc::auth

namespace bc::auth {
namespace {

// --- the info claim (PROTOCOL "(ext) Presence")

TEST_F(JwtVerifier, KeepsTheInfoClaimAsCompactJson) {
  EXPECT_EQ(verify(sign(valid_claims())).claims.info, "");  // none
  auto claims = valid_claims();
  claims["info"] = json::object{{"name", "Ann"}, {"n", 1}};
  const auto r = verify(sign(claims));
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(json::parse(r.claims.info), json::parse(R"({"name":"Ann","n":1})"));
  claims["info"] = "text";
  EXPECT_EQ(verify(sign(claims)).claims.info, R"("text")");
  claims["info"] = nullptr;
  EXPECT_EQ(verify(sign(claims)).claims.info, "null");
}

TEST_F(JwtVerifier, RefusesAnInfoClaimOverOneKiB) {
  EXPECT_EQ(error_with("info", json::string(std::string(1022, 'x'))), jwt_error::none);  // 1024 with quotes
  EXPECT_EQ(error_with("info", json::string(std::string(1023, 'x'))), jwt_error::invalid_claim);
  EXPECT_TRUE(is_invalid_argument(jwt_error::invalid_claim));
}

}  // namespace
}  // namespace bc::auth
