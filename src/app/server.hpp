#pragma once
// Wires the node together: shards and their threads, broker, auth, HTTP services; runs until a signal.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <vector>

#include "app/config.hpp"
#include "app/shard.hpp"
#include "auth/api_keys.hpp"
#include "auth/jwt_verifier.hpp"
#include "broker/broker.hpp"
#include "engine/node.hpp"
#include "net/tls_context.hpp"
#include "protocol/publisher.hpp"
#include "protocol/rest_api.hpp"

namespace bc::app {

class server {
 public:
  explicit server(config cfg);
  ~server();

  // Binds, starts the threads, and blocks until SIGINT/SIGTERM and a graceful shutdown. Returns the exit
  // code.
  int run();

 private:
  std::string dev_token(std::string_view query) const;
  std::string info() const;
  void print_dev_banner(std::uint16_t port) const;
  void shutdown(boost::asio::io_context& control);
  void poll_shutdown(boost::asio::io_context& control);

  config cfg_;
  std::string node_id_;
  std::vector<std::string> secret_warnings_;  // weak secrets (secret_strength.hpp): logged at start, in /info
  std::chrono::steady_clock::time_point started_;
  auth::jwt_verifier verifier_;
  auth::api_keys api_keys_;
  engine::node node_;
  std::unique_ptr<broker::broker> broker_;
  protocol::publisher publisher_;
  protocol::rest_api rest_;
  net::node_shared shared_;
  std::unique_ptr<net::tls_context> tls_;
  std::unique_ptr<net::http_services> http_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
  std::chrono::steady_clock::time_point shutdown_deadline_{};
};

}  // namespace bc::app
