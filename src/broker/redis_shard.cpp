#include "broker/redis_shard.hpp"

#include <hiredis/async.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace bc::broker {

namespace asio = boost::asio;

namespace {

constexpr std::size_t subscribe_batch = 1000;  // channels per SUBSCRIBE when re-subscribing after a reconnect

std::string_view text_of(const redisReply* r) { return {r->str, r->len}; }

bool is_string(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

}  // namespace

redis_shard::redis_shard(asio::io_context& ioc, std::size_t index, redis_endpoint endpoint,
                         const redis_options& opts, message_handler on_message)
    : index_(index),
      endpoint_(std::move(endpoint)),
      opts_(opts),
      anchor_(opts.channel_prefix + "!anchor"),  // '!' never appears in a valid channel name
      on_message_(std::move(on_message)),
      watchdog_(ioc),
      pub_(ioc, endpoint_, opts, fmt::format("redis shard {} publish ({})", index, endpoint_.address()),
           [this](redisAsyncContext* ac) { on_pub_open(ac); }, [this] { on_pub_close(); }),
      sub_(ioc, endpoint_, opts, fmt::format("redis shard {} subscribe ({})", index, endpoint_.address()),
           [this](redisAsyncContext* ac) { on_sub_open(ac); }, [] {}) {}

redis_shard::~redis_shard() { stop(); }

void redis_shard::start() {
  stopped_ = false;
  pub_.start();
  sub_.start();
  do_watch();
}

void redis_shard::stop() {
  if (stopped_) return;
  stopped_ = true;
  watchdog_.cancel();
  pub_.stop();
  sub_.stop();
}

// ---- publishing ------------------------------------------------------------------------------------------------

void redis_shard::on_pub_open(redisAsyncContext* ac) {
  // PING after AUTH: its answer proves the server is a working Redis and that AUTH (if any) passed.
  redisAsyncCommand(ac, &redis_shard::on_ping_reply, this, "PING");
}

void redis_shard::on_ping_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // connection going away
  if (is_string(r) && text_of(r) == "PONG") return self->pub_.mark_ready();
  spdlog::error("redis shard {}: unexpected answer to PING: {}", self->index_,
                r->type == REDIS_REPLY_ERROR ? std::string(text_of(r)) : "not PONG");
  self->pub_.drop_later("unexpected answer to PING");
}

void redis_shard::publish(const std::string& redis_channel, const std::string& envelope, publish_done done) {
  redisAsyncContext* ac = pub_.ready() ? pub_.open_context() : nullptr;
  if (ac == nullptr || in_flight_.size() >= opts_.max_in_flight) {
    failures_.add();
    return done(publish_status::unavailable);
  }
  const char* argv[3] = {"PUBLISH", redis_channel.data(), envelope.data()};
  const size_t len[3] = {7, redis_channel.size(), envelope.size()};
  if (redisAsyncCommandArgv(ac, &redis_shard::on_publish_reply, this, 3, argv, len) != REDIS_OK) {
    failures_.add();
    return done(publish_status::unavailable);
  }
  in_flight_.push_back({std::move(done), std::chrono::steady_clock::now()});
  in_flight_count_.add();
}

void redis_shard::on_publish_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  if (self->in_flight_.empty()) return;  // cannot happen: one completion per PUBLISH sent
  auto op = std::move(self->in_flight_.front());
  self->in_flight_.pop_front();
  self->in_flight_count_.sub();
  auto* r = static_cast<redisReply*>(reply);
  if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
    self->published_.add();
    return op.done(publish_status::ok);
  }
  self->failures_.add();
  if (r != nullptr) {
    spdlog::warn("redis shard {}: PUBLISH refused: {}", self->index_,
                 r->type == REDIS_REPLY_ERROR ? std::string(text_of(r)) : "unexpected reply type");
  }
  op.done(publish_status::unavailable);
}

void redis_shard::on_pub_close() {
  // hiredis has completed every in-flight PUBLISH with a null reply before telling us; this is a safety net.
  auto left = std::move(in_flight_);
  in_flight_.clear();
  in_flight_count_.sub(left.size());
  for (auto& op : left) {
    failures_.add();
    op.done(publish_status::unavailable);
  }
}

