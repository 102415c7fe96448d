#include "broker/redis_cluster.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace bc::broker {

namespace asio = boost::asio;
namespace slots = redis_cluster_slots;

namespace {

// A stopped shard is destroyed this long after it was retired: every handler it had posted has run by then.
constexpr std::chrono::seconds retire_after{10};
// After a hint the map is read every cluster_refresh_degraded for this long: the node asked may not have
// caught up with the change yet (a failover is agreed on by the cluster bus, a resharding step by step).
constexpr std::chrono::seconds quick_after_hint{3};
// TRYAGAIN: Redis is moving the slot's keys; the command is sent again this much later.
constexpr std::chrono::milliseconds try_again_after{20};

redis_endpoint with_address(const redis_endpoint& creds, const std::string& host, int port) {
  redis_endpoint ep;
  ep.host = host;
  ep.port = port;
  ep.username = creds.username;
  ep.password = creds.password;
  ep.db = creds.db;
  ep.tls = creds.tls;  // rediss+cluster://: every node over TLS
  return ep;
}

}  // namespace

redis_cluster::redis_cluster(asio::io_context& ioc, redis_endpoint seeds, const redis_options& opts,
                             delivery_sink& sink)
    : ioc_(ioc),
      seeds_(std::move(seeds)),
      opts_(opts),
      sink_(sink),
      topo_endpoint_(
          with_address(seeds_, seeds_.cluster_seeds.front().host, seeds_.cluster_seeds.front().port)),
      topo_(
          ioc, topo_endpoint_, opts, "redis cluster topology", [this](redis_link* ac) { on_topo_open(ac); },
          [this] { asking_ = false; }),
      tick_(ioc),
      known_(seeds_.cluster_seeds) {
  topo_.on_lost([this] { next_seed(); });
}

redis_cluster::~redis_cluster() {
  stop();
}

void redis_cluster::start() {
  stopped_ = false;
  spdlog::info("redis cluster: asking {} seed node(s) for the slot map", seeds_.cluster_seeds.size());
  topo_.start();
  do_tick();
}

void redis_cluster::stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_.cancel();
  topo_.stop();
  for (auto& [addr, s] : shards_) s->stop();
  for (auto& [at, s] : retired_) s->stop();
  healthy_.store(false, std::memory_order_relaxed);
  auto flows = std::move(flows_);  // publishes waiting to be sent again
  flows_.clear();
  for (auto& [channel, f] : flows) {
    for (auto* q : {&f.redirected, &f.waiting}) {
      for (auto& e : *q) e.done(publish_status::unavailable);
    }
  }
}

// ---- the slot map ---------------------------------------------------------------------------------------

void redis_cluster::next_seed() {
  // The node asked is gone: ask the next one we know of (seeds, then every primary seen).
  if (known_.empty()) return;
  seed_at_ = (seed_at_ + 1) % known_.size();
  topo_endpoint_.host = known_[seed_at_].host;
  topo_endpoint_.port = known_[seed_at_].port;
}

void redis_cluster::on_topo_open(redis_link* ac) {
  asking_ = false;
  ask(ac);
}

void redis_cluster::ask(redis_link* ac) {
  if (ac == nullptr || asking_) return;
  const char* cmd = use_slots_ ? "CLUSTER SLOTS" : "CLUSTER SHARDS";
  if (ac->command(&redis_cluster::on_topology_reply, this, cmd) != REDIS_OK) return;
  asking_ = true;
  again_ = false;
  asked_at_ = std::chrono::steady_clock::now();
}

void redis_cluster::refresh(const std::string& why) {
  if (stopped_) return;
  hinted_ = std::chrono::steady_clock::now();
  spdlog::debug("redis cluster: reading the slot map ({})", why);
  if (asking_) {
    again_ = true;
    return;
  }
  ask(topo_.open_context());  // not open: it asks when it (re)connects
}

