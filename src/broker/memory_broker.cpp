#include "broker/memory_broker.hpp"

#include <algorithm>

#include "util/hex.hpp"
#include "util/prometheus.hpp"

namespace bc::broker {

namespace {
// Sweeps a stripe (expired history, idle channels) after this many operations on it: the work is spread
// over publishes rather than done by a timer thread.
constexpr std::uint32_t ops_per_sweep = 4096;

std::size_t entry_bytes(const core::message& m) {
  return sizeof(core::message) + m.id.size() + m.channel.size() + m.event.size() + m.payload.size() +
         m.epoch.size() + 64;  // + the deque slot and allocation headers, roughly
}
}  // namespace

memory_broker::memory_broker(delivery_sink& sink, core::channel_rules rules, std::size_t history_memory_limit)
    : sink_(sink),
      rules_(std::move(rules)),
      any_history_(rules_.any_history()),
      history_memory_limit_(history_memory_limit) {
  std::random_device seed;
  for (auto& s : stripes_) s.random.seed((static_cast<std::uint64_t>(seed()) << 32) ^ seed());
}

memory_broker::stripe& memory_broker::stripe_of(std::string_view channel) {
  return stripes_[std::hash<std::string_view>{}(channel) % stripe_count];
}

memory_broker::channel_state& memory_broker::state_of(stripe& s, std::string_view channel,
                                                      clock::time_point now) {
  auto it = s.channels.find(channel);
  if (it == s.channels.end()) {
    channel_state c;
    // A new epoch for every life of the channel's state: offsets from an earlier life (before a restart or
    // an eviction) must not match.
    const std::uint64_t r = s.random();
    for (int shift = 56; shift >= 0; shift -= 8)
      util::append_hex(c.epoch, static_cast<std::uint8_t>(r >> shift));
    c.opts = any_history_ ? rules_.for_channel(channel) : rules_.defaults();
    it = s.channels.emplace(std::string(channel), std::move(c)).first;
  }
  it->second.used = now;
  return it->second;
}

void memory_broker::pop_oldest(channel_state& c) {
  history_bytes_.fetch_sub(c.history.front().bytes, std::memory_order_relaxed);
  c.history.pop_front();
}

void memory_broker::trim(channel_state& c, clock::time_point now) {
  while (!c.history.empty() &&
         (c.history.size() > c.opts.history_size || now - c.history.front().at >= c.opts.history_ttl)) {
    pop_oldest(c);
  }
}

void memory_broker::sweep(stripe& s, clock::time_point now) {
  s.ops_since_sweep = 0;
  for (auto it = s.channels.begin(); it != s.channels.end();) {
    trim(it->second, now);
    const auto keep = std::max<clock::duration>(it->second.opts.history_ttl, idle_keep);
    it = it->second.history.empty() && now - it->second.used >= keep ? s.channels.erase(it) : std::next(it);
  }
}

void memory_broker::publish(core::message msg, std::function<void(publish_status)> done) {
  if (stopped_.load(std::memory_order_relaxed)) return done(publish_status::unavailable);
  bool accepted = false;
  {
    auto& s = stripe_of(msg.channel);
    std::lock_guard lock(s.mutex);
    const auto now = clock::now();
    auto& c = state_of(s, msg.channel, now);
    msg.offset = c.offset + 1;
    msg.epoch = c.epoch;
    std::optional<core::message> kept;
    if (c.opts.history_size > 0) kept = msg;
    // Inside the lock: the next publish to this channel must reach the sink after this one.
    accepted = sink_.try_deliver(std::move(msg));
    if (accepted) {
      ++c.offset;
      if (kept) {
        const std::size_t bytes = entry_bytes(*kept);
        c.history.push_back({std::move(*kept), now, bytes});
        history_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        trim(c, now);
        if (history_bytes_.load(std::memory_order_relaxed) > history_memory_limit_) {
          sweep(s, now);  // expired history elsewhere in the stripe goes first
          while (c.history.size() > 1 &&
                 history_bytes_.load(std::memory_order_relaxed) > history_memory_limit_) {
            pop_oldest(c);
            history_trimmed_for_memory_.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
    }
    if (++s.ops_since_sweep >= ops_per_sweep) sweep(s, now);
  }
  done(accepted ? publish_status::ok : publish_status::overloaded);
}

void memory_broker::history(history_request req, std::function<void(history_result)> done) {
  history_result r;
  if (stopped_.load(std::memory_order_relaxed)) {
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  {
    auto& s = stripe_of(req.channel);
    std::lock_guard lock(s.mutex);
    const auto now = clock::now();
    auto& c = state_of(s, req.channel, now);
    trim(c, now);
    r.top = {c.epoch, c.offset};
    const std::uint64_t first_kept = c.offset - c.history.size() + 1;  // = offset + 1 when empty
    std::uint64_t from = 0;                                            // first offset to return
    if (!req.since) {
      from = c.offset + 1 - std::min<std::uint64_t>(req.limit, c.history.size());
    } else if (req.since->epoch == c.epoch && req.since->offset <= c.offset) {
      from = std::max(req.since->offset + 1, first_kept);
      const std::uint64_t missing = c.offset - req.since->offset;
      r.complete = req.since->offset + 1 >= first_kept && missing <= req.limit;
    }
    if (from != 0) {
      for (auto it = c.history.begin() + static_cast<std::ptrdiff_t>(from - first_kept);
           it != c.history.end() && r.messages.size() < req.limit; ++it) {
        r.messages.push_back(it->msg);
      }
    }
  }
  done(std::move(r));
}

memory_broker::presence_stripe& memory_broker::presence_stripe_of(std::string_view channel) {
  return presence_[std::hash<std::string_view>{}(channel) % stripe_count];
}

void memory_broker::announce(core::message::kind type, std::string channel, core::presence_member m) {
  // After stop() the node's threads are going away: connections torn down then leave silently.
  if (stopped_.load(std::memory_order_relaxed)) return;
  core::message e;
  e.type = type;
  e.channel = std::move(channel);
  e.id = std::move(m.client_id);
  e.event = std::move(m.user);
  e.payload = std::move(m.info);
  sink_.deliver_presence_event(std::move(e));
}

// The events leave outside the stripe's lock: a join and the leave of one client come from its own thread one
// after the other, so they reach the sink in that order without it.
void memory_broker::add_presence(std::string channel, core::presence_member m, bool announce_it) {
  bool added = false;
  std::uint64_t members = 0;  // with this one
  {
    auto& p = presence_stripe_of(channel);
    std::lock_guard lock(p.mutex);
    added = p.members.add(channel, m);
    if (added && announce_it) members = p.members.counts(channel).clients;
  }
  if (added && announce_it && within_join_leave_limit(channel, members))
    announce(core::message::kind::join, std::move(channel), std::move(m));
}

void memory_broker::remove_presence(std::string channel, core::presence_member m, bool announce_it) {
  std::optional<core::presence_member> gone;
  std::uint64_t members = 0;  // with the one leaving, so that a join and its leave are judged alike
  {
    auto& p = presence_stripe_of(channel);
    std::lock_guard lock(p.mutex);
    gone = p.members.remove(channel, m.client_id);
    if (gone && announce_it) members = p.members.counts(channel).clients + 1;
  }
  if (gone && announce_it && within_join_leave_limit(channel, members))
    announce(core::message::kind::leave, std::move(channel), std::move(*gone));
}

bool memory_broker::within_join_leave_limit(std::string_view channel, std::uint64_t members) {
  const std::size_t limit = rules_.for_channel(channel).join_leave_limit;
  if (limit == 0 || members <= limit) return true;
  join_leave_suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void memory_broker::presence(std::string channel, std::size_t max,
                             std::function<void(presence_result)> done) {
  presence_result r;
  if (stopped_.load(std::memory_order_relaxed)) {
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  {
    auto& p = presence_stripe_of(channel);
    std::lock_guard lock(p.mutex);
    r.clients = p.members.members(channel, max, r.truncated);
  }
  done(std::move(r));
}

void memory_broker::presence_stats(std::string channel, std::function<void(presence_stats_result)> done) {
  presence_stats_result r;
  if (stopped_.load(std::memory_order_relaxed)) {
    r.status = publish_status::unavailable;
    return done(std::move(r));
  }
  {
    auto& p = presence_stripe_of(channel);
    std::lock_guard lock(p.mutex);
    r.counts = p.members.counts(channel);
  }
  done(std::move(r));
}

void memory_broker::control(control_message msg, std::function<void(publish_status)> done) {
  if (stopped_.load(std::memory_order_relaxed)) return done(publish_status::unavailable);
  sink_.deliver_control(std::move(msg));
  done(publish_status::ok);
}

std::size_t memory_broker::channel_count() const {
  std::size_t n = 0;
  for (auto& s : stripes_) {
    std::lock_guard lock(s.mutex);
    n += s.channels.size();
  }
  return n;
}

void memory_broker::append_metrics(std::string& out) const {
  util::append_metric(out, "broadcaster_history_bytes", "gauge",
                      "Bytes the embedded broker holds in channel history.",
                      static_cast<std::uint64_t>(history_bytes_.load(std::memory_order_relaxed)));
  util::append_metric(out, "broadcaster_history_trimmed_for_memory_total", "counter",
                      "History messages dropped before their time because of --history-memory-limit.",
                      history_trimmed_for_memory_.load(std::memory_order_relaxed));
  util::append_metric(
      out, "broadcaster_join_leave_suppressed_total", "counter",
      "Joins and leaves not announced because their channel had more members than its join/leave "
      "limit.",
      join_leave_suppressed_.load(std::memory_order_relaxed));
}

}  // namespace bc::broker
