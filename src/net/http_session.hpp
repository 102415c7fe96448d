#pragma once
// One HTTP/1.1 connection before (or instead of) a WebSocket: REST publish, health, metrics, the console's
// static files, and the WebSocket upgrade, which hands the socket over to a ws_session.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "protocol/rest_api.hpp"

namespace bc::net {

class worker;

// What HTTP routes need from the rest of the node. Shared by all threads: every member is thread-safe.
struct http_services {
  const protocol::rest_api& rest;
  std::function<bool()> healthy;
  std::function<std::string()> metrics;  // Prometheus text exposition
  std::function<std::string()> info;     // JSON object for GET {BASE}/info (API key required)
  // Dev mode only (empty otherwise): a signed token for the console, for the channels in `query`.
  std::function<std::string(std::string_view query)> dev_token;
};

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(worker& w, const http_services& services, boost::asio::ip::tcp::socket socket);
  void run();

 private:
  using request = boost::beast::http::request<boost::beast::http::string_body>;
  using response = boost::beast::http::response<boost::beast::http::string_body>;

  void do_read();
  void on_header();
  void read_body();
  void on_read(boost::system::error_code ec);
  void route(request& req);
  void send(response res);
  void send_error(unsigned status, protocol::error_code code, std::string_view message);
  void send_reply(protocol::http_reply reply);
  void handle_publish(request& req);
  void handle_upgrade(request& req);
  void handle_console(request& req, std::string_view rest);
  void fail_closed();

  worker& w_;
  const http_services& services_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
};

}  // namespace bc::net
