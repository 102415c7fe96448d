#include "net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

namespace bc::net {

namespace {
std::string openssl_error(const std::string& what) {
  char buf[256] = "unknown error";
  if (const unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return what + ": " + buf;
}
}  // namespace

tls_context::tls_context(const std::string& cert_chain_file, const std::string& key_file)
    : ctx_(SSL_CTX_new(TLS_server_method())) {
  if (!ctx_) throw std::runtime_error(openssl_error("TLS context"));
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // Partial writes and moving buffers fit the gather-write queue; released buffers keep idle TLS
  // connections small (OpenSSL frees its 16 KiB read/write buffers between records).
  SSL_CTX_set_mode(
      ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx_, cert_chain_file.c_str()) != 1) {
    SSL_CTX_free(ctx_);
    throw std::runtime_error(openssl_error("TLS certificate " + cert_chain_file));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx_) != 1) {
    SSL_CTX_free(ctx_);
    throw std::runtime_error(openssl_error("TLS key " + key_file));
  }
}

tls_context::~tls_context() {
  SSL_CTX_free(ctx_);
}

}  // namespace bc::net
