#include "broker/redis_shard.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <vector>

#include "broker/redis_cluster_slots.hpp"
#include "broker/redis_envelope.hpp"
#include "broker/redis_scripts.hpp"

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

// Cluster: the scripts SPUBLISH (redis_scripts::sharded).
const char* script_source(const redis_options& opts, const char* source) {
  return opts.cluster ? redis_scripts::sharded(source) : source;
}

bool to_u64(const redisReply* r, std::uint64_t& v) {
  if (r->type == REDIS_REPLY_INTEGER) {
    if (r->integer < 0) return false;
    v = static_cast<std::uint64_t>(r->integer);
    return true;
  }
  if (!is_string(r) || r->len == 0 || r->len > 20) return false;
  v = 0;
  for (std::size_t i = 0; i < r->len; ++i) {
    if (r->str[i] < '0' || r->str[i] > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(r->str[i] - '0');
  }
  return true;
}

// The read script's answer: {epoch, offset, now, entries?}, entries as XRANGE gives them, each decoded and
// checked to belong to `channel`; `times` gets each entry's append time (Redis's clock, unix ms), `now` the
// time of the read. False when it is not that (an error, or no reply at all).
bool parse_read(const redisReply* r, const std::string& channel, std::string& epoch, std::uint64_t& top,
                std::vector<core::message>& messages, std::vector<std::uint64_t>* times = nullptr,
                std::uint64_t* now = nullptr) {
  std::uint64_t read_at = 0;
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_string(r->element[0]) ||
      !to_u64(r->element[1], top) || !to_u64(r->element[2], read_at)) {
    return false;
  }
  epoch.assign(r->element[0]->str, r->element[0]->len);
  if (now != nullptr) *now = read_at;
  if (r->elements < 4) return true;
  const redisReply* entries = r->element[3];
  if (entries->type != REDIS_REPLY_ARRAY) return false;
  messages.reserve(entries->elements);
  for (std::size_t i = 0; i < entries->elements; ++i) {
    const redisReply* e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY ||
        e->element[1]->elements < 2 || !is_string(e->element[1]->element[1])) {
      return false;
    }
    core::message m;
    if (!decode_envelope(text_of(e->element[1]->element[1]), m) || m.channel != channel || m.offset == 0) {
      return false;
    }
    if (times != nullptr) {
      std::uint64_t t = 0;
      const redisReply* f = e->element[1];
      if (f->elements >= 4 && is_string(f->element[2]) && text_of(f->element[2]) == "t")
        to_u64(f->element[3], t);
      times->push_back(t);
    }
    messages.push_back(std::move(m));
  }
  return true;
}

}  // namespace

