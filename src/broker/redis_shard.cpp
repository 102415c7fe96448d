#include "broker/redis_shard.hpp"

#include <hiredis/async.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <vector>

namespace bc::broker {

namespace asio = boost::asio;

namespace {

constexpr std::size_t subscribe_batch = 1000;  // channels per SUBSCRIBE when re-subscribing after a reconnect

std::string_view text_of(const redisReply* r) {
  return {r->str, r->len};
}

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
      pub_(
          ioc, endpoint_, opts, fmt::format("redis shard {} publish ({})", index, endpoint_.address()),
          [this](redisAsyncContext* ac) { on_pub_open(ac); }, [this] { on_pub_close(); }),
      sub_(
          ioc, endpoint_, opts, fmt::format("redis shard {} subscribe ({})", index, endpoint_.address()),
          [this](redisAsyncContext* ac) { on_sub_open(ac); }, [this] { on_sub_close(); }) {}

redis_shard::~redis_shard() {
  stop();
}

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
  fail_held();  // normally done by on_sub_close already
  fail_acked();
  wake_all();
}

// ---- publishing ----------------------------------------------------------------------------------------

void redis_shard::on_pub_open(redisAsyncContext* ac) {
  // PING after AUTH: its answer proves the server is a working Redis and that AUTH (if any) passed.
  redisAsyncCommand(ac, &redis_shard::on_ping_reply, this, "PING");
}

void redis_shard::on_ping_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // connection going away
  if (is_string(r) && text_of(r) == "PONG") return self->pub_.mark_ready();
  spdlog::log(self->pub_.failure_level(), "redis shard {}: unexpected answer to PING: {}", self->index_,
              r->type == REDIS_REPLY_ERROR ? std::string(text_of(r)) : "not PONG");
  self->pub_.drop_later("unexpected answer to PING");
}

void redis_shard::publish(std::string redis_channel, std::string envelope, publish_done done) {
  if (!up() || in_flight_.size() + held_count_ + acked_.size() >= opts_.max_in_flight ||
      in_flight_bytes_ + held_bytes_ + envelope.size() > opts_.max_in_flight_bytes) {
    failures_.add();
    return done(publish_status::unavailable);
  }
  in_flight_count_.add();
  // Both maps are empty in the steady state: one branch, no lookup.
  if ((!unconfirmed_.empty() || !held_.empty()) &&
      (unconfirmed_.count(redis_channel) != 0 || held_.count(redis_channel) != 0)) {
    held_bytes_ += envelope.size();
    ++held_count_;
    held_[redis_channel].push_back({std::move(envelope), std::move(done), std::chrono::steady_clock::now()});
    return;
  }
  send_publish(redis_channel, envelope, std::move(done));
}

void redis_shard::send_publish(const std::string& redis_channel, const std::string& envelope,
                               publish_done done) {
  redisAsyncContext* ac = pub_.ready() ? pub_.open_context() : nullptr;
  const char* argv[3] = {"PUBLISH", redis_channel.data(), envelope.data()};
  const size_t len[3] = {7, redis_channel.size(), envelope.size()};
  if (ac == nullptr || !sub_.ready() ||
      redisAsyncCommandArgv(ac, &redis_shard::on_publish_reply, this, 3, argv, len) != REDIS_OK) {
    return finish(done, publish_status::unavailable);
  }
  last_sent_ = std::chrono::steady_clock::now();
  const bool local = channels_.count(redis_channel) != 0;
  in_flight_.push_back({std::move(done), last_sent_, envelope.size(), local ? sub_epoch_ : 0});
  in_flight_bytes_ += envelope.size();
}

void redis_shard::finish(publish_done& done, publish_status status) {
  in_flight_count_.sub();
  (status == publish_status::ok ? published_ : failures_).add();
  done(status);
}

void redis_shard::release(const std::string& redis_channel) {
  auto it = held_.find(redis_channel);
  if (it == held_.end()) return;
  auto waiting = std::move(it->second);
  held_.erase(it);
  for (auto& h : waiting) {
    held_bytes_ -= h.envelope.size();
    --held_count_;
    send_publish(redis_channel, h.envelope, std::move(h.done));
  }
}

