#include "auth/api_keys.hpp"

#include <openssl/crypto.h>

#include <stdexcept>

#include "crypto/digest.hpp"

namespace bc::auth {
namespace {

bool sha256(std::string_view data, unsigned char* out) {
  return crypto::digest(crypto::algorithm::sha256, data, out);
}

}  // namespace

api_keys::api_keys(std::vector<std::string> keys) {
  digests_.reserve(keys.size());
  for (auto& key : keys) {
    if (key.empty()) continue;
    if (!sha256(key, digests_.emplace_back().data())) throw std::runtime_error("SHA-256 failed");
    OPENSSL_cleanse(key.data(), key.size());  // our copy; the digest is all we keep
  }
}

bool api_keys::check(std::string_view presented) const {
  digest presented_digest;
  if (!sha256(presented, presented_digest.data())) return false;
  unsigned matched = 0;
  for (const auto& d : digests_) {
    matched |= static_cast<unsigned>(CRYPTO_memcmp(d.data(), presented_digest.data(), d.size()) == 0);
  }
  return matched != 0;
}

}  // namespace bc::auth