redis_shard::redis_shard(asio::io_context& ioc, std::size_t index, redis_endpoint endpoint,
                         const redis_options& opts, delivery_sink& sink)
    : index_(index),
      endpoint_(std::move(endpoint)),
      opts_(opts),
      sink_(sink),
      anchor_(opts.channel_prefix + "!anchor"),  // '!' never appears in a valid channel name
      control_(redis_cluster_slots::pubsub_channel(opts, "!control")),  // Cluster: the sharded P{!control}
      meta_ttl_ms_(std::to_string(std::chrono::milliseconds(opts.position_ttl).count())),
      publish_script_{this, "publish", script_source(opts, redis_scripts::publish), {}},
      read_script_{this, "read", redis_scripts::read, {}},
      presence_add_script_{this, "presence add", script_source(opts, redis_scripts::presence_add), {}},
      presence_remove_script_{
          this, "presence remove", script_source(opts, redis_scripts::presence_remove), {}},
      presence_read_script_{this, "presence read", script_source(opts, redis_scripts::presence_read), {}},
      scripts_{&publish_script_, &presence_add_script_, &presence_remove_script_, &presence_read_script_,
               &read_script_},
      rng_(std::random_device{}()),
      watchdog_(ioc),
      tracker_(
          sink,
          [this](const std::string& channel, const std::string& epoch, std::uint64_t first,
                 std::uint64_t count, bool any_epoch, redis_channel_tracker::range_done done) {
            fetch(channel, epoch, first, count, any_epoch, std::move(done));
          },
          fmt::format("redis shard {}", index)),
      pub_(
          ioc, endpoint_, opts, fmt::format("redis shard {} publish ({})", index, endpoint_.address()),
          [this](redis_link* ac) { on_pub_open(ac); }, [this] { on_pub_close(); }),
      sub_(
          ioc, endpoint_, opts, fmt::format("redis shard {} subscribe ({})", index, endpoint_.address()),
          [this](redis_link* ac) { on_sub_open(ac); }, [this] { on_sub_close(); }),
      presence_(
          ioc, std::chrono::duration_cast<std::chrono::milliseconds>(opts.presence_ttl),
          [this](redis_presence::script which, std::vector<std::string> args,
                 redis_presence::reply_handler done) {
            script& sc = which == redis_presence::script::add      ? presence_add_script_
                         : which == redis_presence::script::remove ? presence_remove_script_
                                                                   : presence_read_script_;
            send_script(sc, std::move(args), std::move(done));
          },
          [this] { return pub_.ready(); }),
      holds_control_(index == 0 && !opts.cluster) {
  if (opts.cluster) {
    pub_.on_lost([this] {
      if (topology_hint_) topology_hint_("a connection to " + endpoint_.address() + " was lost");
    });
    sub_.on_lost([this] {
      if (topology_hint_) topology_hint_("a connection to " + endpoint_.address() + " was lost");
    });
  }
  if (endpoint_.sentinels.empty()) return;
  sentinel_ = std::make_unique<redis_sentinel>(
      ioc, endpoint_, opts, fmt::format("redis shard {}", index),
      [this](const std::string& host, int port, bool announced, const std::string& why) {
        on_master(host, port, announced, why);
      });
  pub_.on_lost([this] { sentinel_->ask(); });
  sub_.on_lost([this] { sentinel_->ask(); });
}

// (The tracker's idle hook is set in start(): it needs the whole object.)

redis_shard::~redis_shard() {
  stop();
}

void redis_shard::start() {
  tracker_.on_idle([this] { release_acked(); });
  stopped_ = false;
  if (sentinel_) {
    sentinel_->start();  // the connections start once it names the primary
  } else {
    connections_started_ = true;
    pub_.start();
    sub_.start();
  }
  presence_.start();
  do_watch();
}

void redis_shard::stop() {
  if (stopped_) return;
  stopped_ = true;
  watchdog_.cancel();
  if (sentinel_) sentinel_->stop();
  presence_.stop();
  pub_.stop();
  sub_.stop();
  fail_held();  // normally done by on_sub_close already
  expire_parked_fetches(std::chrono::steady_clock::now(), true);
  fail_acked();
  wake_all();
}

// ---- publishing ----------------------------------------------------------------------------------------

void redis_shard::on_pub_open(redis_link* ac) {
  // The scripts, then PING: its answer proves the server is a working Redis, that AUTH (if any) passed and
  // that both scripts are loaded (answered before it).
  for (script* sc : scripts_) sc->sha.clear();
  reloading_ = false;
  if (sentinel_ || opts_.cluster) check_role(ac, true);
  load_scripts(ac, false);
  ac->command(&redis_shard::on_ping_reply, this, "PING");
}

void redis_shard::load_scripts(redis_link* ac, bool pipelined) {
  for (script* sc : scripts_) {
    const char* argv[3] = {"SCRIPT", "LOAD", sc->source};
    const size_t len[3] = {6, 4, std::char_traits<char>::length(sc->source)};
    if (!pipelined) {
      ac->command_argv(&redis_shard::on_script_loaded, sc, 3, argv, len);
      continue;
    }
    // After NOSCRIPT, in the publish FIFO (its replies are counted there).
    if (ac->command_argv(&redis_shard::on_pub_reply, this, 3, argv, len) != REDIS_OK) return;
    in_flight_.push_back({nullptr,
                          [this, sc](redisReply* r) {
                            if (sc == scripts_.back()) reloading_ = false;
                            if (r != nullptr && is_string(r)) sc->sha.assign(r->str, r->len);
                          },
                          std::chrono::steady_clock::now(), 0, 0});
  }
}