void redis_shard::fail_held() {
  auto all = std::move(held_);
  held_.clear();
  held_count_ = 0;
  held_bytes_ = 0;
  for (auto& [ch, waiting] : all) {
    for (auto& h : waiting) finish(h.done, publish_status::unavailable);
  }
}

void redis_shard::on_publish_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) self->pub_.going_down();
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && !self->in_flight_.empty() &&
      self->in_flight_.front().done) {
    spdlog::warn("redis shard {}: PUBLISH refused: {}", self->index_, std::string(text_of(r)));
  }
  // PUBLISH answers with the number of receivers; anything else (or no reply: the connection is gone) means
  // the message was not handed over.
  self->complete_front(r != nullptr && r->type == REDIS_REPLY_INTEGER ? publish_status::ok
                                                                      : publish_status::unavailable);
}

void redis_shard::complete_front(publish_status status) {
  if (in_flight_.empty()) return;  // cannot happen: one completion per command sent
  auto op = std::move(in_flight_.front());
  in_flight_.pop_front();
  in_flight_bytes_ -= op.bytes;
  if (!op.done) return;  // heartbeat
  if (status == publish_status::ok && op.sub_epoch != 0) {
    // Redis queued the message to our subscribe connection, unless that one was lost meanwhile.
    if (op.sub_epoch != sub_epoch_ || !sub_.ready()) return finish(op.done, publish_status::unavailable);
    acked_.push_back({std::move(op.done), status, true, pings_sent_ + 1});
    return want_ping();
  }
  if (!acked_.empty()) {  // in order behind those waiting
    acked_.push_back({std::move(op.done), status, false, acked_.back().ping});
    return;
  }
  finish(op.done, status);
}

void redis_shard::want_ping() {
  ping_wanted_ = pings_sent_ + 1;
  if (ping_posted_) return;
  ping_posted_ = true;
  // Posted: every PUBLISH reply of this read joins the same ping.
  asio::post(watchdog_.get_executor(), [this] {
    ping_posted_ = false;
    if (!stopped_ && pings_sent_ < ping_wanted_) send_sub_ping();
  });
}

void redis_shard::send_sub_ping() {
  redisAsyncContext* ac = sub_.ready() ? sub_.open_context() : nullptr;
  if (ac == nullptr) return;  // closed: on_sub_close answered the waiting publishes
  send_subscribe(ac, "SUBSCRIBE", &anchor_, 1);
  last_sub_ping_ = std::chrono::steady_clock::now();
  sub_pings_.push_back(last_sub_ping_);
  ++pings_sent_;
}

void redis_shard::on_pong() {
  sub_pings_.pop_front();
  ++pings_answered_;
  while (!acked_.empty() && acked_.front().ping <= pings_answered_) {
    auto op = std::move(acked_.front());
    acked_.pop_front();
    finish(op.done, op.status);
  }
}

void redis_shard::fail_acked() {
  auto all = std::move(acked_);
  acked_.clear();
  for (auto& op : all) finish(op.done, op.must_see ? publish_status::unavailable : op.status);
}

void redis_shard::on_pub_close() {
  // hiredis has completed every in-flight command with a null reply before telling us; this is a safety net.
  while (!in_flight_.empty()) complete_front(publish_status::unavailable);
}

void redis_shard::do_watch() {
  const auto every =
      std::clamp(opts_.publish_timeout / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(500));
  watchdog_.expires_after(every);
  watchdog_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    on_watch();
    do_watch();
  });
}

void redis_shard::on_watch() {
  const auto now = std::chrono::steady_clock::now();
  check_subscribe_timeout(now);
  watch_subscribe(now);
  if (in_flight_.empty()) {
    redisAsyncContext* ac = pub_.ready() ? pub_.open_context() : nullptr;
    if (ac != nullptr && now - last_sent_ >= opts_.heartbeat_interval &&
        redisAsyncCommand(ac, &redis_shard::on_publish_reply, this, "PING") == REDIS_OK) {
      last_sent_ = now;
      in_flight_.push_back({nullptr, now, 0, 0});
    }
    return;
  }
  const auto waited = now - in_flight_.front().sent;
  if (waited < opts_.publish_timeout) return;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
  pub_.drop(fmt::format("no reply for {} ms, Redis looks hung", ms));
  sub_.drop("the publish connection to the same server timed out");
}