void redis_cluster::on_topology_reply(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_cluster*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  self->asking_ = false;
  if (r == nullptr || self->stopped_) return;  // connection going away
  if (r->type == REDIS_REPLY_ERROR && !self->use_slots_) {
    // Before Redis 7: CLUSTER SLOTS.
    self->use_slots_ = true;
    return self->ask(self->topo_.open_context());
  }
  std::vector<slots::node_slots> nodes;
  const bool ok = self->use_slots_ ? slots::parse_cluster_slots(r, nodes)
                                   : slots::parse_cluster_shards(r, nodes, self->seeds_.tls);
  if (!ok || nodes.empty()) {
    spdlog::log(self->topo_.failure_level(), "redis cluster: {} answered {}; asking another node",
                self->topo_endpoint_.address(),
                r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "no slot map");
    return self->topo_.drop_later("no slot map");
  }
  if (!self->topo_.ready()) self->topo_.mark_ready();
  for (auto& n : nodes) {
    if (n.host.empty()) n.host = self->topo_endpoint_.host;  // "the node you asked"
  }
  self->apply(std::move(nodes));
  if (self->again_) self->ask(self->topo_.open_context());
}

redis_shard* redis_cluster::shard_at(const std::string& host, int port) {
  const auto ep = with_address(seeds_, host, port);
  const auto address = ep.address();
  if (auto it = shards_.find(address); it != shards_.end()) return it->second.get();
  auto shard = std::make_unique<redis_shard>(ioc_, next_index_++, ep, opts_, sink_);
  shard->on_topology([this](const std::string& why) { refresh(why); });
  shard->on_redirect([this](const redis_shard::redirection& to, redis_publish_request req,
                            publish_done done) { on_redirect(to, std::move(req), std::move(done)); });
  auto* s = shard.get();
  {
    std::lock_guard lock(mutex_);
    shards_.emplace(address, std::move(shard));
  }
  if (std::none_of(known_.begin(), known_.end(),
                   [&](const redis_host& h) { return h.host == host && h.port == port; })) {
    known_.push_back({host, port});
  }
  s->start();
  return s;
}

void redis_cluster::apply(std::vector<slots::node_slots> nodes) {
  std::array<redis_shard*, slots::slot_count> table{};
  std::size_t covered = 0;
  for (const auto& n : nodes) {
    redis_shard* s = shard_at(n.host, n.port);
    for (const auto& [first, last] : n.ranges) {
      for (std::size_t slot = first; slot <= last; ++slot) {
        covered += table[slot] == nullptr ? 1 : 0;
        table[slot] = s;
      }
    }
  }
  if (table == slots_) return update_health();
  const bool first = maps_++ == 0;
  slots_ = table;
  covered_ = covered == slots::slot_count;
  spdlog::log(first ? spdlog::level::info : spdlog::level::warn,
              "redis cluster: slot map {}: {} primaries, {} of {} slots served", first ? "read" : "changed",
              nodes.size(), covered, slots::slot_count);
  place_channels();
  retire_idle_shards();
  update_health();
}

redis_shard* redis_cluster::owner(const std::string& channel) const {
  return slots_[slots::channel_slot(channel)];
}

void redis_cluster::place_channels() {
  for (const auto& channel : channels_) {
    redis_shard* to = owner(channel);
    auto at = placed_.find(channel);
    redis_shard* from = at == placed_.end() ? nullptr : at->second;
    if (to == nullptr || to == from) continue;  // no primary for the slot: it stays where it is
    const auto rc = slots::pubsub_channel(opts_, channel);
    redis_shard::channel_handover moved;
    if (from != nullptr) moved = from->release_channel(rc);
    to->adopt_channel(rc, moved);
    for (auto& [req, done] : moved.held) to->publish(std::move(req), std::move(done));
    placed_[channel] = to;
  }
  for (auto& [channel, at] : present_) {
    redis_shard* to = owner(channel);
    if (to == nullptr || to == at) continue;
    to->adopt_presence(at->release_presence(channel));
    at = to;
  }
  auto waiting = std::move(unplaced_members_);
  unplaced_members_.clear();
  for (auto& [target, m] : waiting) add_presence(std::move(target), std::move(m));
  redis_shard* control = slots_[slots::channel_slot("!control")];
  if (control != nullptr && control != control_) {
    if (control_ != nullptr) control_->set_control(false);
    control->set_control(true);
    control_ = control;
  }
}

