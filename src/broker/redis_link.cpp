#include "broker/redis_link.hpp"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstdarg>
#include <string_view>

#include "broker/redis_tls.hpp"

namespace bc::broker {

namespace asio = boost::asio;

namespace {

constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t keep_capacity = 1 << 20;  // an output buffer grown past this by a burst is released

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

// What a reply confirms or a command asks for, in Pub/Sub terms.
enum pubsub_kind { not_pubsub = 0, plain_sub, plain_unsub, sharded_sub, sharded_unsub };

pubsub_kind pubsub_of(std::string_view name) {
  if (iequals(name, "subscribe") || iequals(name, "psubscribe")) return plain_sub;
  if (iequals(name, "unsubscribe") || iequals(name, "punsubscribe")) return plain_unsub;
  if (iequals(name, "ssubscribe")) return sharded_sub;
  if (iequals(name, "sunsubscribe")) return sharded_unsub;
  return not_pubsub;
}

// Confirmations a command expects: one per channel for (P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE, -1 for an
// unsubscribe of everything (until the count is 0), 0 for any other command (one reply).
long confirmations_of(pubsub_kind kind, long args) {
  if (kind == plain_sub || kind == sharded_sub) return args > 0 ? args : 0;  // none: an error reply
  if (kind == plain_unsub || kind == sharded_unsub) return args > 0 ? args : -1;
  return 0;
}

// The name and argument count of a command formatted as RESP ("*<n>\r\n$<len>\r\n<name>\r\n...").
bool head_of(std::string_view cmd, std::string_view& name, long& args) {
  auto number = [&](char lead, long& v) {
    if (cmd.empty() || cmd.front() != lead) return false;
    const auto end = cmd.find("\r\n");
    if (end == std::string_view::npos) return false;
    auto [p, ec] = std::from_chars(cmd.data() + 1, cmd.data() + end, v);
    cmd.remove_prefix(end + 2);
    return ec == std::errc() && p == cmd.data() - 2;
  };
  long n = 0, len = 0;
  if (!number('*', n) || n < 1 || !number('$', len) || len < 0 || cmd.size() < static_cast<std::size_t>(len))
    return false;
  name = cmd.substr(0, static_cast<std::size_t>(len));
  args = n - 1;
  return true;
}

void append_number(std::string& out, char lead, std::size_t v) {
  char buf[24];
  buf[0] = lead;
  auto [end, ec] = std::to_chars(buf + 1, buf + sizeof buf, v);
  out.append(buf, end);
  out.append("\r\n", 2);
}

std::string_view kind_of(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING) return {};
  return {r->element[0]->str, r->element[0]->len};
}

}  // namespace

std::shared_ptr<redis_link> redis_link::create(asio::io_context& ioc, redis_link_target target) {
  return std::shared_ptr<redis_link>(new redis_link(ioc, std::move(target)));
}

redis_link::redis_link(asio::io_context& ioc, redis_link_target target)
    : ioc_(ioc), target_(std::move(target)), resolver_(ioc), socket_(ioc), reader_(redisReaderCreate()) {
  if (target_.tls) tls_.emplace(ioc, target_.tls->context());
  in_.resize(read_chunk);
}

redis_link::~redis_link() {
  // Every operation in flight holds a reference: by now the link is closed (or never connected).
  if (reader_ != nullptr) redisReaderFree(reader_);
}

// ---- commands ------------------------------------------------------------------------------------------

int redis_link::command(callback_fn cb, void* privdata, const char* fmt, ...) {
  if (state_ == state::closed) return -1;
  char* cmd = nullptr;
  va_list ap;
  va_start(ap, fmt);
  const int len = redisvFormatCommand(&cmd, fmt, ap);
  va_end(ap);
  if (len < 0) return -1;
  std::string_view name;
  long args = 0;
  const bool parsed = head_of({cmd, static_cast<std::size_t>(len)}, name, args);
  const int rc = parsed ? queue(cmd, static_cast<std::size_t>(len), cb, privdata, name, args) : -1;
  redisFreeCommand(cmd);
  return rc;
}

int redis_link::command_argv(callback_fn cb, void* privdata, int argc, const char** argv,
                             const std::size_t* argvlen) {
  if (state_ == state::closed || argc < 1) return -1;
  // RESP straight into the output buffer (what redisFormatCommandArgv builds, without its allocation).
  append_number(out_, '*', static_cast<std::size_t>(argc));
  for (int i = 0; i < argc; ++i) {
    append_number(out_, '$', argvlen[i]);
    out_.append(argv[i], argvlen[i]);
    out_.append("\r\n", 2);
  }
  return queue(nullptr, 0, cb, privdata, {argv[0], argvlen[0]}, argc - 1);
}

