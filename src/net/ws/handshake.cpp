#include "net/ws/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>

#include "crypto/digest.hpp"

namespace bc::ws {
namespace {

constexpr std::string_view ws_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

}  // namespace

std::string accept_key(std::string_view sec_websocket_key) {
  std::string input;
  input.reserve(sec_websocket_key.size() + ws_guid.size());
  input.append(sec_websocket_key);
  input.append(ws_guid);

  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  if (!crypto::digest(crypto::algorithm::sha1, input, digest.data())) return {};

  // base64 of 20 bytes is 28 characters; EVP_EncodeBlock also writes a terminating NUL.
  std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> encoded{};
  const int n = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest.size()));
  return std::string(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n));
}

bool is_valid_client_key(std::string_view key) {
  // 16 bytes encode to 22 significant characters plus "==" padding. Like common decoders we do not insist
  // that the unused low bits of the 22nd character are zero.
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, is_base64_char);
}

}  // namespace bc::ws
