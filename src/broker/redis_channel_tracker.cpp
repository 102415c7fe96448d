#include "broker/redis_channel_tracker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace bc::broker {

namespace {
constexpr auto warn_every = std::chrono::seconds(10);
}

redis_channel_tracker::redis_channel_tracker(delivery_sink& sink, fetch_fn fetch, std::string name)
    : sink_(sink), fetch_(std::move(fetch)), name_(std::move(name)) {}

void redis_channel_tracker::track(const std::string& channel) {
  auto [it, fresh] = channels_.try_emplace(channel);
  if (fresh) it->second.generation = ++generations_;
}

void redis_channel_tracker::untrack(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  // Held messages go nowhere: nobody on this node is interested any more. A fetch in flight finds the
  // channel gone (or tracked anew, another generation) and is ignored.
  held_ -= it->second.held.size();
  channels_.erase(it);
  if (idle() && on_idle_) on_idle_();
}

void redis_channel_tracker::on_message(core::message msg) {
  if (msg.offset == 0 || msg.epoch.empty()) return deliver(std::move(msg));  // an older node: no position
  auto it = channels_.find(msg.channel);
  if (it == channels_.end()) return deliver(std::move(msg));
  auto& st = it->second;
  if (st.busy) {
    st.held.push_back(std::move(msg));
    ++held_;
    return;
  }
  process(it->first, st, std::move(msg));
}

void redis_channel_tracker::process(const std::string& channel, channel_state& st, core::message msg) {
  if (!st.started) {
    st.started = true;
    st.epoch = msg.epoch;
    st.last = msg.offset;
    return deliver(std::move(msg));
  }
  if (msg.epoch != st.epoch) {  // the channel's history was lost (Redis restarted): count from 0 again
    st.epoch = msg.epoch;
    st.last = 0;
  }
  if (msg.offset <= st.last) {
    duplicates_.add();
    return;
  }
  if (msg.offset == st.last + 1) {
    st.last = msg.offset;
    return deliver(std::move(msg));
  }
  // A jump: hold it (first in line) and read what is missing before it.
  st.want = msg.offset - 1;
  st.held.push_front(std::move(msg));
  ++held_;
  start_fetch(channel, st, false);
}

void redis_channel_tracker::start_fetch(const std::string& channel, channel_state& st, bool check) {
  st.busy = true;
  st.checking = check;
  st.asked = check ? max_fetch : std::min(st.want - st.last, max_fetch);
  fetch_(channel, st.epoch, st.last + 1, st.asked, check,
         [this, channel, gen = st.generation](range r) { on_range(channel, gen, std::move(r)); });
}

void redis_channel_tracker::check_all() {
  for (auto& [channel, st] : channels_) {
    if (!st.started) continue;  // no position to compare with (see docs/redis.md)
    if (st.busy) {
      st.check_pending = true;  // after the fetch in flight: it covers only what came before its message
      continue;
    }
    start_fetch(channel, st, true);
  }
}

bool redis_channel_tracker::position(const std::string& channel, std::string& epoch,
                                     std::uint64_t& last) const {
  auto it = channels_.find(channel);
  if (it == channels_.end() || !it->second.started) return false;
  epoch = it->second.epoch;
  // Held messages were not delivered here: the position is what the sink got.
  last = it->second.last;
  return true;
}

void redis_channel_tracker::track_from(const std::string& channel, const std::string& epoch,
                                       std::uint64_t last) {
  track(channel);
  auto& st = channels_[channel];
  if (st.started) return;
  st.started = true;
  st.epoch = epoch;
  st.last = last;
}

void redis_channel_tracker::check(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end() || !it->second.started) return;
  if (it->second.busy) {
    it->second.check_pending = true;
    return;
  }
  start_fetch(it->first, it->second, true);
}

void redis_channel_tracker::on_range(const std::string& channel, std::uint64_t generation, range r) {
  auto it = channels_.find(channel);
  if (it == channels_.end() || it->second.generation != generation) return;
  auto& st = it->second;
  if (!r.ok) {
    // Redis could not answer: a jump's range is reported missing; a check learnt nothing (the next message
    // shows any jump).
    if (!st.checking) gap(channel, st, st.want);
    return drain(channel, st);
  }
  if (st.checking) {
    st.checking = false;
    if (r.epoch != st.epoch) {  // a new epoch while we were away: everything in it is after our position
      st.epoch = r.epoch;
      st.last = 0;
    }
    st.want = std::max(st.last, r.top);
  } else if (r.epoch != st.epoch) {
    // The epoch moved on since the jump: the rest of the old one is gone for good.
    gap(channel, st, st.want);
    return drain(channel, st);
  }
  for (auto& m : r.messages) {
    if (m.epoch != st.epoch || m.offset <= st.last) continue;
    if (m.offset > st.want) break;
    if (m.offset > st.last + 1) gap(channel, st, m.offset - 1);  // the stream's oldest part was trimmed
    st.last = m.offset;
    repaired_.add();
    ++unlogged_repaired_;
    deliver(std::move(m));
  }
  if (st.last < st.want && r.messages.size() >= st.asked) {
    return start_fetch(channel, st, false);  // more than one read's worth
  }
  gap(channel, st, st.want);
  warn_later(channel);
  drain(channel, st);
}

void redis_channel_tracker::drain(const std::string& channel, channel_state& st) {
  st.busy = false;
  st.checking = false;
  while (!st.busy && !st.held.empty()) {
    auto m = std::move(st.held.front());
    st.held.pop_front();
    --held_;
    process(channel, st, std::move(m));
  }
  if (!st.busy && st.check_pending) {
    st.check_pending = false;
    start_fetch(channel, st, true);
  }
  if (idle() && on_idle_) on_idle_();
}

void redis_channel_tracker::gap(const std::string& channel, channel_state& st, std::uint64_t upto) {
  if (upto <= st.last) return;
  const auto count = upto - st.last;
  st.last = upto;
  gaps_.add();
  skipped_.add(count);
  ++unlogged_gaps_;
  unlogged_skipped_ += count;
  try {
    sink_.deliver_gap(channel, upto, count);
  } catch (const std::exception& e) {  // never unwind through hiredis's C frames
    spdlog::error("{}: cannot report a gap on {}: {}", name_, channel, e.what());
  }
  warn_later(channel);
}

void redis_channel_tracker::warn_later(const std::string& channel) {
  if (unlogged_gaps_ == 0 && unlogged_repaired_ == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warn_ < warn_every) return;
  last_warn_ = now;
  spdlog::warn(
      "{}: messages lost on the way (last on channel {}): {} repaired from history, {} not recoverable in {} "
      "gap(s), shown to subscribers as skipped seq (counts since the last such line)",
      name_, channel, unlogged_repaired_, unlogged_skipped_, unlogged_gaps_);
  unlogged_gaps_ = unlogged_skipped_ = unlogged_repaired_ = 0;
}

void redis_channel_tracker::deliver(core::message msg) {
  try {
    sink_.deliver(std::move(msg));
  } catch (const std::exception& e) {  // never unwind through hiredis's C frames
    spdlog::error("{}: cannot deliver a message: {}", name_, e.what());
  }
}

}  // namespace bc::broker