int redis_link::queue(const char* cmd, std::size_t len, callback_fn cb, void* privdata, std::string_view name,
                      long args) {
  if (cmd != nullptr) out_.append(cmd, len);
  const auto kind = pubsub_of(name);
  const long confirmations = confirmations_of(kind, args);
  if (confirmations != 0 && (kind == plain_sub || kind == sharded_sub)) {
    push_fn_ = cb;
    push_privdata_ = privdata;
  }
  pending_.push_back({cb, privdata, confirmations, kind});
  schedule_write();
  return 0;
}

// ---- connecting ----------------------------------------------------------------------------------------

void redis_link::connect(open_handler on_open, close_handler on_close) {
  on_open_ = std::move(on_open);
  on_close_ = std::move(on_close);
  state_ = state::connecting;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(target_.host, ec);
  if (!ec) return start_connect({tcp::endpoint(address, static_cast<unsigned short>(target_.port))});
  resolver_.async_resolve(target_.host, std::to_string(target_.port),
                          [self = shared_from_this()](const boost::system::error_code& ec,
                                                      const tcp::resolver::results_type& results) {
                            self->on_resolved(ec, results);
                          });
}

void redis_link::on_resolved(const boost::system::error_code& ec,
                             const tcp::resolver::results_type& results) {
  if (state_ != state::connecting) return;
  if (ec) return fail("cannot resolve " + target_.host + ": " + ec.message());
  std::vector<tcp::endpoint> endpoints;
  for (const auto& r : results) endpoints.push_back(r.endpoint());
  start_connect(endpoints);
}

void redis_link::start_connect(const std::vector<tcp::endpoint>& endpoints) {
  asio::async_connect(socket(), endpoints,
                      [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
                        self->on_connected(ec);
                      });
}

void redis_link::on_connected(const boost::system::error_code& ec) {
  if (state_ != state::connecting) return;
  if (ec) return fail(ec.message());
  boost::system::error_code ignored;
  socket().set_option(tcp::no_delay(true), ignored);
  // As hiredis's redisEnableKeepAlive: notices a peer that vanished without a FIN (the subscribe side may
  // never write): probes after 15 s idle, every 5 s, 3 of them.
  socket().set_option(asio::socket_base::keep_alive(true), ignored);
  const int fd = socket().native_handle();
  const int idle = 15, interval = 5, count = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  if (!tls_) return opened();
  if (!target_.tls->prepare(tls_->native_handle(), target_.host)) {
    return fail("TLS: cannot use the server name '" + target_.tls->name_for(target_.host) + "'");
  }
  tls_->async_handshake(
      asio::ssl::stream_base::client,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_handshake(ec); });
}

void redis_link::on_handshake(const boost::system::error_code& ec) {
  if (state_ != state::connecting) return;
  if (ec) return fail(describe(ec, "TLS handshake failed"));
  opened();
}

void redis_link::opened() {
  state_ = state::open;
  do_read();
  if (!out_.empty()) schedule_write();
  if (on_open_) on_open_();
}

std::string redis_link::describe(const boost::system::error_code& ec, const char* what) {
  // hiredis's words, which operators (and tests) already know.
  if (ec == asio::error::eof) return "Server closed the connection";
  if (ec == asio::ssl::error::stream_truncated) return "Server closed the connection (TLS stream truncated)";
  std::string why = std::string(what) + ": " + ec.message();
  if (tls_) {
    const long verify = SSL_get_verify_result(tls_->native_handle());
    if (verify != X509_V_OK) {
      why += std::string(" (certificate check: ") + X509_verify_cert_error_string(verify);
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        why += ", expected '" + target_.tls->name_for(target_.host) + "'";
      }
      why += ")";
    }
  }
  return why;
}

// ---- writing -------------------------------------------------------------------------------------------

void redis_link::schedule_write() {
  if (state_ != state::open || write_in_flight_ || flush_posted_) return;
  // Posted, not written now: every command issued by the handler running now goes out in one write.
  flush_posted_ = true;
  asio::post(ioc_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->do_write();
  });
}

void redis_link::do_write() {
  if (state_ != state::open || write_in_flight_ || out_.empty()) return;
  writing_.swap(out_);
  out_.clear();
  write_in_flight_ = true;
  with_stream([this](auto& stream) {
    asio::async_write(stream, asio::buffer(writing_),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        self->on_write(ec);
                      });
  });
}

