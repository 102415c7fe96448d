#include "broker/redis_broker.hpp"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <stdexcept>

#include "broker/redis_envelope.hpp"
#include "broker/redis_scripts.hpp"
#include "broker/redis_tls.hpp"
#include "util/prometheus.hpp"

namespace bc::broker {

namespace asio = boost::asio;

namespace {

// The TLS context, built once when an entry asks for TLS (rediss://): throws, at start-up, when a file of
// REDIS_TLS_* cannot be loaded.
redis_options with_tls(redis_options opts, const std::vector<redis_endpoint>& shards) {
  if (opts.tls_context || std::none_of(shards.begin(), shards.end(), [](const auto& e) { return e.tls; })) {
    return opts;
  }
  opts.tls_context = std::make_shared<redis_tls>(opts.tls);
  if (opts.tls.insecure_skip_verify) {
    spdlog::warn(
        "REDIS_TLS_INSECURE_SKIP_VERIFY is on: the Redis servers' certificates and names are NOT checked, so "
        "anyone on the network path can read and change the broker's traffic. For development only");
  }
  return opts;
}

redis_options with_mode(redis_options opts, const std::vector<redis_endpoint>& shards) {
  opts.cluster = shards.size() == 1 && !shards.front().cluster_seeds.empty();
  if (opts.cluster && opts.channel_prefix.find_first_of("{}") != std::string::npos) {
    throw std::invalid_argument("with Redis Cluster the channel prefix cannot contain '{' or '}'");
  }
  return with_tls(std::move(opts), shards);
}

}  // namespace

redis_broker::redis_broker(delivery_sink& sink, std::vector<redis_endpoint> shards, redis_options opts)
    : sink_(sink), opts_(with_mode(std::move(opts), shards)), work_(asio::make_work_guard(ioc_)) {
  if (shards.empty()) throw std::invalid_argument("the Redis broker needs at least one Redis instance");
  if (opts_.cluster) {
    cluster_ = std::make_unique<redis_cluster>(ioc_, std::move(shards.front()), opts_, sink_);
    return;
  }
  for (std::size_t i = 0; i < shards.size(); ++i) {
    shards_.push_back(std::make_unique<redis_shard>(ioc_, i, std::move(shards[i]), opts_, sink_));
  }
}

redis_broker::~redis_broker() {
  stop();
}

template <class Handler>
bool redis_broker::post_if_accepting(Handler&& h) {
  std::lock_guard lock(gate_);
  if (!accepting_) return false;
  asio::post(ioc_, std::forward<Handler>(h));
  return true;
}

void redis_broker::start() {
  if (thread_.joinable()) return;
  if (cluster_ && !post_if_accepting([this] { cluster_->start(); })) return;
  std::string where;
  for (const auto& s : shards_) where += (where.empty() ? "" : ", ") + s->stats().address;
  if (!cluster_) spdlog::info("redis broker: {} shard(s): {}", shards_.size(), where);
  if (!post_if_accepting([this] {
        for (auto& s : shards_) s->start();
      })) {
    return;
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "bc-redis");
    // A Redis that died must cost an EPIPE, not the process (Asio sends with MSG_NOSIGNAL; this is the belt
    // to its braces). Blocked on this thread (the only one that writes to Redis) rather than relying on the
    // process ignoring SIGPIPE.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    while (true) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {  // a handler must not take the broker thread down
        spdlog::error("redis broker: unexpected exception: {}", e.what());
      }
    }
  });
}

void redis_broker::stop() {
  {
    std::lock_guard lock(gate_);
    if (!accepting_) return;
    accepting_ = false;
    // Last in the queue: everything accepted before runs first (publishes reach Redis or answer unavailable).
    asio::post(ioc_, [this] {
      for (auto& s : shards_) s->stop();
      if (cluster_) cluster_->stop();
      work_.reset();
    });
  }
  if (thread_.joinable()) {
    thread_.join();
  } else {
    ioc_.run();  // never started: complete what was queued (publishes answer unavailable)
  }
  spdlog::info("redis broker: stopped");
}

void redis_broker::publish(core::message msg, std::function<void(publish_status)> done) {
  if (cluster_) return cluster_publish(std::move(msg), std::move(done));
  auto& shard = shard_for(msg.channel);
  if (shard.up()) {
    // Envelope body, keys and the channel's history rule on the caller's thread: the broker thread only
    // writes bytes.
    auto req = make_request(msg);
    std::unique_lock lock(gate_);
    if (accepting_) {
      asio::post(ioc_, [&shard, req = std::move(req), done = std::move(done)]() mutable {
        shard.publish(std::move(req), std::move(done));
      });
      return;
    }
  }
  // Fast refusal: a connection of the shard is known to be down (or we are stopping). Not sent, so nothing
  // to order against.
  shard.count_rejected();
  done(publish_status::unavailable);
}

