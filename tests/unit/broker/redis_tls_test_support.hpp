#pragma once
// TLS material for the Redis TLS tests, made with the openssl command at test time: a CA, a server
// certificate for localhost / 127.0.0.1 signed by it, a client certificate signed by it, and a second,
// unrelated CA (the "wrong CA").

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "redis_test_support.hpp"

namespace bc::broker::redis_test {

class tls_material {
 public:
  tls_material() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bc-redis-tls-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    const std::string d = "'" + dir_ + "'";
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; cd " + d + "; openssl req -x509" + ec +
        " -keyout ca.key -out ca.crt -days 2 -subj '/CN=bc test CA'" + "; openssl req -x509" + ec +
        " -keyout other-ca.key -out other-ca.crt -days 2 -subj '/CN=bc other CA'" +
        "; printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext" + "; openssl req" + ec +
        " -keyout server.key -out server.csr -subj '/CN=localhost'" +
        "; openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2"
        " -extfile server.ext" +
        "; openssl req" + ec + " -keyout client.key -out client.crt.csr -subj '/CN=broadcaster'" +
        "; openssl x509 -req -in client.crt.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt"
        " -days 2" +
        "; chmod 644 *.key";
    const std::string cmd = "(" + script + ") >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      throw std::runtime_error("openssl could not make the test certificates");
  }
  ~tls_material() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  tls_material(const tls_material&) = delete;
  tls_material& operator=(const tls_material&) = delete;

  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  std::string ca() const { return file("ca.crt"); }
  std::string other_ca() const { return file("other-ca.crt"); }
  std::string client_cert() const { return file("client.crt"); }
  std::string client_key() const { return file("client.key"); }

  // redis-server options: TLS on `tls_port` (the plain port stays, for redis_probe).
  std::vector<std::string> server_args(int tls_port, bool auth_clients) const {
    return {"--tls-port",         std::to_string(tls_port),   "--tls-cert-file",    file("server.crt"),
            "--tls-key-file",     file("server.key"),         "--tls-ca-cert-file", ca(),
            "--tls-auth-clients", auth_clients ? "yes" : "no"};
  }

 private:
  std::string dir_;
};

}  // namespace bc::broker::redis_test
