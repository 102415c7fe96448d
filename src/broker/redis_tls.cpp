#include "broker/redis_tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <stdexcept>

namespace bc::broker {

namespace ssl = boost::asio::ssl;

namespace {

void load(const char* what, const std::string& file,
          const std::function<void(boost::system::error_code&)>& f) {
  boost::system::error_code ec;
  f(ec);
  if (ec) throw std::runtime_error("cannot load " + std::string(what) + " " + file + ": " + ec.message());
}

}  // namespace

redis_tls::redis_tls(const redis_tls_options& opts) : opts_(opts), ctx_(ssl::context::tls_client) {
  ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (opts_.ca_file.empty()) {
    load("the system trust store", "(default paths)", [&](auto& ec) { ctx_.set_default_verify_paths(ec); });
  } else {
    load("REDIS_TLS_CA_FILE", opts_.ca_file, [&](auto& ec) { ctx_.load_verify_file(opts_.ca_file, ec); });
  }
  if (opts_.cert_file.empty() != opts_.key_file.empty()) {
    throw std::runtime_error("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both or neither");
  }
  if (!opts_.cert_file.empty()) {
    load("REDIS_TLS_CERT_FILE", opts_.cert_file,
         [&](auto& ec) { ctx_.use_certificate_chain_file(opts_.cert_file, ec); });
    boost::system::error_code ec;
    ctx_.use_private_key_file(opts_.key_file, ssl::context::pem, ec);
    if (ec && ec.message().find("mismatch") == std::string::npos) {
      throw std::runtime_error("cannot load REDIS_TLS_KEY_FILE " + opts_.key_file + ": " + ec.message());
    }
    if (ec || SSL_CTX_check_private_key(ctx_.native_handle()) != 1) {
      throw std::runtime_error("REDIS_TLS_KEY_FILE " + opts_.key_file +
                               " does not match REDIS_TLS_CERT_FILE " + opts_.cert_file);
    }
  }
  ctx_.set_verify_mode(opts_.insecure_skip_verify ? ssl::verify_none : ssl::verify_peer);
}

bool redis_tls::prepare(SSL* ssl, const std::string& host) const {
  const std::string& name = name_for(host);
  boost::system::error_code ec;
  const bool is_address = (boost::asio::ip::make_address(name, ec), !ec);
  if (!is_address && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return false;
  if (!verifying()) return true;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_address) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) == 1;
}

}  // namespace bc::broker