void redis_shard::watch_subscribe(std::chrono::steady_clock::time_point now) {
  if (!sub_.ready()) return;
  if (sub_pings_.empty()) {
    if (now - last_sub_ping_ >= opts_.heartbeat_interval) send_sub_ping();
    return;
  }
  const auto waited = now - sub_pings_.front();
  if (waited < opts_.publish_timeout) return;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
  sub_.drop(fmt::format("no answer to a ping for {} ms, Redis looks hung", ms));
}

void redis_shard::check_subscribe_timeout(std::chrono::steady_clock::time_point now) {
  auto overdue = [&](std::chrono::steady_clock::time_point since) {
    if (now - since < opts_.publish_timeout) return false;
    // on_sub_close answers the held publishes and who waited
    sub_.drop(fmt::format("a SUBSCRIBE unconfirmed after {} ms", opts_.publish_timeout.count()));
    return true;
  };
  for (const auto& [ch, waiting] : held_) {
    if (overdue(waiting.front().since)) return;
  }
  for (const auto& [ch, waiting] : waiters_) {
    if (overdue(waiting.front().since)) return;
  }
}

// ---- subscribing ---------------------------------------------------------------------------------------

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
  for (const auto& ch : all) unconfirmed_[ch] = 1;
  send_subscribe(ac, "SUBSCRIBE", &anchor_, 1);
  if (!all.empty()) spdlog::info("redis shard {}: subscribing {} channels", index_, all.size());
}

void redis_shard::on_sub_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return self->sub_.going_down();
  if (r->type == REDIS_REPLY_ERROR) return self->sub_.drop_later("error reply: " + std::string(text_of(r)));
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_string(r->element[0]) ||
      !is_string(r->element[1])) {
    return;
  }
  const auto kind = text_of(r->element[0]);
  const auto channel = text_of(r->element[1]);
  if (kind == "message" && is_string(r->element[2])) {
    self->received_.add();
    self->on_message_(*self, channel, text_of(r->element[2]));
  } else if (kind == "subscribe" && channel == self->anchor_) {
    // The first answer on a connection ends its re-subscribe batch; later ones answer pings.
    if (!self->sub_pings_.empty()) return self->on_pong();
    if (!self->sub_.ready()) self->sub_.mark_ready();
  } else if (kind == "subscribe") {
    self->confirmed(std::string(channel));
  }
}

void redis_shard::confirmed(const std::string& redis_channel) {
  auto it = unconfirmed_.find(redis_channel);
  if (it == unconfirmed_.end() || --it->second > 0) return;
  unconfirmed_.erase(it);
  release(redis_channel);
  wake(redis_channel);
}

void redis_shard::on_sub_close() {
  ++sub_epoch_;
  sub_pings_.clear();
  pings_answered_ = pings_sent_;
  unconfirmed_.clear();
  fail_held();
  fail_acked();
  wake_all();
}

void redis_shard::await_subscribed(const std::string& redis_channel, std::function<void()> ready) {
  if (stopped_ || sub_.open_context() == nullptr || unconfirmed_.count(redis_channel) == 0) return ready();
  waiters_[redis_channel].push_back({std::move(ready), std::chrono::steady_clock::now()});
}

void redis_shard::wake(const std::string& redis_channel) {
  auto it = waiters_.find(redis_channel);
  if (it == waiters_.end()) return;
  auto waiting = std::move(it->second);
  waiters_.erase(it);
  for (auto& w : waiting) w.ready();
}

void redis_shard::wake_all() {
  auto all = std::move(waiters_);
  waiters_.clear();
  for (auto& [ch, waiting] : all) {
    for (auto& w : waiting) w.ready();
  }
}

void redis_shard::subscribe(const std::string& redis_channel) {
  if (!channels_.insert(redis_channel).second) return;
  channel_count_.add();
  // Before the connection is open the channel goes out with the whole set in on_sub_open.
  if (auto* ac = sub_.open_context()) {
    send_subscribe(ac, "SUBSCRIBE", &redis_channel, 1);
    ++unconfirmed_[redis_channel];
  }
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
  s.connect_failures = pub_.connect_failures() + sub_.connect_failures();
  s.channels = channel_count_.get();
  s.in_flight = in_flight_count_.get();
  return s;
}

}  // namespace bc::broker
