#include "auth/jwt_verifier.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "auth/base64url.hpp"

namespace bc::auth {
namespace json = boost::json;

namespace {

constexpr std::string_view k_audience = "broadcaster";
constexpr std::size_t k_mac_size = 32;
constexpr std::size_t max_info_bytes = 1024;  // the info claim, as compact JSON (PROTOCOL "(ext) Presence")

// A check's verdict; messages are string literals, so failing costs no formatting.
struct outcome {
  jwt_error error = jwt_error::none;
  std::string_view message;
};

verify_result fail(outcome o) {
  return verify_result{o.error, std::string(o.message), {}};
}

// Exactly three non-empty parts.
bool split(std::string_view token, std::array<std::string_view, 3>& parts) {
  for (std::size_t i = 0; i < 2; ++i) {
    const auto dot = token.find('.');
    if (dot == std::string_view::npos) return false;
    parts[i] = token.substr(0, dot);
    token.remove_prefix(dot + 1);
  }
  parts[2] = token;
  return token.find('.') == std::string_view::npos &&
         std::none_of(parts.begin(), parts.end(), [](std::string_view p) { return p.empty(); });
}

std::optional<json::object> parse_object(std::string_view text, json::memory_resource* arena) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, arena);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

outcome check_header(std::string_view text, json::memory_resource* arena) {
  const auto header = parse_object(text, arena);
  if (!header) return {jwt_error::malformed, "header is not a JSON object"};
  const auto* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
    return {jwt_error::unsupported_alg, "alg must be HS256"};
  }
  // RFC 7515 §4.1.11: a token with extensions we would have to understand must be refused.
  if (header->contains("crit")) return {jwt_error::malformed, "crit header is not supported"};
  return {};
}

// JSON numbers may be integers or floating point; nullopt for anything else. Boost.JSON reads a literal such
// as 0e40000005 as NaN, and a NaN exp would compare as never expired: not a number for a claim.
std::optional<double> as_number(const json::value* v) {
  if (v == nullptr || !v->is_number()) return std::nullopt;
  const double d = v->to_number<double>();
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

std::int64_t whole_seconds(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  constexpr double k_max = 9223372036854775807.0;  // rounds to 2^63, the first value out of range
  const double d = std::floor(v.to_number<double>());
  if (d >= k_max) return std::numeric_limits<std::int64_t>::max();
  if (d < -k_max) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(d);
}

bool audience_ok(const json::value* aud) {
  if (aud == nullptr) return false;
  if (aud->is_string()) return aud->get_string() == k_audience;
  if (!aud->is_array()) return false;
  const auto& list = aud->get_array();
  return std::any_of(list.begin(), list.end(),
                     [](const json::value& v) { return v.is_string() && v.get_string() == k_audience; });
}

// Whether the token is valid now and meant for us; a failure here is always Unauthenticated, which is why a
// missing exp or iat counts as expired / issued_in_future rather than as a missing claim.
outcome check_validity(const json::object& payload, double now, double leeway) {
  const auto* exp_value = payload.if_contains("exp");
  const auto exp = as_number(exp_value);
  if (!exp) return {jwt_error::expired, exp_value ? "exp must be a number" : "token has no exp"};
  if (now > *exp + leeway) return {jwt_error::expired, "token expired"};

  if (const auto* nbf_value = payload.if_contains("nbf")) {
    const auto nbf = as_number(nbf_value);
    if (!nbf) return {jwt_error::not_yet_valid, "nbf must be a number"};
    if (*nbf > now + leeway) return {jwt_error::not_yet_valid, "token not yet valid"};
  }

  const auto* iat_value = payload.if_contains("iat");
  const auto iat = as_number(iat_value);
  if (!iat) return {jwt_error::issued_in_future, iat_value ? "iat must be a number" : "token has no iat"};
  if (*iat > now + leeway) return {jwt_error::issued_in_future, "token issued in the future"};

  if (!audience_ok(payload.if_contains("aud"))) return {jwt_error::wrong_audience, "aud must be broadcaster"};
  return {};
}

outcome read_channels(const json::value* value, std::vector<std::string>& out) {
  if (value == nullptr) return {jwt_error::missing_claim, "missing claim: authorizedChannels"};
  constexpr outcome invalid{jwt_error::invalid_claim,
                            "authorizedChannels must be a non-empty array of strings"};
  if (!value->is_array() || value->get_array().empty()) return invalid;
  const auto& list = value->get_array();
  out.reserve(list.size());
  for (const auto& v : list) {
    if (!v.is_string()) return invalid;
    out.emplace_back(v.get_string());
  }
  // Sorted and unique so that authorizes() is a binary search.
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return {};
}

outcome read_scope(const json::value* value, claims& out) {
  if (value == nullptr) return {jwt_error::missing_claim, "missing claim: scope"};
  if (!value->is_array()) return {jwt_error::invalid_claim, "scope must be an array"};
  // Unknown and non-string entries are ignored so that newer token issuers keep working.
  for (const auto& v : value->get_array()) {
    const auto* name = v.if_string();
    if (name && *name == "subscribe") out.can_subscribe = true;
    if (name && *name == "publish") out.can_publish = true;
  }
  return {};
}

// Any JSON value, kept as compact text for presence answers and join/leave events; its size is judged on that
// text (what every member list repeats), at most max_info_bytes.
outcome read_info(const json::value* value, claims& out) {
  if (value == nullptr) return {};
  out.info = json::serialize(*value);
  if (out.info.size() > max_info_bytes) {
    out.info.clear();
    return {jwt_error::invalid_claim, "info must be at most 1024 bytes of JSON"};
  }
  return {};
}

outcome read_content(const json::object& payload, claims& out) {
  const auto* sub = payload.if_contains("sub");
  if (sub == nullptr) return {jwt_error::missing_claim, "missing claim: sub"};
  if (!sub->is_string() || sub->get_string().empty()) {
    return {jwt_error::missing_claim, "sub must be a non-empty string"};
  }
  out.sub = sub->get_string();
  if (auto o = read_channels(payload.if_contains("authorizedChannels"), out.authorized_channels);
      o.error != jwt_error::none) {
    return o;
  }
  if (auto o = read_scope(payload.if_contains("scope"), out); o.error != jwt_error::none) return o;
  return read_info(payload.if_contains("info"), out);
}

struct mac_ctx_free {
  void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};

std::uint64_t next_verifier_id() {
  static std::atomic<std::uint64_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) + 1;  // 0: no verifier
}

}  // namespace