void redis_shard::on_script_loaded(redis_link*, void* reply, void* privdata) {
  auto* sc = static_cast<script*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // connection going away
  if (r->type == REDIS_REPLY_STRING) {
    sc->sha.assign(r->str, r->len);
    return;
  }
  redis_shard* self = sc->shard;
  spdlog::log(self->pub_.failure_level(), "redis shard {}: cannot load the {} script: {}", self->index_,
              sc->name, r->type == REDIS_REPLY_ERROR ? std::string(text_of(r)) : "unexpected answer");
  self->pub_.drop_later(std::string("SCRIPT LOAD of the ") + sc->name + " script failed");
}

void redis_shard::on_ping_reply(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // connection going away
  if (is_string(r) && text_of(r) == "PONG") {
    if ((self->sentinel_ || self->opts_.cluster) && !self->pub_role_ok_) return;  // not the primary
    for (const script* sc : self->scripts_) {
      if (sc->sha.empty()) return;  // drop_later queued
    }
    self->pub_.mark_ready();
    self->run_parked_fetches();
    self->presence_.on_connected();
    return self->check_positions();
  }
  spdlog::log(self->pub_.failure_level(), "redis shard {}: unexpected answer to PING: {}", self->index_,
              r->type == REDIS_REPLY_ERROR ? std::string(text_of(r)) : "not PONG");
  self->pub_.drop_later("unexpected answer to PING");
}

void redis_shard::publish(redis_publish_request req, publish_done done) {
  if (!up() || in_flight_.size() + held_count_ + acked_.size() >= opts_.max_in_flight ||
      in_flight_bytes_ + held_bytes_ + req.body.size() > opts_.max_in_flight_bytes) {
    failures_.add();
    return done(publish_status::unavailable);
  }
  in_flight_count_.add();
  // Both maps are empty in the steady state: one branch, no lookup.
  if ((!unconfirmed_.empty() || !held_.empty()) &&
      (unconfirmed_.count(req.redis_channel) != 0 || held_.count(req.redis_channel) != 0)) {
    held_bytes_ += req.body.size();
    ++held_count_;
    auto& queue = held_[req.redis_channel];
    queue.push_back({std::move(req), std::move(done), std::chrono::steady_clock::now()});
    return;
  }
  send_publish(std::move(req), std::move(done));
}

std::string redis_shard::new_epoch() {
  return fmt::format("{:016x}", rng_());
}

