#pragma once

#include <openssl/types.h>

#include <string>

namespace bc::net {

// The server's TLS configuration: certificate chain and key, TLS 1.2+, connections that release their
// buffers while idle. Built at start-up (throws on a bad file), then shared read-only by every thread.
class tls_context {
 public:
  tls_context(const std::string& cert_chain_file, const std::string& key_file);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  SSL_CTX* native() const { return ctx_; }

 private:
  SSL_CTX* ctx_;
};

}  // namespace bc::net