bool is_invalid_argument(jwt_error error) {
  return error == jwt_error::missing_claim || error == jwt_error::invalid_claim;
}

bool claims::authorizes(std::string_view channel) const {
  return std::binary_search(authorized_channels.begin(), authorized_channels.end(), channel);
}

jwt_verifier::jwt_verifier(std::string secret, std::chrono::seconds leeway)
    : id_(next_verifier_id()), leeway_(static_cast<double>(leeway.count())) {
  if (secret.empty()) throw std::invalid_argument("JWT secret must not be empty");
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  keyed_mac_.reset(mac ? EVP_MAC_CTX_new(mac) : nullptr, mac_ctx_free{});
  EVP_MAC_free(mac);  // the context holds its own reference
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  const bool ready =
      keyed_mac_ && EVP_MAC_init(keyed_mac_.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                                 secret.size(), params) == 1;
  OPENSSL_cleanse(secret.data(), secret.size());  // the keyed context is all we need from here on
  if (!ready) throw std::runtime_error("cannot set up HMAC-SHA256");
}

// Copying the keyed context per token (EVP_MAC_CTX_dup: a context, the HMAC state and its three digest
// contexts allocated, copied and freed) cost more than the hashing of a short token. A thread keeps one copy
// and re-initialises it with the key it already holds (EVP_MAC_init without a key restarts from the inner
// pad), so a verify allocates nothing here. One slot per thread: a thread that alternates between verifiers
// (tests, never the server) copies again on each switch.
EVP_MAC_CTX* jwt_verifier::thread_mac() const {
  struct slot {
    std::uint64_t owner = 0;
    std::unique_ptr<EVP_MAC_CTX, mac_ctx_free> mac;
  };
  thread_local slot mine;
  if (mine.owner != id_) {
    mine.mac.reset(EVP_MAC_CTX_dup(keyed_mac_.get()));
    mine.owner = mine.mac ? id_ : 0;
  }
  return mine.mac.get();
}

bool jwt_verifier::signature_matches(std::string_view signing_input, std::string_view signature) const {
  if (signature.size() != k_mac_size) return false;
  std::array<unsigned char, k_mac_size> expected;
  std::size_t expected_size = 0;
  EVP_MAC_CTX* const mac = thread_mac();
  const bool computed = mac != nullptr && EVP_MAC_init(mac, nullptr, 0, nullptr) == 1 &&
                        EVP_MAC_update(mac, reinterpret_cast<const unsigned char*>(signing_input.data()),
                                       signing_input.size()) == 1 &&
                        EVP_MAC_final(mac, expected.data(), &expected_size, expected.size()) == 1 &&
                        expected_size == k_mac_size;
  // Constant time, so response timing does not reveal how much of a forged signature was right.
  return computed && CRYPTO_memcmp(expected.data(), signature.data(), k_mac_size) == 0;
}

verify_result jwt_verifier::verify(std::string_view token, std::int64_t now_unix_seconds) const {
  std::array<std::string_view, 3> parts;
  if (!split(token, parts)) return fail({jwt_error::malformed, "token must be three non-empty parts"});

  // One buffer holds the three decoded parts: header, payload, signature.
  const std::size_t header_size = base64url_decoded_size(parts[0].size());
  const std::size_t payload_size = base64url_decoded_size(parts[1].size());
  std::string decoded(header_size + payload_size + base64url_decoded_size(parts[2].size()), '\0');
  char* const header = decoded.data();
  char* const payload = header + header_size;
  char* const signature = payload + payload_size;
  if (!base64url_decode(parts[0], header) || !base64url_decode(parts[1], payload) ||
      !base64url_decode(parts[2], signature)) {
    return fail({jwt_error::malformed, "token is not base64url"});
  }

  // Typical header and payload fit here, so parsing does not touch the heap.
  unsigned char arena_buffer[4096];
  json::monotonic_resource arena(arena_buffer, sizeof arena_buffer);
  if (const auto o = check_header({header, header_size}, &arena); o.error != jwt_error::none) return fail(o);

  const std::string_view signing_input = token.substr(0, parts[0].size() + 1 + parts[1].size());
  if (!signature_matches(signing_input, {signature, decoded.size() - header_size - payload_size})) {
    return fail({jwt_error::bad_signature, "invalid signature"});
  }

  // Only now is the payload the issuer's, and worth parsing.
  const auto payload_json = parse_object({payload, payload_size}, &arena);
  if (!payload_json) return fail({jwt_error::malformed, "payload is not a JSON object"});
  if (const auto o = check_validity(*payload_json, static_cast<double>(now_unix_seconds), leeway_);
      o.error != jwt_error::none) {
    return fail(o);
  }
  verify_result result;
  if (const auto o = read_content(*payload_json, result.claims); o.error != jwt_error::none) return fail(o);
  result.claims.exp = whole_seconds(*payload_json->if_contains("exp"));
  return result;
}

}  // namespace bc::auth