void redis_shard::send_publish(redis_publish_request req, publish_done done) {
  redis_link* ac = pub_.ready() ? pub_.open_context() : nullptr;
  const std::string epoch = new_epoch();
  const std::string size = std::to_string(req.history_size);
  const std::string ttl = std::to_string(req.history_ttl_ms);
  const std::string& sha = publish_script_.sha;
  const char* argv[] = {"EVALSHA",
                        sha.data(),
                        "2",
                        req.meta_key.data(),
                        req.stream_key.data(),
                        req.redis_channel.data(),
                        epoch.data(),
                        size.data(),
                        ttl.data(),
                        meta_ttl_ms_.data(),
                        req.body.data(),
                        replication_id_.data(),
                        replication_id2_.data()};
  const size_t len[] = {7,
                        sha.size(),
                        1,
                        req.meta_key.size(),
                        req.stream_key.size(),
                        req.redis_channel.size(),
                        epoch.size(),
                        size.size(),
                        ttl.size(),
                        meta_ttl_ms_.size(),
                        req.body.size(),
                        replication_id_.size(),
                        replication_id2_.size()};
  if (ac != nullptr && sub_.ready() && req.asking &&
      ac->command(&redis_shard::on_pub_reply, this, "ASKING") == REDIS_OK) {
    in_flight_.push_back({nullptr, nullptr, std::chrono::steady_clock::now(), 0, 0});  // answered +OK
  }
  if (ac == nullptr || !sub_.ready() ||
      ac->command_argv(&redis_shard::on_pub_reply, this, 13, argv, len) != REDIS_OK) {
    return finish(done, publish_status::unavailable);
  }
  last_sent_ = std::chrono::steady_clock::now();
  const bool local = channels_.count(req.redis_channel) != 0;
  if (opts_.wait_replicas > 0 && req.history_size > 0) {
    // WAIT blocks this connection until the replicas acknowledged everything before it: the publishes behind
    // it wait too, which is what bounds a shard's rate with this option on.
    auto script_ok = std::make_shared<bool>(false);
    in_flight_.push_back(
        {nullptr, [script_ok](redisReply* r) { *script_ok = r != nullptr && r->type == REDIS_REPLY_INTEGER; },
         last_sent_, 0, 0});
    if (ac->command(&redis_shard::on_pub_reply, this, "WAIT %u %lld", opts_.wait_replicas,
                    static_cast<long long>(opts_.wait_timeout.count())) != REDIS_OK) {
      return finish(done, publish_status::unavailable);  // the context is going down: its callbacks follow
    }
    in_flight_.push_back({std::move(done), nullptr, last_sent_, req.body.size(), local ? sub_epoch_ : 0,
                          std::move(script_ok)});
    in_flight_bytes_ += req.body.size();
    return;
  }
  in_flight_.push_back({std::move(done), nullptr, last_sent_, req.body.size(), local ? sub_epoch_ : 0});
  in_flight_bytes_ += req.body.size();
  // Cluster: kept until answered, to be sent again elsewhere if Redis answers MOVED or ASK.
  if (opts_.cluster && redirect_)
    in_flight_.back().req = std::make_shared<redis_publish_request>(std::move(req));
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
    held_bytes_ -= h.req.body.size();
    --held_count_;
    send_publish(std::move(h.req), std::move(h.done));
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

void redis_shard::on_pub_reply(redis_link* ac, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) self->pub_.going_down();
  if (self->in_flight_.empty()) return;  // cannot happen: one entry per command sent
  self->readonly(ac, r);
  if (self->opts_.cluster) self->cluster_redirect(r);
  auto op = std::move(self->in_flight_.front());
  self->in_flight_.pop_front();
  self->in_flight_bytes_ -= op.bytes;
  const bool noscript = r != nullptr && r->type == REDIS_REPLY_ERROR && text_of(r).substr(0, 8) == "NOSCRIPT";
  if (noscript && !self->reloading_ && ac != nullptr && self->pub_.open_context() == ac) {
    spdlog::warn("redis shard {}: Redis lost the scripts (NOSCRIPT); loading them again", self->index_);
    self->reloading_ = true;
    self->load_scripts(ac, true);
  }
  if (op.req && self->redirected(r, op)) return;
  if (op.read) {
    try {
      op.read(r);
    } catch (const std::exception& e) {  // never unwind through hiredis's C frames
      spdlog::error("redis shard {}: a read's handler failed: {}", self->index_, e.what());
    }
    return;
  }
  if (!op.done) return;  // heartbeat
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && !noscript) {
    spdlog::warn("redis shard {}: publish refused: {}", self->index_, std::string(text_of(r)));
  }
  // The script answers with the message's offset; anything else (or no reply: the connection is gone)
  // means the message was not handed over (an error stops the script before its PUBLISH).
  bool ok = r != nullptr && r->type == REDIS_REPLY_INTEGER;
  if (op.script_ok) {
    ok = ok && *op.script_ok && r->integer >= static_cast<long long>(self->opts_.wait_replicas);
    if (!ok && *op.script_ok && r != nullptr) self->wait_failures_.add();
  }
  self->complete_publish(op, ok ? publish_status::ok : publish_status::unavailable);
}

void redis_shard::complete_publish(in_flight& op, publish_status status) {
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
  redis_link* ac = sub_.ready() ? sub_.open_context() : nullptr;
  if (ac == nullptr) return;  // closed: on_sub_close answered the waiting publishes
  send_subscribe(ac, "SUBSCRIBE", &anchor_, 1);
  last_sub_ping_ = std::chrono::steady_clock::now();
  sub_pings_.push_back(last_sub_ping_);
  ++pings_sent_;
}

