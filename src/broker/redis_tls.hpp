#pragma once
// TLS to Redis (rediss://): the client context shared by every TLS connection of the broker.

#include <boost/asio/ssl/context.hpp>
#include <string>

#include "broker/redis_options.hpp"

typedef struct ssl_st SSL;

namespace bc::broker {

// Built once at start-up from the REDIS_TLS_* settings (redis_tls_options): the trust store
// (REDIS_TLS_CA_FILE, else the system's), the client certificate for servers with `tls-auth-clients yes`,
// TLS 1.2 at least. Each connection then asks prepare() to set SNI and the name its peer's certificate must
// carry: the configured server name, else the host the connection goes to (an IP address is checked against
// the certificate's IP entries, and sent without SNI, which RFC 6066 does not allow for addresses).
//
// Thread-safety: prepare() and context() from any thread once built (OpenSSL's SSL_CTX is shared read-only).
class redis_tls {
 public:
  // Throws std::runtime_error naming the file that cannot be loaded (never a password).
  explicit redis_tls(const redis_tls_options& opts);

  boost::asio::ssl::context& context() { return ctx_; }
  bool verifying() const { return !opts_.insecure_skip_verify; }
  // The name checked for a connection to `host`.
  const std::string& name_for(const std::string& host) const {
    return opts_.server_name.empty() ? host : opts_.server_name;
  }
  // SNI and the verification of one connection to `host`. False if OpenSSL refused the name.
  bool prepare(SSL* ssl, const std::string& host) const;

 private:
  redis_tls_options opts_;
  boost::asio::ssl::context ctx_;
};

}  // namespace bc::broker
