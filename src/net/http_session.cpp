#include "net/http_session.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>

#include "net/console_assets.hpp"
#include "net/console_path.hpp"
#include "net/http_framing.hpp"
#include "net/index_page.hpp"
#include "net/worker.hpp"
#include "net/ws/deflate_offer.hpp"
#include "net/ws/handshake.hpp"
#include "net/ws_session.hpp"
#include "protocol/encoder.hpp"
#include "util/comma_list.hpp"

namespace bc::net {

namespace http = boost::beast::http;

namespace {

bool header_has_token(std::string_view value, std::string_view token) {
  // Comma-separated, case-insensitive tokens ("keep-alive, Upgrade").
  while (const auto item = util::next_list_item(value)) {
    if (boost::beast::iequals(*item, token)) return true;
  }
  return false;
}

std::string_view content_type_for(std::string_view path) {
  auto ends = [&](std::string_view ext) {
    return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json")) return "application/json";
  if (ends(".map")) return "application/json";
  return "application/octet-stream";
}

// A console file's answer, or 304 when the client's copy is current. "no-cache": the names carry no version,
// so a browser asks again each time (and gets a 304). No CORS header: other origins cannot read the console.
http::response<http::string_body> console_file_response(const http::request<http::string_body>& req,
                                                        unsigned version, std::string_view body,
                                                        std::string_view type, std::string_view etag) {
  const bool current = etag_matches(req[http::field::if_none_match], etag);
  http::response<http::string_body> res{current ? http::status::not_modified : http::status::ok, version};
  res.set(http::field::etag, etag);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  if (current) return res;
  res.set(http::field::content_type, type);
  res.body() = body;
  return res;
}

}  // namespace

http_session::http_session(worker& w, const http_services& services, boost::asio::ip::tcp::socket socket)
    : w_(w),
      services_(services),
      socket_(std::move(socket)),
      io_(services.tls ? byte_stream(socket_.native_handle(), services.tls)
                       : byte_stream(socket_.native_handle())),
      deadline_(w.ioc()) {}

void http_session::run() {
  // The byte_stream's reads need a non-blocking socket whatever accepted it (Asio would otherwise set it, an
  // ioctl all the same, at its first wait). The listener's sockets are already, and Asio knows it
  // (listener.cpp): no system call then. TCP_NODELAY came from the listening socket.
  if (!socket_.non_blocking()) {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
  }
  // One deadline covers the TLS handshake and each request head: a client trickling bytes (slowloris) is cut
  // off.
  arm_deadline(w_.config().handshake_timeout);
  if (io_.tls()) return do_handshake();
  start_request();
}

void http_session::wait(boost::asio::socket_base::wait_type type, void (http_session::*then)()) {
  socket_.async_wait(type, [self = shared_from_this(), then](boost::system::error_code ec) {
    if (ec || self->closed_) return self->close();
    self->answered_inline_ = 0;
    ((*self).*then)();
  });
}

void http_session::do_handshake() {
  switch (io_.handshake()) {
    case io_result::ok:
      return start_request();
    case io_result::want_read:
      return wait(boost::asio::socket_base::wait_read, &http_session::do_handshake);
    case io_result::want_write:
      return wait(boost::asio::socket_base::wait_write, &http_session::do_handshake);
    default:
      return close();
  }
}

void http_session::start_request() {
  parser_.emplace();
  parser_->body_limit(w_.config().max_message_size);
  parser_->header_limit(16 * 1024);
  parser_->eager(true);
  continue_sent_ = false;
  head_checked_ = false;
  folds_.reset();
  parse_input();
}

void http_session::parse_input() {
  while (!in_.empty() && !parser_->is_done()) {
    boost::system::error_code ec;
    const std::size_t used = parser_->put(boost::asio::buffer(in_), ec);
    if (!head_checked_) folds_.feed(std::string_view(in_).substr(0, used));
    in_.erase(0, used);
    if (!head_checked_ && parser_->is_header_done() && !check_head()) return;
    if (ec == http::error::need_more) break;
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return send_error(413, protocol::error_code::resource_exhausted, "request body too large");
    }
    if (ec) {
      keep_alive_ = false;
      return send_error(400, protocol::error_code::invalid_argument, "malformed HTTP request");
    }
  }
  if (!parser_->is_done()) {
    // curl sends "Expect: 100-continue" before bodies over 1 KiB and waits for this line (RFC 9110 10.1.1).
    if (parser_->is_header_done() && !continue_sent_ &&
        boost::beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_sent_ = true;
      out_ = "HTTP/1.1 100 Continue\r\n\r\n";
      out_sent_ = 0;
      return write_out();
    }
    return read_more();
  }
  w_.stats().http_requests.add();
  request req = parser_->release();
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  route(req);
}

// Refuses a head whose framing is ambiguous (see http_framing.hpp) before its body is read or acted on.
// Returns false when it answered an error (the connection then closes: where the next request starts is
// no longer known).
bool http_session::check_head() {
  head_checked_ = true;
  const auto& head = parser_->get();
  auto bad = check_request_framing(head.version(), head);
  if (!bad && folds_.found()) bad = framing_error{400, "obsolete line folding in the request head"};
  if (!bad) return true;
  keep_alive_ = false;
  in_.clear();
  w_.stats().http_requests.add();
  // 501 (a coding we do not implement) has no code of its own in the protocol: the request was not valid
  // here.
  send_error(bad->status, protocol::error_code::invalid_argument, bad->message);
  return false;
}

void http_session::read_more() {
  if (drained_ && !io_.pending()) {
    // The last read came back short: the socket was empty then, and a read now would most likely only say
    // EAGAIN, one system call per keep-alive request for nothing. The wait sees data that came in since.
    drained_ = false;
    return wait(boost::asio::socket_base::wait_read, &http_session::read_more);
  }
  std::size_t n = 0;
  switch (io_.read(w_.read_buffer(), w_.read_buffer_size(), n)) {
    case io_result::ok:
      drained_ = n < w_.read_buffer_size();
      in_.append(reinterpret_cast<const char*>(w_.read_buffer()), n);
      if (idle_) {
        idle_ = false;
        arm_deadline(w_.config().handshake_timeout);
      }
      return parse_input();
    case io_result::want_read:
      return wait(boost::asio::socket_base::wait_read, &http_session::read_more);
    case io_result::want_write:
      return wait(boost::asio::socket_base::wait_write, &http_session::read_more);
    default:
      return close();
  }
}

void http_session::route(request& req) {
  const std::string_view base = w_.config().base_path;
  std::string_view target = origin_form(req.target());
  const auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (path.substr(0, base.size()) != base) {
    return send_error(404, protocol::error_code::not_found, "no such endpoint");
  }
  path.remove_prefix(base.size());
  const auto verb = req.method();
  if (path == "/websocket") {
    if (verb != http::verb::get) return method_not_allowed("GET", "use GET with Upgrade: websocket");
    return handle_upgrade(req);
  }
  if (path == "/publish") {
    cors_ = true;  // browsers of any origin may publish with an API key; nothing else answers them
    if (verb == http::verb::options) {
      response res{http::status::no_content, version_};
      res.set(http::field::access_control_allow_headers, "Authorization, Content-Type");
      res.set(http::field::access_control_allow_methods, "POST, OPTIONS");
      res.set(http::field::access_control_max_age, "86400");
      return send(std::move(res));
    }
    if (verb != http::verb::post) return method_not_allowed("POST, OPTIONS", "use POST");
    return handle_publish(req);
  }
  if (path == "/history") {
    if (verb != http::verb::get) return method_not_allowed("GET", "use GET");
    return handle_history(req, q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  }
  if (path == "/presence" || path == "/presence-stats") {
    if (verb != http::verb::get) return method_not_allowed("GET", "use GET");
    return handle_presence(req, q == std::string_view::npos ? std::string_view{} : target.substr(q + 1),
                           path == "/presence-stats");
  }
  if (path == "/disconnect" || path == "/unsubscribe") {
    if (verb != http::verb::post) return method_not_allowed("POST", "use POST");
    return handle_control(req, path == "/unsubscribe");
  }
  if (path == "/health") {
    if (verb != http::verb::get && verb != http::verb::head)
      return method_not_allowed("GET, HEAD", "use GET");
    const bool ok = services_.healthy() && !w_.stopping();
    response res{ok ? http::status::ok : http::status::service_unavailable, version_};
    res.set(http::field::content_type, "text/plain");
    if (verb == http::verb::get) res.body() = ok ? "ok" : "unavailable";
    return send(std::move(res));
  }
  if (path == "/metrics") {
    if (verb != http::verb::get) return method_not_allowed("GET", "use GET");
    if (w_.config().metrics_auth && !check_api_key(req)) return;
    response res{http::status::ok, version_};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = services_.metrics();
    return send(std::move(res));
  }
  if (path == "/info") {
    if (verb != http::verb::get) return method_not_allowed("GET", "use GET");
    if (!check_api_key(req)) return;
    response res{http::status::ok, version_};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = services_.info();
    return send(std::move(res));
  }
  if (w_.config().console && (path == "/console" || path.substr(0, 9) == "/console/")) {
    if (verb != http::verb::get) return method_not_allowed("GET", "use GET");
    return handle_console(req, path.substr(8));
  }
  if (path.empty() || path == "/") {
    if (verb != http::verb::get && verb != http::verb::head)
      return method_not_allowed("GET, HEAD", "use GET");
    auto page = make_index_page(base, w_.config().console, static_cast<bool>(services_.dev_token),
                                req[http::field::accept]);
    response res{http::status::ok, version_};
    res.set(http::field::content_type, page.content_type);
    res.set(http::field::cache_control, "no-cache");
    if (verb == http::verb::get) res.body() = std::move(page.body);
    return send(std::move(res));
  }
  send_error(404, protocol::error_code::not_found, "no such endpoint");
}

void http_session::handle_publish(request& req) {
  if (w_.stopping()) {
    keep_alive_ = false;
    return send_error(503, protocol::error_code::unavailable, "server shutting down, retry later");
  }
  await_broker([&](auto done) {
    services_.rest.publish(req[http::field::authorization], req.body(), w_.services().stats, std::move(done));
  });
}

void http_session::handle_history(request& req, std::string_view query) {
  await_broker([&](auto done) {
    services_.rest.history(req[http::field::authorization], query, w_.services().stats, std::move(done));
  });
}

void http_session::handle_presence(request& req, std::string_view query, bool stats) {
  await_broker([&](auto done) {
    services_.rest.presence(req[http::field::authorization], query, stats, w_.services().stats,
                            std::move(done));
  });
}

void http_session::handle_control(request& req, bool unsubscribe) {
  await_broker([&](auto done) {
    services_.rest.control(req[http::field::authorization], req.body(), unsubscribe, w_.services().stats,
                           std::move(done));
  });
}

void http_session::await_broker(const std::function<void(std::function<void(protocol::http_reply)>)>& start) {
  // The head's deadline covered reading the request; from here the broker's answer has a bound of its own,
  // however short --handshake-timeout is.
  awaiting_reply_ = true;
  const auto seq = ++publish_seq_;
  w_.rest_publish_started();
  arm_deadline(w_.config().publish_reply_timeout);
  // The reply may come from another thread (Redis broker): hop back to this connection's thread.
  auto& ioc = w_.ioc();
  start([self = shared_from_this(), &ioc, seq](protocol::http_reply reply) {
    boost::asio::dispatch(ioc, [self, seq, reply = std::move(reply)]() mutable {
      self->on_publish_reply(seq, std::move(reply));
    });
  });
}

void http_session::on_publish_reply(std::uint32_t request, protocol::http_reply reply) {
  if (!awaiting_reply_ || request != publish_seq_) return;  // answered 503 already: see publish_timed_out
  awaiting_reply_ = false;
  w_.rest_publish_done();
  if (closed_) return;
  if (w_.stopping()) keep_alive_ = false;  // the answer, then the connection closes
  send_reply(std::move(reply));
}

void http_session::publish_timed_out() {
  awaiting_reply_ = false;
  w_.rest_publish_done();
  keep_alive_ = false;
  send_error(503, protocol::error_code::unavailable,
             "the broker did not answer in time: the message may or may not have been delivered");
}

void http_session::handle_upgrade(request& req) {
  const bool upgrade = header_has_token(req[http::field::connection], "upgrade") &&
                       boost::beast::iequals(req[http::field::upgrade], "websocket");
  if (!upgrade) {
    response res{http::status::upgrade_required, version_};
    res.set(http::field::upgrade, "websocket");
    res.set(http::field::connection, "Upgrade");
    res.set(http::field::content_type, "application/json");
    res.body() = protocol::encode_error_body(protocol::error_code::invalid_argument,
                                             "this endpoint speaks WebSocket: send an Upgrade request");
    keep_alive_ = false;
    return send(std::move(res));
  }
  if (req[http::field::sec_websocket_version] != "13") {
    response res{http::status::upgrade_required, version_};
    res.set(http::field::sec_websocket_version, "13");
    res.set(http::field::content_type, "application/json");
    res.body() = protocol::encode_error_body(protocol::error_code::invalid_argument,
                                             "Sec-WebSocket-Version must be 13");
    keep_alive_ = false;
    return send(std::move(res));
  }
  const auto key = req[http::field::sec_websocket_key];
  if (!ws::is_valid_client_key(key)) {
    keep_alive_ = false;
    return send_error(400, protocol::error_code::invalid_argument, "invalid Sec-WebSocket-Key");
  }
  const auto& origins = w_.config().allowed_origins;
  if (!origins.empty()) {
    const auto origin = req[http::field::origin];
    if (!origin.empty() && std::find(origins.begin(), origins.end(), origin) == origins.end()) {
      keep_alive_ = false;
      return send_error(403, protocol::error_code::permission_denied, "origin not allowed");
    }
  }
  auto& shared = w_.shared();
  if (w_.stopping()) {
    keep_alive_ = false;
    return send_error(503, protocol::error_code::unavailable, "server shutting down");
  }
  if (shared.connections.fetch_add(1, std::memory_order_relaxed) >= shared.config.max_connections) {
    shared.connections.fetch_sub(1, std::memory_order_relaxed);
    w_.stats().rejected_limit.add();
    keep_alive_ = false;
    return send_error(429, protocol::error_code::resource_exhausted, "too many connections");
  }
  std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
      "Upgrade\r\nSec-WebSocket-Accept: ";
  head += ws::accept_key(key);
  ws::deflate_agreement deflate;
  if (w_.config().compression) {
    // The header may come as several fields; their values form one list (RFC 7230 3.2.2).
    std::string offers;
    const auto [first, last] = req.equal_range(http::field::sec_websocket_extensions);
    for (auto f = first; f != last; ++f) {
      if (!offers.empty()) offers += ", ";
      offers.append(f->value().data(), f->value().size());
    }
    deflate = ws::negotiate_deflate(offers);
  }
  if (deflate.enabled) {
    head += "\r\nSec-WebSocket-Extensions: ";
    head += deflate.response;
  }
  head += "\r\n\r\n";
  closed_ = true;  // the socket now belongs to the WebSocket session
  deadline_.cancel();
  auto session = std::make_shared<ws_session>(w_, std::move(socket_), std::move(io_), deflate.enabled);
  session->send_raw(std::move(head));
  session->start(in_);
}

void http_session::handle_console(request& req, std::string_view rest) {
  if (rest.empty()) {
    response res{http::status::moved_permanently, version_};
    res.set(http::field::location, std::string(w_.config().base_path) + "/console/");
    return send(std::move(res));
  }
  if (rest == "/dev-token") {
    if (!services_.dev_token)
      return send_error(404, protocol::error_code::not_found, "dev tokens exist in --dev mode only");
    if (!is_direct_host(req[http::field::host])) {
      return send_error(403, protocol::error_code::permission_denied,
                        "dev tokens are given only to requests that name the server by address or as "
                        "localhost (DNS rebinding)");
    }
    const std::string_view target = req.target();
    const auto q = target.find('?');
    response res{http::status::ok, version_};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() =
        "{\"token\":" +
        protocol::json_quote(services_.dev_token(q == std::string_view::npos ? "" : target.substr(q + 1))) +
        "}";
    return send(std::move(res));
  }
  if (rest == "/chat") {
    response res{http::status::moved_permanently, version_};
    res.set(http::field::location, std::string(w_.config().base_path) + "/console/chat/");
    return send(std::move(res));
  }
  if (rest == "/chat/") rest = "/chat/index.html";  // the example chat's page, as "/" is the console's
  // The files come from the binary by exact name; only the --console-dir override reads the filesystem, and
  // then only regular files inside that directory (console_path.hpp).
  const auto name = console_file_name(rest);
  if (!name) return send_error(404, protocol::error_code::not_found, "no such file");
  const std::string& dir = w_.config().console_dir;
  if (dir.empty()) {
    // The built-in example chat gets its token from dev-token: it is served in dev mode only.
    if (name->starts_with("chat/") && !services_.dev_token)
      return send_error(404, protocol::error_code::not_found,
                        "the example chat is served in --dev mode only");
    const console_asset* asset = find_console_asset(*name);
    if (!asset) return send_error(404, protocol::error_code::not_found, "no such file");
    return send(console_file_response(req, version_, asset->body, asset->content_type, asset->etag));
  }
  const auto body = read_console_file(dir, *name);
  if (!body) return send_error(404, protocol::error_code::not_found, "no such file");
  send(console_file_response(req, version_, *body, content_type_for(*name), console_etag(*body)));
}

bool http_session::check_api_key(request& req) {
  if (services_.rest.authorized(req[http::field::authorization], w_.services().stats)) return true;
  send_error(401, protocol::error_code::unauthenticated,
             "missing or invalid API key (Authorization: Bearer <key>)");
  return false;
}

void http_session::send_error(unsigned status, protocol::error_code code, std::string_view message) {
  send_reply({status, protocol::encode_error_body(code, message)});
}

void http_session::method_not_allowed(std::string_view allow, std::string_view message) {
  allow_ = allow;  // RFC 9110 15.5.6: a 405 says which methods the path takes
  send_error(405, protocol::error_code::invalid_argument, message);
}

void http_session::send_reply(protocol::http_reply reply) {
  // Every JSON answer, the REST publish acknowledgement above all: written straight into the output buffer,
  // without building a Beast message and its field list.
  start_response(version_, reply.status, http::obsolete_reason(static_cast<http::status>(reply.status)));
  add_field("Server", "broadcaster");
  if (std::exchange(cors_, false)) add_field("Access-Control-Allow-Origin", "*");
  if (const auto allow = std::exchange(allow_, {}); !allow.empty()) add_field("Allow", allow);
  // RFC 9110 15.5.2: a 401 names the scheme it wants (REST answers and check_api_key's alike).
  if (reply.status == 401) add_field("WWW-Authenticate", "Bearer");
  add_field("Content-Type", "application/json");
  add_field("Content-Length", std::to_string(reply.body.size()));
  if (!keep_alive_)
    add_field("Connection", "close");
  else if (version_ == 10)
    add_field("Connection", "keep-alive");
  finish_response(reply.body);
}

void http_session::send(response res) {
  res.set(http::field::server, "broadcaster");
  if (std::exchange(cors_, false)) res.set(http::field::access_control_allow_origin, "*");
  res.keep_alive(keep_alive_);
  res.prepare_payload();
  start_response(11, res.result_int(), res.reason());
  for (const auto& field : res) add_field(field.name_string(), field.value());
  finish_response(res.body());
}

// The one serialiser of responses, by hand: the head is a handful of short fields, and the REST publish
// acknowledgement is the hot path.
void http_session::start_response(unsigned version, unsigned status, std::string_view reason) {
  out_.clear();
  out_sent_ = 0;
  out_ += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out_ += std::to_string(status);
  out_ += ' ';
  out_ += reason;
  out_ += "\r\n";
}

void http_session::add_field(std::string_view name, std::string_view value) {
  out_ += name;
  out_ += ": ";
  out_ += value;
  out_ += "\r\n";
}

void http_session::finish_response(std::string_view body) {
  out_ += "\r\n";
  out_ += body;
  write_out();
}

void http_session::write_out() {
  while (out_sent_ < out_.size()) {
    iovec iov{out_.data() + out_sent_, out_.size() - out_sent_};
    std::size_t n = 0;
    switch (io_.write(&iov, 1, n)) {
      case io_result::ok:
        out_sent_ += n;
        continue;
      case io_result::want_write:
        return wait(boost::asio::socket_base::wait_write, &http_session::write_out);
      case io_result::want_read:
        return wait(boost::asio::socket_base::wait_read, &http_session::write_out);
      default:
        return close();
    }
  }
  after_write();
}

void http_session::after_write() {
  out_.clear();
  out_sent_ = 0;
  if (continue_sent_ && parser_ && !parser_->is_done()) return read_more();  // the body follows the 100
  if (!keep_alive_) {
    io_.shutdown_send();
    return close();
  }
  // Between requests the connection may idle for keepalive_timeout; once the next request starts arriving
  // its head has handshake_timeout, as the first one had.
  idle_ = in_.empty();
  arm_deadline(idle_ ? w_.config().keepalive_timeout : w_.config().handshake_timeout);
  // Each request answered without waiting calls the next one from inside this frame (the acknowledgement of a
  // publish comes back through the same stack): a long pipeline would recurse until the stack overflows.
  // Every so often the next request goes through the event loop instead, which also lets the worker's other
  // connections in.
  if (++answered_inline_ < max_answered_inline) return start_request();
  answered_inline_ = 0;
  boost::asio::post(w_.ioc(), [self = shared_from_this()] {
    if (!self->closed_) self->start_request();
  });
}

void http_session::arm_deadline(std::chrono::milliseconds after) {
  // Moving the deadline is the common case (twice per keep-alive request) and costs only this store; the
  // timer goes off no later than now + the shorter of the two timeouts, so it can never be late for a
  // deadline set after it was armed, and looks at deadline_at_ when it does.
  deadline_at_ = std::chrono::steady_clock::now() + after;
  if (!deadline_armed_) start_deadline_timer();
}

void http_session::start_deadline_timer() {
  const auto shortest = std::min(w_.config().handshake_timeout, w_.config().keepalive_timeout);
  deadline_armed_ = true;
  deadline_.expires_at(std::min(deadline_at_, std::chrono::steady_clock::now() + shortest));
  deadline_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!self || ec || self->closed_) return;
    self->deadline_armed_ = false;
    if (std::chrono::steady_clock::now() >= self->deadline_at_) {
      return self->awaiting_reply_ ? self->publish_timed_out() : self->close();
    }
    self->start_deadline_timer();
  });
}

void http_session::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  deadline_.cancel();
  socket_.close(ec);
}

}  // namespace bc::net