redis_publish_request redis_broker::make_request(const core::message& msg) const {
  redis_publish_request req;
  req.redis_channel = redis_cluster_slots::pubsub_channel(opts_, msg.channel);
  req.meta_key = redis_scripts::meta_key(opts_.channel_prefix, msg.channel);
  req.stream_key = redis_scripts::stream_key(opts_.channel_prefix, msg.channel);
  req.body = encode_envelope_body(msg);
  if (any_history_) {
    const auto rule = opts_.channels.for_channel(msg.channel);
    req.history_size = rule.history_size;
    req.history_ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(rule.history_ttl).count();
  }
  return req;
}

namespace {
void refuse(std::function<void(publish_status)>& done) {
  done(publish_status::unavailable);
}
template <class Result>
void refuse(std::function<void(Result)>& done) {
  Result r;
  r.status = publish_status::unavailable;
  done(std::move(r));
}
}  // namespace

template <class Done, class Fn>
void redis_broker::on_cluster(Done done, Fn fn) {
  {
    std::lock_guard lock(gate_);
    if (accepting_) {
      asio::post(ioc_, [fn = std::move(fn), done = std::move(done)]() mutable { fn(std::move(done)); });
      return;
    }
  }
  refuse(done);
}

void redis_broker::cluster_publish(core::message msg, std::function<void(publish_status)> done) {
  // The shard is known on the broker thread only: no refusal here while a primary is down.
  on_cluster(std::move(done), [this, channel = msg.channel, req = make_request(msg)](auto done) mutable {
    cluster_->publish(channel, std::move(req), std::move(done));
  });
}

presence_target redis_broker::presence_target_of(const std::string& channel, bool announce) const {
  auto t = make_presence_target(opts_.channel_prefix, channel, announce, join_leave_limit(channel));
  if (opts_.cluster) t.redis_channel = redis_cluster_slots::pubsub_channel(opts_, channel);
  return t;
}

void redis_broker::subscribe(std::string_view channel) {
  if (cluster_) {
    post_if_accepting([this, ch = std::string(channel)] { cluster_->subscribe(ch); });
    return;
  }
  post_if_accepting([ch = opts_.channel_prefix + std::string(channel), &shard = shard_for(channel)] {
    shard.subscribe(ch);
  });
}

void redis_broker::unsubscribe(std::string_view channel) {
  if (cluster_) {
    post_if_accepting([this, ch = std::string(channel)] { cluster_->unsubscribe(ch); });
    return;
  }
  post_if_accepting([ch = opts_.channel_prefix + std::string(channel), &shard = shard_for(channel)] {
    shard.unsubscribe(ch);
  });
}

bool redis_broker::await_subscribed(std::string_view channel, std::function<void()> ready) {
  // Posted after the subscribe() that the same thread made for this channel, so the shard sees it sent.
  if (cluster_) {
    return !post_if_accepting([this, ch = std::string(channel), ready = std::move(ready)]() mutable {
      cluster_->await_subscribed(ch, std::move(ready));
    });
  }
  return !post_if_accepting(
      [ch = opts_.channel_prefix + std::string(channel), &shard = shard_for(channel),
       ready = std::move(ready)]() mutable { shard.await_subscribed(ch, std::move(ready)); });
}

void redis_broker::history(history_request req, std::function<void(history_result)> done) {
  if (cluster_) {
    return on_cluster(std::move(done), [this, req = std::move(req)](auto done) mutable {
      cluster_->history(std::move(req), std::move(done));
    });
  }
  auto& shard = shard_for(req.channel);
  if (shard.readable()) {
    std::unique_lock lock(gate_);
    if (accepting_) {
      asio::post(ioc_, [&shard, req = std::move(req), done = std::move(done)]() mutable {
        shard.history(std::move(req), std::move(done));
      });
      return;
    }
  }
  history_result r;
  r.status = publish_status::unavailable;
  done(std::move(r));
}

std::size_t redis_broker::join_leave_limit(std::string_view channel) const {
  return opts_.channels.for_channel(channel).join_leave_limit;
}

bool redis_broker::announces(std::string_view channel) const {
  const auto rule = opts_.channels.for_channel(channel);
  return rule.presence && rule.join_leave;
}

