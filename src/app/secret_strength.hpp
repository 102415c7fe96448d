#pragma once
// Checks the strength of the configured secrets. A short JWT secret can be searched for offline by anyone who
// holds one token, and then every token can be forged; a short API key can be guessed online. These are
// warnings only: deployments of the original service carry their secrets over and must keep starting.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace bc::app {

inline constexpr std::size_t min_jwt_secret_bytes = 32;
inline constexpr std::size_t min_api_key_chars = 16;

// One sentence per weak secret: the JWT secret under min_jwt_secret_bytes, each API key under
// min_api_key_chars. Names the secret by its setting and the key by its position, never by its value or its
// length (the key store hides the keys' lengths too). An empty secret or key list (not configured) gives no
// warning.
std::vector<std::string> weak_secret_warnings(std::string_view jwt_secret,
                                              const std::vector<std::string>& api_keys);

}  // namespace bc::app