void redis_shard::on_pong() {
  sub_pings_.pop_front();
  ++pings_answered_;
  release_acked();
}

void redis_shard::check_positions() {
  // The reads go over the publish connection: when the subscribe connection is back first, on its turn.
  if (!check_owed_ || !pub_.ready() || !sub_.ready()) return;
  check_owed_ = false;
  tracker_.check_all();
}

void redis_shard::release_acked() {
  // While the tracker holds messages (a repair in flight) an acknowledged one may be among them.
  if (!tracker_.idle()) return;
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
  // The link has completed every in-flight command with a null reply before telling us; this is a safety net.
  while (!in_flight_.empty()) {
    auto op = std::move(in_flight_.front());
    in_flight_.pop_front();
    in_flight_bytes_ -= op.bytes;
    if (op.read) {
      op.read(nullptr);
    } else if (op.done) {
      complete_publish(op, publish_status::unavailable);
    }
  }
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

void redis_shard::run_parked_fetches() {
  auto parked = std::move(parked_fetches_);
  parked_fetches_.clear();
  for (auto& f : parked) fetch(f.channel, f.epoch, f.first, f.count, f.any_epoch, std::move(f.done));
}

void redis_shard::expire_parked_fetches(std::chrono::steady_clock::time_point now, bool all) {
  // Long enough for a reconnect with its backoff; short enough that held messages and acks do not wait for
  // a Redis that is not coming back.
  const auto limit = std::max(opts_.publish_timeout, std::chrono::milliseconds(5000));
  while (!parked_fetches_.empty() && (all || now - parked_fetches_.front().at >= limit)) {
    auto f = std::move(parked_fetches_.front());
    parked_fetches_.pop_front();
    f.done({});
  }
}

void redis_shard::on_watch() {
  const auto now = std::chrono::steady_clock::now();
  expire_parked_fetches(now, false);
  check_subscribe_timeout(now);
  watch_subscribe(now);
  if (in_flight_.empty()) {
    redis_link* ac = pub_.ready() ? pub_.open_context() : nullptr;
    if (ac != nullptr && now - last_sent_ >= opts_.heartbeat_interval &&
        ac->command(&redis_shard::on_pub_reply, this, "PING") == REDIS_OK) {
      last_sent_ = now;
      in_flight_.push_back({nullptr, nullptr, now, 0, 0});
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

// ---- reading positions and history ---------------------------------------------------------------------

void redis_shard::send_read(const std::string& channel, const char* mode, const std::string& since_epoch,
                            std::uint64_t first, std::uint64_t count, std::uint64_t window,
                            read_handler handler) {
  redis_link* ac = pub_.ready() ? pub_.open_context() : nullptr;
  const std::string meta = redis_scripts::meta_key(opts_.channel_prefix, channel);
  const std::string stream = redis_scripts::stream_key(opts_.channel_prefix, channel);
  const std::string epoch = new_epoch();
  const std::string first_s = std::to_string(first);
  const std::string count_s = std::to_string(count);
  const std::string window_s = std::to_string(window);
  const std::string& sha = read_script_.sha;
  const char* argv[] = {"EVALSHA",      sha.data(),          "2",  meta.data(),        stream.data(),
                        epoch.data(),   meta_ttl_ms_.data(), mode, since_epoch.data(), first_s.data(),
                        count_s.data(), window_s.data()};
  const size_t len[] = {7,
                        sha.size(),
                        1,
                        meta.size(),
                        stream.size(),
                        epoch.size(),
                        meta_ttl_ms_.size(),
                        1,
                        since_epoch.size(),
                        first_s.size(),
                        count_s.size(),
                        window_s.size()};
  if (ac == nullptr || ac->command_argv(&redis_shard::on_pub_reply, this, 12, argv, len) != REDIS_OK) {
    // Answered later, never inside the call (the tracker relies on it).
    asio::post(watchdog_.get_executor(), [handler = std::move(handler)] { handler(nullptr); });
    return;
  }
  last_sent_ = std::chrono::steady_clock::now();
  in_flight_.push_back({nullptr, std::move(handler), last_sent_, 0, 0});
}

void redis_shard::fetch(const std::string& channel, const std::string& epoch, std::uint64_t first,
                        std::uint64_t count, bool any_epoch, redis_channel_tracker::range_done done) {
  if (!stopped_ && !pub_.ready()) {
    parked_fetches_.push_back(
        {std::chrono::steady_clock::now(), channel, epoch, first, count, any_epoch, std::move(done)});
    return;
  }
  send_read(channel, any_epoch ? "A" : "a", epoch, first, count, 0,
            [channel, done = std::move(done)](redisReply* r) {
              redis_channel_tracker::range out;
              out.ok = parse_read(r, channel, out.epoch, out.top, out.messages);
              if (!out.ok) out.messages.clear();
              done(std::move(out));
            });
}

// One history() call: may take several reads when entries older than the channel's history_ttl (still in
// an active stream, which expires only as a whole) are skipped.
struct redis_shard::history_op {
  history_request req;
  std::function<void(history_result)> done;
  std::size_t window = 0;    // the channel's history_size: only the newest `window` offsets count
  std::uint64_t ttl_ms = 0;  // entries appended longer ago (by Redis's clock) are expired
  std::uint64_t first = 0;   // next offset to read (with `since`)
  history_result result;
};

void redis_shard::history(history_request req, std::function<void(history_result)> done) {
  if (!readable()) {
    history_result r;
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  auto op = std::make_shared<history_op>();
  const auto rule = opts_.channels.for_channel(req.channel);
  op->window = rule.history_size;
  op->ttl_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(rule.history_ttl).count());
  op->first = req.since ? req.since->offset + 1 : 0;
  op->req = std::move(req);
  op->done = std::move(done);
  history_step(std::move(op));
}

void redis_shard::history_step(std::shared_ptr<history_op> op) {
  const auto& req = op->req;
  const std::size_t want = op->window == 0 ? 0 : req.limit - op->result.messages.size();
  const char* mode = req.since ? "a" : "n";
  send_read(req.channel, mode, req.since ? req.since->epoch : std::string(), op->first, want, op->window,
            [this, op](redisReply* r) {
              auto& res = op->result;
              std::string epoch;
              std::uint64_t top = 0;
              std::vector<core::message> got;
              std::vector<std::uint64_t> times;
              std::uint64_t now = 0;
              if (!parse_read(r, op->req.channel, epoch, top, got, &times, &now)) {
                history_result failed;
                failed.status = publish_status::unavailable;
                return op->done(std::move(failed));
              }
              if (!op->req.since) {  // XREVRANGE: newest first
                std::reverse(got.begin(), got.end());
                std::reverse(times.begin(), times.end());
              }
              const std::uint64_t floor = top > op->window ? top - op->window : 0;
              const std::size_t asked = op->window == 0 ? 0 : op->req.limit - res.messages.size();
              const bool full = got.size() >= asked && asked > 0;
              bool expired = false;
              for (std::size_t i = 0; i < got.size(); ++i) {
                auto& m = got[i];
                op->first = m.offset + 1;
                if (m.offset <= floor || times[i] + op->ttl_ms < now) {
                  expired = true;
                  continue;
                }
                res.messages.push_back(std::move(m));
              }
              res.top = {std::move(epoch), top};
              // Skipped expired entries at the start of a `since` read: read on past them.
              if (op->req.since && res.top.epoch == op->req.since->epoch && expired && full &&
                  res.messages.size() < op->req.limit && op->first <= top) {
                return history_step(op);
              }
              if (op->req.since && res.top.epoch == op->req.since->epoch && op->req.since->offset <= top) {
                // Complete: every offset after `since` up to the top, without a hole.
                std::uint64_t next = op->req.since->offset + 1;
                bool whole = true;
                for (const auto& m : res.messages) whole = whole && m.offset == next++;
                res.complete = whole && next == top + 1;
              }
              if (op->req.since && res.top.epoch != op->req.since->epoch) res.messages.clear();
              res.status = publish_status::ok;
              op->done(std::move(res));
            });
}

// ---- presence and the server API ----------------------------------------------------------------------

void redis_shard::send_script(script& sc, std::vector<std::string> args, read_handler handler) {
  redis_link* ac = pub_.ready() ? pub_.open_context() : nullptr;
  std::vector<const char*> argv{"EVALSHA", sc.sha.data(), "3"};
  std::vector<size_t> len{7, sc.sha.size(), 1};
  for (const auto& a : args) {
    argv.push_back(a.data());
    len.push_back(a.size());
  }
  if (ac == nullptr || ac->command_argv(&redis_shard::on_pub_reply, this, static_cast<int>(argv.size()),
                                        argv.data(), len.data()) != REDIS_OK) {
    asio::post(watchdog_.get_executor(), [handler = std::move(handler)] { handler(nullptr); });
    return;
  }
  last_sent_ = std::chrono::steady_clock::now();
  in_flight_.push_back({nullptr, std::move(handler), last_sent_, 0, 0});
}

void redis_shard::add_presence(presence_target target, core::presence_member m) {
  presence_.add(std::move(target), std::move(m));
}

void redis_shard::remove_presence(const presence_target& target, const std::string& client_id) {
  presence_.remove(target, client_id);
}

void redis_shard::presence(const presence_target& target, std::size_t max,
                           std::function<void(presence_result)> done) {
  if (!readable()) {
    presence_result r;
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  presence_.read(target, max, std::move(done));
}

void redis_shard::presence_stats(const presence_target& target,
                                 std::function<void(presence_stats_result)> done) {
  if (!readable()) {
    presence_stats_result r;
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  presence_.stats(target, std::move(done));
}

void redis_shard::control(std::string envelope, publish_done done) {
  // Both connections: with the subscribe connection down this node would miss its own command.
  redis_link* ac = up() ? pub_.open_context() : nullptr;
  const char* argv[] = {opts_.cluster ? "SPUBLISH" : "PUBLISH", control_.data(), envelope.data()};
  const size_t len[] = {opts_.cluster ? 8u : 7u, control_.size(), envelope.size()};
  if (ac == nullptr || ac->command_argv(&redis_shard::on_pub_reply, this, 3, argv, len) != REDIS_OK) {
    return done(publish_status::unavailable);
  }
  last_sent_ = std::chrono::steady_clock::now();
  in_flight_.push_back({nullptr,
                        [done = std::move(done)](redisReply* r) {
                          done(r != nullptr && r->type == REDIS_REPLY_INTEGER ? publish_status::ok
                                                                              : publish_status::unavailable);
                        },
                        last_sent_, 0, 0});
}

void redis_shard::on_control_message(std::string_view bytes) {
  control_message msg;
  if (!decode_control_envelope(bytes, msg)) {
    invalid_.add();
    return;
  }
  controls_.add();
  sink_.deliver_control(std::move(msg));
}

// ---- subscribing ---------------------------------------------------------------------------------------

void redis_shard::send_subscribe(redis_link* ac, const char* command, const std::string* first,
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
  ac->command_argv(&redis_shard::on_sub_reply, this, static_cast<int>(argv.size()), argv.data(), len.data());
}

void redis_shard::on_sub_open(redis_link* ac) {
  // ROLE is answered before the confirmations (queued before the SUBSCRIBEs).
  if (sentinel_ || opts_.cluster) check_role(ac, false);
  // Re-subscribe everything with local interest, then the anchor: its confirmation comes last.
  std::vector<std::string> all(channels_.begin(), channels_.end());
  for (std::size_t at = 0; at < all.size() && !opts_.cluster; at += subscribe_batch) {
    send_subscribe(ac, "SUBSCRIBE", all.data() + at, std::min(subscribe_batch, all.size() - at));
  }
  for (const auto& ch : all) {
    if (opts_.cluster) send_cluster_subscribe(ac, true, ch);
    unconfirmed_[ch] = 1;
  }
  if (holds_control_) {
    if (opts_.cluster) {
      send_cluster_subscribe(ac, true, control_);
    } else {
      send_subscribe(ac, "SUBSCRIBE", &control_, 1);
    }
  }
  send_subscribe(ac, "SUBSCRIBE", &anchor_, 1);
  if (!all.empty()) spdlog::info("redis shard {}: subscribing {} channels", index_, all.size());
}

void redis_shard::on_sub_reply(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return self->sub_.going_down();
  if (r->type == REDIS_REPLY_ERROR && self->opts_.cluster && self->cluster_redirect(r)) return;  // not ours
  if (r->type == REDIS_REPLY_ERROR) return self->sub_.drop_later("error reply: " + std::string(text_of(r)));
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_string(r->element[0]) ||
      !is_string(r->element[1])) {
    return;
  }
  const auto kind = text_of(r->element[0]);
  const auto channel = text_of(r->element[1]);
  if (self->opts_.cluster && self->on_cluster_sub_reply(kind, channel)) return;
  if ((kind == "message" || kind == "smessage") && is_string(r->element[2])) {
    self->received_.add();
    if (channel == self->control_) return self->on_control_message(text_of(r->element[2]));
    self->on_sub_message(channel, text_of(r->element[2]));
  } else if (kind == "subscribe" && channel == self->anchor_) {
    // The first answer on a connection ends its re-subscribe batch; later ones answer pings.
    if (!self->sub_pings_.empty()) return self->on_pong();
    if (!self->sub_.ready()) {
      if ((self->sentinel_ || self->opts_.cluster) && !self->sub_role_ok_) return;  // not the primary
      self->sub_.mark_ready();
      self->check_owed_ = true;  // what was published while the connection was down
      self->check_positions();
    }
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

void redis_shard::on_sub_message(std::string_view redis_channel, std::string_view bytes) {
  core::message msg;
  if (!decode_envelope(bytes, msg) ||
      redis_channel != redis_cluster_slots::pubsub_channel(opts_, msg.channel)) {
    invalid_.add();
    spdlog::debug("redis shard {}: dropped an unreadable message on {}", index_, redis_channel);
    return;
  }
  // A join or leave takes no offset: past the tracker, which would see a message without a position.
  if (msg.type != core::message::kind::publication) return sink_.deliver_presence_event(std::move(msg));
  tracker_.on_message(std::move(msg));
}

void redis_shard::subscribe(const std::string& redis_channel) {
  if (!channels_.insert(redis_channel).second) return;
  channel_count_.add();
  tracker_.track(redis_cluster_slots::channel_of_pubsub(opts_, redis_channel));
  // Before the connection is open the channel goes out with the whole set in on_sub_open.
  if (auto* ac = sub_.open_context()) {
    if (opts_.cluster) {
      send_cluster_subscribe(ac, true, redis_channel);
    } else {
      send_subscribe(ac, "SUBSCRIBE", &redis_channel, 1);
    }
    ++unconfirmed_[redis_channel];
  }
}

void redis_shard::unsubscribe(const std::string& redis_channel) {
  if (channels_.erase(redis_channel) == 0) return;
  channel_count_.sub();
  tracker_.untrack(redis_cluster_slots::channel_of_pubsub(opts_, redis_channel));
  if (auto* ac = sub_.open_context()) {
    if (opts_.cluster) return send_cluster_subscribe(ac, false, redis_channel);
    send_subscribe(ac, "UNSUBSCRIBE", &redis_channel, 1);
  }
}

redis_shard_stats redis_shard::stats() const {
  redis_shard_stats s;
  s.index = index_;
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
  s.gaps = tracker_.gaps();
  s.skipped = tracker_.skipped();
  s.repaired = tracker_.repaired();
  s.duplicates = tracker_.duplicates();
  s.presence_members = presence_.members();
  s.presence_refreshed = presence_.refreshed();
  s.presence_readded = presence_.readded();
  s.presence_errors = presence_.errors();
  s.controls = controls_.get();
  s.failovers = failovers_.get();
  s.wait_failures = wait_failures_.get();
  return s;
}

}  // namespace bc::broker
