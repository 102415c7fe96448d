#include "broker/redis_presence.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "broker/redis_envelope.hpp"
#include "broker/redis_scripts.hpp"

namespace bc::broker {

namespace {

bool integer_of(const redisReply* r, long long& v) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return false;
  v = r->integer;
  return true;
}

std::vector<std::string> keys_of(const presence_target& t) {
  return {t.expiry_key, t.members_key, t.users_key};
}

}  // namespace

presence_target make_presence_target(std::string_view prefix, std::string_view channel, bool announce,
                                     std::size_t join_leave_limit) {
  presence_target t;
  t.channel.assign(channel);
  t.expiry_key = redis_scripts::presence_expiry_key(prefix, channel);
  t.members_key = redis_scripts::presence_members_key(prefix, channel);
  t.users_key = redis_scripts::presence_users_key(prefix, channel);
  t.redis_channel.assign(prefix).append(channel);
  if (announce) {
    t.join_header = encode_presence_header(core::message::kind::join, channel);
    t.leave_header = encode_presence_header(core::message::kind::leave, channel);
    t.join_leave_limit = std::to_string(join_leave_limit);
  }
  return t;
}

redis_presence::redis_presence(boost::asio::io_context& ioc, std::chrono::milliseconds ttl, send_fn send,
                               std::function<bool()> connected)
    : ttl_(std::max(ttl, std::chrono::milliseconds(1))),
      ttl_ms_(std::to_string(ttl_.count())),
      send_(std::move(send)),
      connected_(std::move(connected)),
      timer_(ioc) {}

void redis_presence::start() {
  stopped_ = false;
  do_tick();
}

void redis_presence::stop() {
  stopped_ = true;
  ++pass_;
  pass_running_ = false;
  timer_.cancel();
}

void redis_presence::do_tick() {
  // A third of the ttl: a member survives two refreshes that fail or come late.
  timer_.expires_after(std::max(ttl_ / 3, std::chrono::milliseconds(10)));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    if (!pass_running_ && !channels_.empty() && connected_()) start_pass();
    do_tick();
  });
}

void redis_presence::add(presence_target target, core::presence_member m) {
  auto it = channels_.find(target.channel);
  if (it == channels_.end()) it = channels_.emplace(target.channel, channel_members{target, {}}).first;
  std::string record = encode_presence_record(m);
  if (!it->second.records.emplace(m.client_id, record).second) return;
  members_.add();
  // The latest add's headers: the refreshes' cleanups announce leaves as its caller asked.
  it->second.target = std::move(target);
  // Not connected: the member goes to Redis with everything else once the connection is ready.
  if (!stopped_ && connected_()) {
    const auto& t = it->second.target;
    send_add(t, {std::move(record)}, !t.join_header.empty(), false);
  }
}

void redis_presence::remove(const presence_target& target, const std::string& client_id) {
  auto it = channels_.find(target.channel);
  if (it == channels_.end() || it->second.records.erase(client_id) == 0) return;
  members_.sub();
  if (it->second.records.empty()) channels_.erase(it);
  if (stopped_) return;
  if (connected_()) return send_remove(target, client_id);
  // Beyond the bound the member is left to expire.
  if (pending_removals_.size() < max_pending_removals) pending_removals_.emplace_back(target, client_id);
}

redis_presence::channel_members redis_presence::take(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return {};
  auto moved = std::move(it->second);
  channels_.erase(it);
  members_.sub(moved.records.size());
  return moved;
}

void redis_presence::adopt(channel_members moved) {
  if (moved.records.empty()) return;
  auto& here = channels_[moved.target.channel];
  here.target = moved.target;
  std::vector<std::string> records;
  for (auto& [id, rec] : moved.records) {
    if (here.records.emplace(id, rec).second) {
      members_.add();
      records.push_back(std::move(rec));
    }
  }
  // Not connected: on_connected() re-adds every member anyway.
  if (stopped_ || !connected_() || records.empty()) return;
  for (std::size_t at = 0; at < records.size(); at += batch_members) {
    const auto end = std::min(records.size(), at + batch_members);
    send_add(here.target,
             {records.begin() + static_cast<std::ptrdiff_t>(at),
              records.begin() + static_cast<std::ptrdiff_t>(end)},
             false, false);
  }
}

void redis_presence::send_add(const presence_target& t, std::vector<std::string> records, bool announce,
                              bool refresh) {
  auto args = keys_of(t);
  args.reserve(8 + records.size());
  args.push_back(ttl_ms_);
  args.push_back(t.redis_channel);
  args.push_back(announce ? t.join_header : std::string());
  args.push_back(t.leave_header);
  args.push_back(std::to_string(cleanup_on_write));
  args.push_back(t.join_leave_limit);
  const std::size_t n = records.size();
  for (auto& r : records) args.push_back(std::move(r));
  send_(script::add, std::move(args), [this, n, refresh, pass = pass_](redisReply* r) {
    long long added = 0;
    if (!integer_of(r, added)) {
      errors_.add();
    } else if (refresh) {
      refreshed_.add(n);
      readded_.add(static_cast<std::uint64_t>(added));
    }
    if (!refresh || pass != pass_) return;
    --pass_waiting_;
    if (r == nullptr) {
      pass_running_ = false;  // the connection is gone: on_connected() starts over
      return;
    }
    pump();
  });
}

