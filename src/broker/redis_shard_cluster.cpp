// redis_shard: its side of Redis Cluster — sharded Pub/Sub, redirections, and channels
// moving to another shard when their slot does (redis_cluster.hpp decides where they go).

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdlib>

#include "broker/redis_cluster_slots.hpp"
#include "broker/redis_shard.hpp"

namespace bc::broker {

// One command per channel: the channels of one SSUBSCRIBE must share a slot. redis_link hands the
// `ssubscribe` and `sunsubscribe` confirmations, the `smessage`s and the `sunsubscribe` Redis sends unasked
// to on_sub_reply.
void redis_shard::send_cluster_subscribe(redis_link* ac, bool subscribe, const std::string& redis_channel) {
  send_subscribe(ac, subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", &redis_channel, 1);
}

bool redis_shard::on_cluster_sub_reply(std::string_view kind, std::string_view channel) {
  if (kind != "ssubscribe" && kind != "sunsubscribe") return false;  // messages: no copy of the name
  const std::string redis_channel(channel);
  if (kind == "ssubscribe") {
    confirmed(redis_channel);
    if (check_on_confirm_.erase(redis_channel) != 0) {
      tracker_.check(redis_cluster_slots::channel_of_pubsub(opts_, redis_channel));
    }
    return true;
  }
  const bool wanted = channels_.count(redis_channel) != 0 || (redis_channel == control_ && holds_control_);
  if (!wanted) return true;  // the answer to our SUNSUBSCRIBE
  // Redis ended the subscription: the slot moved to another primary. Subscribe again here (a MOVED answer
  // then says where it went) and have the slot map read again; redis_cluster moves the channel, with its
  // position, and the new shard checks that position once subscribed.
  spdlog::info("redis shard {}: Redis ended the subscription of {} (its slot moved); reading the slot map",
               index_, redis_channel);
  if (auto* ac = sub_.open_context()) send_subscribe(ac, "SSUBSCRIBE", &redis_channel, 1);
  if (topology_hint_) topology_hint_("sunsubscribe of " + redis_channel);
  return true;
}

bool redis_shard::cluster_redirect(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return false;
  const std::string_view t(r->str, r->len);
  if (t.substr(0, 6) != "MOVED " && t.substr(0, 4) != "ASK " && t.substr(0, 11) != "CLUSTERDOWN" &&
      t.substr(0, 8) != "TRYAGAIN") {
    return false;
  }
  if (topology_hint_) topology_hint_(std::string(t));
  return true;
}

bool redis_shard::redirected(const redisReply* r, in_flight& op) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR || !redirect_) return false;
  // MOVED <slot> <host>:<port> / ASK <slot> <host>:<port>; an IPv6 host has colons of its own.
  const std::string_view t(r->str, r->len);
  redirection to;
  if (t.substr(0, 8) == "TRYAGAIN") {
    to.retry = true;
    to.ask = op.req->asking;
    to.host = endpoint_.host;
    to.port = endpoint_.port;
    in_flight_count_.sub();
    auto req = std::move(*op.req);
    req.asking = false;
    redirect_(to, std::move(req), std::move(op.done));
    return true;
  }
  to.ask = t.substr(0, 4) == "ASK ";
  if (!to.ask && t.substr(0, 6) != "MOVED ") return false;
  const auto sp1 = t.find(' ');
  const auto sp2 = t.find(' ', sp1 + 1);
  const auto colon = t.rfind(':');
  if (sp2 == std::string_view::npos || colon == std::string_view::npos || colon < sp2) return false;
  auto number = [](std::string_view digits, int& v) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    return ec == std::errc() && end == digits.data() + digits.size();
  };
  int slot = -1;
  if (!number(t.substr(sp1 + 1, sp2 - sp1 - 1), slot) || !number(t.substr(colon + 1), to.port) || slot < 0 ||
      slot >= redis_cluster_slots::slot_count || to.port <= 0 || to.port > 65535) {
    return false;
  }
  to.slot = static_cast<std::uint16_t>(slot);
  to.host = std::string(t.substr(sp2 + 1, colon - sp2 - 1));
  if (to.host.size() > 2 && to.host.front() == '[') to.host = to.host.substr(1, to.host.size() - 2);
  if (to.host.empty()) to.host = endpoint_.host;
  in_flight_count_.sub();  // the cluster sends it again, through a shard that counts it anew
  auto req = std::move(*op.req);
  req.asking = false;
  redirect_(to, std::move(req), std::move(op.done));
  return true;
}

void redis_shard::set_control(bool hold) {
  if (hold == holds_control_) return;
  holds_control_ = hold;
  if (auto* ac = sub_.open_context()) send_cluster_subscribe(ac, hold, control_);
}

redis_shard::channel_handover redis_shard::release_channel(const std::string& redis_channel) {
  channel_handover out;
  out.tracked =
      tracker_.position(redis_cluster_slots::channel_of_pubsub(opts_, redis_channel), out.epoch, out.last);
  check_on_confirm_.erase(redis_channel);
  unconfirmed_.erase(redis_channel);
  if (auto it = held_.find(redis_channel); it != held_.end()) {
    for (auto& h : it->second) {
      held_bytes_ -= h.req.body.size();
      --held_count_;
      in_flight_count_.sub();  // counted again by the shard that sends it
      out.held.emplace_back(std::move(h.req), std::move(h.done));
    }
    held_.erase(it);
  }
  unsubscribe(redis_channel);
  wake(redis_channel);  // subscribe replies waiting here: the new shard's SSUBSCRIBE follows at once
  return out;
}

void redis_shard::adopt_channel(const std::string& redis_channel, const channel_handover& from) {
  if (from.tracked) {
    tracker_.track_from(redis_cluster_slots::channel_of_pubsub(opts_, redis_channel), from.epoch, from.last);
  }
  const bool open = sub_.open_context() != nullptr;
  subscribe(redis_channel);
  // Not subscribed yet: the connection's readiness owes a check of every position (check_positions).
  if (from.tracked && open && sub_.ready()) check_on_confirm_.insert(redis_channel);
}

}  // namespace bc::broker
