#include "auth/jwt_signer.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

#include "auth/base64url.hpp"

namespace bc::auth {

std::string sign_hs256(std::string_view secret, std::string_view payload_json) {
  std::string token = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  token += '.';
  token += base64url_encode(payload_json);

  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(token.data()), token.size(), mac, &mac_size) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  token += '.';
  token += base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_size));
  return token;
}

}  // namespace bc::auth