void redis_presence::send_remove(const presence_target& t, const std::string& client_id) {
  auto args = keys_of(t);
  args.push_back(client_id);
  args.push_back(t.redis_channel);
  args.push_back(t.leave_header);
  args.push_back(std::to_string(cleanup_on_write));
  args.push_back(t.join_leave_limit);
  send_(script::remove, std::move(args), [this](redisReply* r) {
    long long removed = 0;
    if (!integer_of(r, removed)) errors_.add();
  });
}

void redis_presence::on_connected() {
  if (stopped_) return;
  auto removals = std::move(pending_removals_);
  pending_removals_.clear();
  for (const auto& [t, id] : removals) send_remove(t, id);
  start_pass();
}

void redis_presence::start_pass() {
  ++pass_;
  pass_running_ = true;
  pass_members_.clear();
  for (const auto& [channel, c] : channels_) {
    for (const auto& [id, record] : c.records) pass_members_.emplace_back(channel, id);
  }
  pass_next_ = 0;
  pass_waiting_ = 0;
  pump();
}

void redis_presence::pump() {
  while (pass_waiting_ < passes_in_flight && pass_next_ < pass_members_.size()) {
    if (stopped_ || !connected_()) {
      pass_running_ = false;
      return;
    }
    const std::string channel = pass_members_[pass_next_].first;
    const auto it = channels_.find(channel);
    std::vector<std::string> records;
    std::size_t bytes = 0;
    for (; pass_next_ < pass_members_.size() && pass_members_[pass_next_].first == channel &&
           records.size() < batch_members && bytes < batch_bytes;
         ++pass_next_) {
      if (it == channels_.end()) continue;
      // Gone since the pass began: not to be brought back.
      const auto m = it->second.records.find(pass_members_[pass_next_].second);
      if (m == it->second.records.end()) continue;
      bytes += m->second.size();
      records.push_back(m->second);
    }
    if (records.empty()) continue;
    ++pass_waiting_;
    send_add(it->second.target, std::move(records), false, true);
  }
  if (pass_next_ == pass_members_.size() && pass_waiting_ == 0) {
    pass_running_ = false;
    pass_members_.clear();
    pass_members_.shrink_to_fit();
  }
}

void redis_presence::read(const presence_target& t, std::size_t max,
                          std::function<void(presence_result)> done) {
  auto args = keys_of(t);
  args.insert(args.end(), {"m", std::to_string(max), t.redis_channel, t.leave_header,
                           std::to_string(cleanup_on_read), t.join_leave_limit});
  send_(script::read, std::move(args), [this, max, done = std::move(done)](redisReply* r) {
    presence_result out;
    long long total = 0;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        !integer_of(r->element[0], total) || r->element[1]->type != REDIS_REPLY_ARRAY) {
      errors_.add();
      out.status = publish_status::unavailable;
      return done(std::move(out));
    }
    const redisReply* records = r->element[1];
    out.clients.reserve(records->elements);
    for (std::size_t i = 0; i < records->elements; ++i) {
      const redisReply* e = records->element[i];
      core::presence_member m;
      // A member removed between the script's two reads cannot happen (one script); a record that does not
      // decode is another program's writing, not a member.
      if (e->type == REDIS_REPLY_STRING && decode_presence_record({e->str, e->len}, m)) {
        out.clients.push_back(std::move(m));
      }
    }
    out.truncated = static_cast<std::uint64_t>(total) > max;
    done(std::move(out));
  });
}

void redis_presence::stats(const presence_target& t, std::function<void(presence_stats_result)> done) {
  auto args = keys_of(t);
  args.insert(args.end(), {"s", "0", t.redis_channel, t.leave_header, std::to_string(cleanup_on_read),
                           t.join_leave_limit});
  send_(script::read, std::move(args), [this, done = std::move(done)](redisReply* r) {
    presence_stats_result out;
    long long clients = 0, users = 0;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        !integer_of(r->element[0], clients) || !integer_of(r->element[1], users) || clients < 0 ||
        users < 0) {
      errors_.add();
      out.status = publish_status::unavailable;
      return done(std::move(out));
    }
    out.counts = {static_cast<std::uint64_t>(clients), static_cast<std::uint64_t>(users)};
    done(std::move(out));
  });
}

}  // namespace bc::broker