void redis_cluster::retire_idle_shards() {
  std::unordered_set<const redis_shard*> used(slots_.begin(), slots_.end());
  const auto now = std::chrono::steady_clock::now();
  for (auto it = shards_.begin(); it != shards_.end();) {
    redis_shard* s = it->second.get();
    if (used.count(s) != 0) {
      ++it;
      continue;
    }
    spdlog::info("redis cluster: {} serves no slot any more; closing shard {}", it->first, s->index());
    // What is still placed there (its slot has no primary now) waits, unplaced, for the next map.
    for (auto p = placed_.begin(); p != placed_.end();) {
      if (p->second != s) {
        ++p;
        continue;
      }
      auto moved = s->release_channel(slots::pubsub_channel(opts_, p->first));
      for (auto& [req, done] : moved.held) done(publish_status::unavailable);
      p = placed_.erase(p);
    }
    for (auto p = present_.begin(); p != present_.end();) {
      p = p->second == s ? present_.erase(p) : std::next(p);
    }
    if (control_ == s) control_ = nullptr;
    s->stop();
    std::lock_guard lock(mutex_);
    retired_.emplace_back(now, std::move(it->second));
    it = shards_.erase(it);
  }
}

void redis_cluster::update_health() {
  bool ok = covered_;
  for (const auto& [addr, s] : shards_) ok = ok && s->up();
  healthy_.store(ok && !stopped_, std::memory_order_relaxed);
}

void redis_cluster::do_tick() {
  tick_.expires_after(opts_.cluster_refresh_degraded);
  tick_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    const auto now = std::chrono::steady_clock::now();
    update_health();
    while (!retired_.empty() && now - retired_.front().first >= retire_after) {
      std::unique_ptr<redis_shard> gone;
      {
        std::lock_guard lock(mutex_);
        gone = std::move(retired_.front().second);
        retired_.erase(retired_.begin());
      }
    }
    if (asking_ && now - asked_at_ >= opts_.publish_timeout) {
      topo_.drop("no answer to the slot map query for " + std::to_string(opts_.publish_timeout.count()) +
                 " ms");
    }
    const bool degraded = !healthy_.load(std::memory_order_relaxed) || now - hinted_ < quick_after_hint;
    if (!asking_ && now - asked_at_ >= (degraded ? opts_.cluster_refresh_degraded : opts_.cluster_refresh)) {
      ask(topo_.open_context());
    }
    do_tick();
  });
}

// ---- the broker's operations ----------------------------------------------------------------------------

void redis_cluster::publish(const std::string& channel, redis_publish_request req, publish_done done) {
  publish_done wrapped = [this, channel, done = std::move(done)](publish_status status) {
    done(status);
    finished(channel);
  };
  auto it = flows_.find(channel);
  if (it != flows_.end() && (!it->second.redirected.empty() || !it->second.waiting.empty())) {
    it->second.waiting.push_back({std::move(req), std::move(wrapped), nullptr});
    return;
  }
  send(channel, std::move(req), std::move(wrapped), nullptr);
}

void redis_cluster::send(const std::string& channel, redis_publish_request req, publish_done done,
                         redis_shard* ask) {
  redis_shard* s = ask != nullptr ? ask : owner(channel);
  ++flows_[channel].outstanding;
  if (s == nullptr) return done(publish_status::unavailable);  // finished() follows
  req.asking = ask != nullptr;
  s->publish(std::move(req), std::move(done));
}

void redis_cluster::finished(const std::string& channel) {
  auto it = flows_.find(channel);
  if (it == flows_.end()) return;
  auto& f = it->second;
  if (f.outstanding > 0) --f.outstanding;
  if (f.outstanding > 0) return;
  if (f.redirected.empty() && f.waiting.empty()) {
    flows_.erase(it);
    return;
  }
  flush(channel);
}

void redis_cluster::on_redirect(const redis_shard::redirection& to, redis_publish_request req,
                                publish_done done) {
  const std::string channel = slots::channel_of_pubsub(opts_, req.redis_channel);
  if (auto it = flows_.find(channel); it != flows_.end() && it->second.outstanding > 0)
    --it->second.outstanding;
  if (stopped_ || ++req.redirects > max_redirects) {
    ++flows_[channel].outstanding;  // finished() takes it back
    return done(publish_status::unavailable);
  }
  redis_shard* target = shard_at(to.host, to.port);
  if (!to.ask && !to.retry && slots_[to.slot] != target) {
    spdlog::info("redis cluster: slot {} moved to {} (MOVED); reading the slot map", to.slot,
                 with_address(seeds_, to.host, to.port).address());
    slots_[to.slot] = target;
    place_channels();
    refresh("MOVED");
  }
  auto& f = flows_[channel];  // after place_channels, which may complete publishes of the channel
  f.redirected.push_back({std::move(req), std::move(done), to.ask ? target : nullptr});
  if (to.retry) f.not_before = std::chrono::steady_clock::now() + try_again_after;
  if (f.outstanding == 0) flush(channel);
}