// Keys and headers on the caller's thread, like a publish's; posted in call order, so that a client's add
// and remove (from its own thread) reach Redis in that order.
void redis_broker::add_presence(std::string channel, core::presence_member m, bool announce) {
  auto target = presence_target_of(channel, announce);
  if (cluster_) {
    post_if_accepting([this, target = std::move(target), m = std::move(m)]() mutable {
      cluster_->add_presence(std::move(target), std::move(m));
    });
    return;
  }
  post_if_accepting([&shard = shard_for(channel), target = std::move(target), m = std::move(m)]() mutable {
    shard.add_presence(std::move(target), std::move(m));
  });
}

void redis_broker::remove_presence(std::string channel, core::presence_member m, bool announce) {
  auto target = presence_target_of(channel, announce);
  if (cluster_) {
    post_if_accepting([this, target = std::move(target), id = std::move(m.client_id)] {
      cluster_->remove_presence(target, id);
    });
    return;
  }
  post_if_accepting([&shard = shard_for(channel), target = std::move(target), id = std::move(m.client_id)] {
    shard.remove_presence(target, id);
  });
}

void redis_broker::presence(std::string channel, std::size_t max, std::function<void(presence_result)> done) {
  if (cluster_) {
    return on_cluster(std::move(done), [this, t = presence_target_of(channel, announces(channel)),
                                        max](auto done) { cluster_->presence(t, max, std::move(done)); });
  }
  auto& shard = shard_for(channel);
  if (shard.readable()) {
    auto target =
        make_presence_target(opts_.channel_prefix, channel, announces(channel), join_leave_limit(channel));
    std::unique_lock lock(gate_);
    if (accepting_) {
      asio::post(ioc_, [&shard, target = std::move(target), max, done = std::move(done)]() mutable {
        shard.presence(target, max, std::move(done));
      });
      return;
    }
  }
  presence_result r;
  r.status = publish_status::unavailable;
  done(std::move(r));
}

void redis_broker::presence_stats(std::string channel, std::function<void(presence_stats_result)> done) {
  if (cluster_) {
    return on_cluster(std::move(done), [this, t = presence_target_of(channel, announces(channel))](
                                           auto done) { cluster_->presence_stats(t, std::move(done)); });
  }
  auto& shard = shard_for(channel);
  if (shard.readable()) {
    auto target =
        make_presence_target(opts_.channel_prefix, channel, announces(channel), join_leave_limit(channel));
    std::unique_lock lock(gate_);
    if (accepting_) {
      asio::post(ioc_, [&shard, target = std::move(target), done = std::move(done)]() mutable {
        shard.presence_stats(target, std::move(done));
      });
      return;
    }
  }
  presence_stats_result r;
  r.status = publish_status::unavailable;
  done(std::move(r));
}

void redis_broker::control(control_message msg, std::function<void(publish_status)> done) {
  if (cluster_) {
    return on_cluster(std::move(done), [this, env = encode_control_envelope(msg)](auto done) mutable {
      cluster_->control(std::move(env), std::move(done));
    });
  }
  auto& shard = *shards_.front();
  if (shard.up()) {
    std::unique_lock lock(gate_);
    if (accepting_) {
      asio::post(ioc_, [&shard, env = encode_control_envelope(msg), done = std::move(done)]() mutable {
        shard.control(std::move(env), std::move(done));
      });
      return;
    }
  }
  done(publish_status::unavailable);
}

bool redis_broker::healthy() const {
  if (cluster_) return cluster_->healthy();
  for (const auto& s : shards_) {
    if (!s->up()) return false;
  }
  return true;
}

std::string redis_broker::describe() const {
  if (cluster_) return cluster_->describe();
  std::size_t up = 0;
  for (const auto& s : shards_) up += s->up() ? 1 : 0;
  return "redis " + std::to_string(shards_.size()) + (shards_.size() == 1 ? " shard, " : " shards, ") +
         std::to_string(up) + " up";
}

std::vector<redis_shard_stats> redis_broker::stats() const {
  if (cluster_) return cluster_->stats();
  std::vector<redis_shard_stats> out;
  out.reserve(shards_.size());
  for (const auto& s : shards_) out.push_back(s->stats());
  return out;
}

