#include "broker/redis_sentinel.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <string_view>
#include <vector>

namespace bc::broker {

namespace asio = boost::asio;

struct redis_sentinel::watcher {
  redis_sentinel* owner = nullptr;
  redis_endpoint endpoint;  // the sentinel itself: REDIS_SENTINEL_USERNAME/PASSWORD, TLS as the entry says
  std::unique_ptr<redis_connection> query;
  std::unique_ptr<redis_connection> events;
};

namespace {

std::string_view text_of(const redisReply* r) {
  return {r->str, r->len};
}

bool is_text(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

bool to_port(std::string_view s, int& port) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  return ec == std::errc() && end == s.data() + s.size() && port > 0 && port < 65536;
}

}  // namespace

redis_sentinel::redis_sentinel(asio::io_context& ioc, const redis_endpoint& endpoint,
                               const redis_options& opts, const std::string& name, master_handler on_master)
    : ioc_(ioc), master_name_(endpoint.master_name), name_(name), on_master_(std::move(on_master)) {
  for (const auto& s : endpoint.sentinels) {
    auto w = std::make_unique<watcher>();
    w->owner = this;
    w->endpoint.host = s.host;
    w->endpoint.port = s.port;
    w->endpoint.tls = endpoint.tls;
    w->endpoint.username = opts.sentinel_username;
    w->endpoint.password = opts.sentinel_password;
    const std::string where = name + " sentinel " + w->endpoint.address();
    watcher* raw = w.get();
    w->query = std::make_unique<redis_connection>(
        ioc, w->endpoint, opts, where + " query", [this, raw](redis_link* ac) { query(*raw, ac); }, [] {});
    w->events = std::make_unique<redis_connection>(
        ioc, w->endpoint, opts, where + " events",
        [raw](redis_link* ac) { ac->command(&redis_sentinel::on_event, raw, "SUBSCRIBE +switch-master"); },
        [] {});
    watchers_.push_back(std::move(w));
  }
}

redis_sentinel::~redis_sentinel() {
  stop();
}

void redis_sentinel::start() {
  for (auto& w : watchers_) {
    w->query->start();
    w->events->start();
  }
}

void redis_sentinel::stop() {
  *alive_ = false;
  for (auto& w : watchers_) {
    w->query->stop();
    w->events->stop();
  }
}

void redis_sentinel::ask() {
  for (auto& w : watchers_) {
    if (redis_link* ac = w->query->ready() ? w->query->open_context() : nullptr) query(*w, ac);
  }
}

void redis_sentinel::query(watcher& w, redis_link* ac) {
  ac->command(&redis_sentinel::on_master_reply, &w, "SENTINEL get-master-addr-by-name %b",
              master_name_.data(), master_name_.size());
}

void redis_sentinel::on_master_reply(redis_link*, void* reply, void* privdata) {
  auto& w = *static_cast<watcher*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // connection going away
  redis_connection& conn = *w.query;
  int port = 0;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_text(r->element[0]) ||
      !is_text(r->element[1]) || !to_port(text_of(r->element[1]), port)) {
    // A nil answer: this sentinel does not monitor that name (a typo in REDIS_URL, or a sentinel not yet
    // configured). Retried with the connection's backoff, loudly now and then.
    const std::string what = r->type == REDIS_REPLY_ERROR ? std::string(text_of(r))
                             : r->type == REDIS_REPLY_NIL ? "no primary known under that name"
                                                          : "unexpected answer";
    spdlog::log(conn.failure_level(), "{}: SENTINEL get-master-addr-by-name {}: {}", conn.name(),
                w.owner->master_name_, what);
    return conn.drop_later("no primary for " + w.owner->master_name_);
  }
  if (!conn.ready()) conn.mark_ready();
  w.owner->report(std::string(text_of(r->element[0])), port, false, "sentinel " + w.endpoint.address());
}

void redis_sentinel::on_event(redis_link*, void* reply, void* privdata) {
  auto& w = *static_cast<watcher*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;
  if (r->type == REDIS_REPLY_ERROR) return w.events->drop_later("error reply: " + std::string(text_of(r)));
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_text(r->element[0])) return;
  const auto kind = text_of(r->element[0]);
  if (kind == "subscribe") {
    if (!w.events->ready()) w.events->mark_ready();
    // Announcements made while this connection was down are lost: ask where the primary is now.
    return asio::post(w.owner->ioc_, [owner = w.owner, alive = std::weak_ptr<bool>(w.owner->alive_)] {
      if (auto a = alive.lock(); a && *a) owner->ask();
    });
  }
  if (kind != "message" || !is_text(r->element[2])) return;
  // "<name> <old ip> <old port> <new ip> <new port>"
  const std::string_view text = text_of(r->element[2]);
  std::vector<std::string_view> parts;
  for (std::size_t at = 0; at <= text.size();) {
    const auto space = std::min(text.find(' ', at), text.size());
    parts.push_back(text.substr(at, space - at));
    at = space + 1;
  }
  int port = 0;
  if (parts.size() != 5 || parts[0] != w.owner->master_name_ || !to_port(parts[4], port)) return;
  w.owner->report(std::string(parts[3]), port, true,
                  "sentinel " + w.endpoint.address() + " announced +switch-master");
}

void redis_sentinel::report(std::string host, int port, bool announced, std::string why) {
  asio::post(ioc_, [this, alive = std::weak_ptr<bool>(alive_), host = std::move(host), port, announced,
                    why = std::move(why)] {
    if (auto a = alive.lock(); a && *a) on_master_(host, port, announced, why);
  });
}

}  // namespace bc::broker