void redis_shard::do_watch() {
  const auto every = std::clamp(opts_.publish_timeout / 4, std::chrono::milliseconds(10),
                                std::chrono::milliseconds(500));
  watchdog_.expires_after(every);
  watchdog_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    on_watch();
    do_watch();
  });
}

void redis_shard::on_watch() {
  if (in_flight_.empty()) return;
  const auto waited = std::chrono::steady_clock::now() - in_flight_.front().sent;
  if (waited < opts_.publish_timeout) return;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
  spdlog::warn("redis shard {}: a PUBLISH is unanswered after {} ms; Redis looks hung, reconnecting", index_, ms);
  pub_.drop("PUBLISH timed out");
  sub_.drop("PUBLISH on the same server timed out");
}

// ---- subscribing -----------------------------------------------------------------------------------------------

void redis_shard::send_subscribe(redisAsyncContext* ac, const char* command, const std::string* first,
                                 std::size_t n) {
  std::vector<const char*> argv;
  std::vector<size_t> len;
  argv.reserve(n + 1);
  len.reserve(n + 1);
  argv.push_back(command);
  len.push_back(std::char_traits<char>::length(command));
  for (std::size_t i = 0; i < n; ++i) {
    argv.push_back(first[i].data());
    len.push_back(first[i].size());
  }
  redisAsyncCommandArgv(ac, &redis_shard::on_sub_reply, this, static_cast<int>(argv.size()), argv.data(),
                        len.data());
}

void redis_shard::on_sub_open(redisAsyncContext* ac) {
  // Re-subscribe everything with local interest, then the anchor: its confirmation comes last.
  std::vector<std::string> all(channels_.begin(), channels_.end());
  for (std::size_t at = 0; at < all.size(); at += subscribe_batch) {
    send_subscribe(ac, "SUBSCRIBE", all.data() + at, std::min(subscribe_batch, all.size() - at));
  }
  send_subscribe(ac, "SUBSCRIBE", &anchor_, 1);
  if (!all.empty()) spdlog::info("redis shard {}: subscribing {} channels", index_, all.size());
}

void redis_shard::on_sub_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // connection going away
  if (r->type == REDIS_REPLY_ERROR) {
    spdlog::error("redis shard {}: subscribe connection error: {}", self->index_, std::string(text_of(r)));
    return self->sub_.drop_later("error reply on the subscribe connection");
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_string(r->element[0]) || !is_string(r->element[1])) {
    return;
  }
  const auto kind = text_of(r->element[0]);
  const auto channel = text_of(r->element[1]);
  if (kind == "message" && is_string(r->element[2])) {
    self->received_.add();
    self->on_message_(*self, channel, text_of(r->element[2]));
  } else if (kind == "subscribe" && channel == self->anchor_ && !self->sub_.ready()) {
    self->sub_.mark_ready();
  }
}

void redis_shard::subscribe(const std::string& redis_channel) {
  if (!channels_.insert(redis_channel).second) return;
  channel_count_.add();
  // Before the connection is open the channel goes out with the whole set in on_sub_open.
  if (auto* ac = sub_.open_context()) send_subscribe(ac, "SUBSCRIBE", &redis_channel, 1);
}

void redis_shard::unsubscribe(const std::string& redis_channel) {
  if (channels_.erase(redis_channel) == 0) return;
  channel_count_.sub();
  if (auto* ac = sub_.open_context()) send_subscribe(ac, "UNSUBSCRIBE", &redis_channel, 1);
}

redis_shard_stats redis_shard::stats() const {
  redis_shard_stats s;
  s.address = endpoint_.address();
  s.publish_up = pub_.ready();
  s.subscribe_up = sub_.ready();
  s.published = published_.get();
  s.publish_failures = failures_.get() + rejected_.load(std::memory_order_relaxed);
  s.received = received_.get();
  s.invalid = invalid_.get();
  s.reconnects = pub_.reconnects() + sub_.reconnects();
  s.channels = channel_count_.get();
  s.in_flight = in_flight_count_.get();
  return s;
}

}  // namespace bc::broker