std::size_t redis_broker::shard_of(std::string_view channel, std::size_t shards) {
  if (shards <= 1) return 0;
  std::uint64_t key = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : channel) {
    key ^= c;
    key *= 1099511628211ull;
  }
  // Jump Consistent Hash, "A Fast, Minimal Memory, Consistent Hash Algorithm" (Lamping, Veach 2014).
  std::int64_t b = -1;
  std::int64_t j = 0;
  while (j < static_cast<std::int64_t>(shards)) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = static_cast<std::int64_t>(static_cast<double>(b + 1) *
                                  (static_cast<double>(1ll << 31) / static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<std::size_t>(b);
}

std::unique_ptr<broker> make_redis_broker(delivery_sink& sink, std::string_view redis_url,
                                          redis_options opts) {
  return std::make_unique<redis_broker>(sink, parse_redis_urls(redis_url), std::move(opts));
}

void redis_broker::append_metrics(std::string& out) const {
  const auto shards = stats();
  auto series = [&](const char* name, const char* type, const char* help, auto get) {
    util::append_metric_header(out, name, type, help);
    for (std::size_t i = 0; i < shards.size(); ++i) {
      util::append_sample(
          out, name,
          "shard=\"" + std::to_string(shards[i].index) + "\",address=\"" + shards[i].address + "\"",
          static_cast<std::uint64_t>(get(shards[i])));
    }
  };
  series("broadcaster_redis_shard_up", "gauge", "1 while both connections of the shard are up.",
         [](const redis_shard_stats& s) { return s.publish_up && s.subscribe_up ? 1 : 0; });
  series("broadcaster_redis_published_total", "counter", "PUBLISHes Redis acknowledged.",
         [](const redis_shard_stats& s) { return s.published; });
  series("broadcaster_redis_publish_failures_total", "counter", "Publishes answered Unavailable.",
         [](const redis_shard_stats& s) { return s.publish_failures; });
  series("broadcaster_redis_received_total", "counter", "Messages received from Redis.",
         [](const redis_shard_stats& s) { return s.received; });
  series("broadcaster_redis_invalid_total", "counter",
         "Messages from Redis dropped as unreadable or on the wrong channel.",
         [](const redis_shard_stats& s) { return s.invalid; });
  series("broadcaster_redis_reconnects_total", "counter", "Connections re-established after a loss.",
         [](const redis_shard_stats& s) { return s.reconnects; });
  series("broadcaster_redis_connect_failures_total", "counter",
         "Attempts to (re)connect that failed before the connection was ready.",
         [](const redis_shard_stats& s) { return s.connect_failures; });
  series("broadcaster_redis_channels", "gauge", "Channels this node is subscribed to on the shard.",
         [](const redis_shard_stats& s) { return s.channels; });
  series("broadcaster_redis_in_flight", "gauge", "Publishes sent and not yet answered.",
         [](const redis_shard_stats& s) { return s.in_flight; });
  series("broadcaster_redis_gaps_total", "counter",
         "Jumps in a channel's offsets that its history could not fill (shown to subscribers as a gap).",
         [](const redis_shard_stats& s) { return s.gaps; });
  series("broadcaster_redis_skipped_total", "counter",
         "Messages in those gaps: published, never delivered here.",
         [](const redis_shard_stats& s) { return s.skipped; });
  series("broadcaster_redis_repaired_total", "counter",
         "Messages lost on the way and delivered from the channel's history instead.",
         [](const redis_shard_stats& s) { return s.repaired; });
  series("broadcaster_redis_duplicates_total", "counter", "Messages dropped as already delivered.",
         [](const redis_shard_stats& s) { return s.duplicates; });
  series("broadcaster_redis_presence_members", "gauge",
         "This node's presence members on the shard, kept in Redis and refreshed.",
         [](const redis_shard_stats& s) { return s.presence_members; });
  series("broadcaster_redis_presence_refreshed_total", "counter", "Member refreshes Redis answered.",
         [](const redis_shard_stats& s) { return s.presence_refreshed; });
  series("broadcaster_redis_presence_readded_total", "counter",
         "Refreshed members Redis no longer had (it restarted or lost them, or they had expired).",
         [](const redis_shard_stats& s) { return s.presence_readded; });
  series("broadcaster_redis_presence_errors_total", "counter",
         "Presence commands (add, remove, refresh, read) that failed or got no answer.",
         [](const redis_shard_stats& s) { return s.presence_errors; });
  series("broadcaster_redis_controls_total", "counter",
         "Server API commands (disconnect, unsubscribe) received from the control channel.",
         [](const redis_shard_stats& s) { return s.controls; });
  series("broadcaster_redis_failovers_total", "counter",
         "Moves to a new primary named by Redis Sentinel (failovers followed).",
         [](const redis_shard_stats& s) { return s.failovers; });
  series("broadcaster_redis_wait_failures_total", "counter",
         "Publishes answered Unavailable because fewer replicas than REDIS_WAIT_REPLICAS acknowledged them.",
         [](const redis_shard_stats& s) { return s.wait_failures; });
}

}  // namespace bc::broker
