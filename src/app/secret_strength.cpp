#include "app/secret_strength.hpp"

#include <fmt/format.h>

namespace bc::app {

std::vector<std::string> weak_secret_warnings(std::string_view jwt_secret,
                                              const std::vector<std::string>& api_keys) {
  std::vector<std::string> out;
  if (!jwt_secret.empty() && jwt_secret.size() < min_jwt_secret_bytes) {
    out.push_back(fmt::format(
        "JWT_SECRET is shorter than {} bytes: whoever holds one token can search for the secret offline and "
        "then forge any token; use at least {} random bytes (openssl rand -hex 32)",
        min_jwt_secret_bytes, min_jwt_secret_bytes));
  }
  for (std::size_t i = 0; i < api_keys.size(); ++i) {
    if (api_keys[i].size() >= min_api_key_chars) continue;
    out.push_back(fmt::format(
        "API key {} of {} is shorter than {} characters: short keys can be guessed; use at least {} random "
        "characters (openssl rand -hex 16)",
        i + 1, api_keys.size(), min_api_key_chars, min_api_key_chars));
  }
  return out;
}

}  // namespace bc::app
