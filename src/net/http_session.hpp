#pragma once
// One HTTP/1.1 connection before (or instead of) a WebSocket: REST publish, health, metrics, info, the
// console's static files, and the WebSocket upgrade, which hands the socket over to a ws_session.
//
// Bytes move through a byte_stream (plain or TLS) on readiness, like ws_session; Beast's parser only parses.
// Requests on one connection are handled one at a time, in order (pipelined ones wait in `in_`).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "net/byte_stream.hpp"
#include "net/http_framing.hpp"
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
  SSL_CTX* tls = nullptr;  // set: every connection speaks TLS (https://, wss://)
};

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(worker& w, const http_services& services, boost::asio::ip::tcp::socket socket);
  void run();

 private:
  using request = boost::beast::http::request<boost::beast::http::string_body>;
  using response = boost::beast::http::response<boost::beast::http::string_body>;

  void do_handshake();
  void start_request();
  void parse_input();
  void read_more();
  bool check_head();
  void wait(boost::asio::socket_base::wait_type type, void (http_session::*then)());
  void route(request& req);
  // True when the request carries a valid API key; otherwise answers 401 and returns false.
  bool check_api_key(request& req);
  void send(response res);
  void send_error(unsigned status, protocol::error_code code, std::string_view message);
  // A 405 with the Allow header listing `allow` (e.g. "GET, HEAD").
  void method_not_allowed(std::string_view allow, std::string_view message);
  void send_reply(protocol::http_reply reply);
  // The one serialiser behind send and send_reply: the status line, the fields, then the blank line and body.
  void start_response(unsigned version, unsigned status, std::string_view reason);
  void add_field(std::string_view name, std::string_view value);
  void finish_response(std::string_view body);
  void write_out();
  void after_write();
  void arm_deadline(std::chrono::milliseconds after);
  void start_deadline_timer();
  void handle_publish(request& req);
  void handle_history(request& req, std::string_view query);
  // GET {BASE}/presence, /presence-stats; POST {BASE}/disconnect, /unsubscribe.
  void handle_presence(request& req, std::string_view query, bool stats);
  void handle_control(request& req, bool unsubscribe);
  // A REST call answered by the broker (publish, history): `start` begins it with the callback that brings
  // the answer back to this connection's thread.
  void await_broker(const std::function<void(std::function<void(protocol::http_reply)>)>& start);
  void on_publish_reply(std::uint32_t request, protocol::http_reply reply);
  void publish_timed_out();
  void handle_upgrade(request& req);
  void handle_console(request& req, std::string_view rest);
  void close();

  worker& w_;
  const http_services& services_;
  boost::asio::ip::tcp::socket socket_;
  byte_stream io_;
  boost::asio::steady_timer deadline_;
  std::chrono::steady_clock::time_point deadline_at_;  // the session closes when this passes
  bool deadline_armed_ = false;
  std::string in_;   // received, not yet parsed
  std::string out_;  // response bytes not yet written
  std::size_t out_sent_ = 0;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  unsigned version_ = 11;
  bool cors_ = false;  // the response may be read by any web origin: REST publish only; reset by each send
  std::string_view allow_;  // the next reply's Allow header (a literal): set by method_not_allowed only
  bool keep_alive_ = true;
  bool idle_ = false;  // between two requests of a keep-alive connection, nothing of the next one read yet
  bool continue_sent_ = false;
  bool awaiting_reply_ = false;    // a publish is with the broker: the deadline is the broker's bound
  std::uint32_t publish_seq_ = 0;  // which publish awaiting_reply_ is about (a late answer is ignored)
  bool head_checked_ = false;      // the head's framing was checked (check_head)
  obs_fold_detector folds_;        // over the current request's head
  bool closed_ = false;
  bool drained_ = false;  // the last read emptied the socket
  static constexpr unsigned max_answered_inline = 16;
  unsigned answered_inline_ = 0;  // requests answered one after another without returning to the event loop
};

}  // namespace bc::net