void redis_link::on_write(const boost::system::error_code& ec) {
  write_in_flight_ = false;
  if (state_ != state::open) return;
  if (ec) return fail(describe(ec, "write failed"));
  writing_.clear();
  if (writing_.capacity() > keep_capacity) writing_.shrink_to_fit();
  do_write();  // what was queued meanwhile, in one write
}

// ---- reading -------------------------------------------------------------------------------------------

void redis_link::do_read() {
  with_stream([this](auto& stream) {
    stream.async_read_some(asio::buffer(in_),
                           [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                             self->on_read(ec, n);
                           });
  });
}

void redis_link::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (state_ != state::open) return;
  if (ec) return fail(describe(ec, "read failed"));
  if (redisReaderFeed(reader_, in_.data(), n) != REDIS_OK) {
    return fail(std::string("protocol error: ") + reader_->errstr);
  }
  while (state_ == state::open) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      return fail(std::string("protocol error: ") + reader_->errstr);
    }
    if (reply == nullptr) return do_read();
    dispatch(reply);  // may close the link
  }
}

void redis_link::dispatch(void* reply) {
  std::unique_ptr<void, void (*)(void*)> owned(reply, freeReplyObject);
  auto* r = static_cast<redisReply*>(reply);
  const std::string_view text = kind_of(r);
  const bool subscribed = plain_subs_ > 0 || sharded_subs_ > 0;
  if (subscribed && (text == "message" || text == "pmessage" || text == "smessage")) {
    return run(push_fn_, push_privdata_, r);
  }
  // A confirmation (an array naming a Pub/Sub command, while one waits for it or in subscribed mode): the
  // counts are kept per family (RESP2 counts plain and sharded subscriptions apart).
  auto kind = r->type == REDIS_REPLY_ARRAY ? pubsub_of(text) : not_pubsub;
  const bool expected = kind != not_pubsub && !pending_.empty() && pending_.front().confirmations != 0 &&
                        pending_.front().kind == kind;
  if (!expected && !subscribed) kind = not_pubsub;  // some command's array that merely starts with that word
  const long long count = kind != not_pubsub && r->elements >= 3 && r->element[2]->type == REDIS_REPLY_INTEGER
                              ? r->element[2]->integer
                              : 0;
  if (kind != not_pubsub) {
    (kind == sharded_sub || kind == sharded_unsub ? sharded_subs_ : plain_subs_) = count;
    // Not what the oldest command waits for: Redis ended a subscription itself (a sharded channel whose slot
    // moved answers `sunsubscribe` unasked). To the Pub/Sub callback, like a message.
    if (!expected) return run(push_fn_, push_privdata_, r);
  }
  if (pending_.empty()) {
    // Nothing was asked: an error is Redis refusing the connection (maxclients), anything else is ignored.
    if (r->type == REDIS_REPLY_ERROR) fail("error from Redis: " + std::string(r->str, r->len));
    return;
  }
  auto& head = pending_.front();
  const callback_fn fn = head.fn;
  void* const privdata = head.privdata;
  bool last = true;
  if (kind != not_pubsub) last = head.confirmations > 0 ? --head.confirmations == 0 : count == 0;
  if (last) pending_.pop_front();
  run(fn, privdata, r);
}

void redis_link::run(callback_fn fn, void* privdata, void* reply) {
  if (fn == nullptr) return;
  try {
    fn(this, reply, privdata);
  } catch (const std::exception& e) {  // the read loop must go on
    spdlog::error("redis {}:{}: a reply handler failed: {}", target_.host, target_.port, e.what());
  }
}

// ---- closing -------------------------------------------------------------------------------------------

void redis_link::close() {
  on_close_ = nullptr;
  if (state_ != state::closed) shut();
}

void redis_link::fail(const std::string& why) {
  if (state_ == state::closed) return;
  auto keep = shared_from_this();  // the close handler may drop the owner's reference
  shut();
  if (auto handler = std::move(on_close_)) handler(why);
}

void redis_link::shut() {
  state_ = state::closed;
  on_open_ = nullptr;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket().close(ignored);  // operations in flight complete with operation_aborted and find the link closed
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& p : pending) run(p.fn, p.privdata, nullptr);
  if (auto fn = std::exchange(push_fn_, nullptr)) run(fn, push_privdata_, nullptr);
}

}  // namespace bc::broker