void redis_cluster::flush(const std::string& channel) {
  auto it = flows_.find(channel);
  if (it == flows_.end() || it->second.outstanding > 0) return;
  if (const auto wait = it->second.not_before - std::chrono::steady_clock::now(); wait.count() > 0) {
    auto timer = std::make_shared<asio::steady_timer>(ioc_, wait);
    timer->async_wait([this, timer, channel](const boost::system::error_code& ec) {
      if (!ec && !stopped_) flush(channel);
    });
    return;
  }
  std::deque<queued> todo = std::move(it->second.redirected);
  for (auto& q : it->second.waiting) todo.push_back(std::move(q));
  it->second.redirected.clear();
  it->second.waiting.clear();
  for (auto& q : todo) send(channel, std::move(q.req), std::move(q.done), q.ask);
}

void redis_cluster::subscribe(const std::string& channel) {
  if (!channels_.insert(channel).second) return;
  redis_shard* s = owner(channel);
  if (s == nullptr) return;  // placed when the slot map says where
  s->subscribe(slots::pubsub_channel(opts_, channel));
  placed_[channel] = s;
}

void redis_cluster::unsubscribe(const std::string& channel) {
  if (channels_.erase(channel) == 0) return;
  auto it = placed_.find(channel);
  if (it == placed_.end()) return;
  it->second->unsubscribe(slots::pubsub_channel(opts_, channel));
  placed_.erase(it);
}

void redis_cluster::await_subscribed(const std::string& channel, std::function<void()> ready) {
  auto it = placed_.find(channel);
  if (it == placed_.end()) return ready();
  it->second->await_subscribed(slots::pubsub_channel(opts_, channel), std::move(ready));
}

void redis_cluster::history(history_request req, std::function<void(history_result)> done) {
  redis_shard* s = owner(req.channel);
  if (s == nullptr) {
    history_result r;
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  s->history(std::move(req), std::move(done));
}

void redis_cluster::add_presence(presence_target target, core::presence_member m) {
  auto it = present_.find(target.channel);
  redis_shard* s = it != present_.end() ? it->second : owner(target.channel);
  if (s == nullptr) {
    unplaced_members_.emplace_back(std::move(target), std::move(m));
    return;
  }
  present_[target.channel] = s;
  s->add_presence(std::move(target), std::move(m));
}

void redis_cluster::remove_presence(const presence_target& target, const std::string& client_id) {
  auto it = present_.find(target.channel);
  if (it == present_.end()) {
    std::erase_if(unplaced_members_, [&](const auto& u) {
      return u.first.channel == target.channel && u.second.client_id == client_id;
    });
    return;
  }
  it->second->remove_presence(target, client_id);
  if (!it->second->has_presence(target.channel)) present_.erase(it);
}

void redis_cluster::presence(const presence_target& target, std::size_t max,
                             std::function<void(presence_result)> done) {
  redis_shard* s = owner(target.channel);
  if (s == nullptr) {
    presence_result r;
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  s->presence(target, max, std::move(done));
}

void redis_cluster::presence_stats(const presence_target& target,
                                   std::function<void(presence_stats_result)> done) {
  redis_shard* s = owner(target.channel);
  if (s == nullptr) {
    presence_stats_result r;
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  s->presence_stats(target, std::move(done));
}

void redis_cluster::control(std::string envelope, publish_done done) {
  if (control_ == nullptr) return done(publish_status::unavailable);
  control_->control(std::move(envelope), std::move(done));
}

std::string redis_cluster::describe() const {
  std::lock_guard lock(mutex_);
  std::size_t up = 0;
  for (const auto& [addr, s] : shards_) up += s->up() ? 1 : 0;
  return "redis cluster, " + std::to_string(shards_.size()) + " primaries, " + std::to_string(up) + " up";
}

std::vector<redis_shard_stats> redis_cluster::stats() const {
  std::lock_guard lock(mutex_);
  std::vector<redis_shard_stats> out;
  out.reserve(shards_.size());
  for (const auto& [addr, s] : shards_) out.push_back(s->stats());
  return out;
}

}  // namespace bc::broker
