// redis_shard: following the primary when it moves (Sentinel), and a write answered READONLY.

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include "broker/redis_shard.hpp"

namespace bc::broker {

namespace {

// How long an address found not to be the primary is not followed on a sentinel's answer alone: about the
// time sentinels take to agree after a failover.
constexpr std::chrono::seconds distrust_for{5};

std::string host_port(const std::string& host, int port) {
  redis_endpoint ep;
  ep.host = host;
  ep.port = port;
  return ep.address();
}

}  // namespace

void redis_shard::on_master(const std::string& host, int port, bool announced, const std::string& why) {
  if (stopped_ || (host == endpoint_.host && port == endpoint_.port)) return;
  const std::string to = host_port(host, port);
  if (!announced && to == not_primary_ && std::chrono::steady_clock::now() - not_primary_at_ < distrust_for) {
    spdlog::debug("redis shard {}: {} names {} as the primary, which is not one (yet); asking again later",
                  index_, why, to);
    return;
  }
  if (to == not_primary_) not_primary_.clear();
  const std::string from = endpoint_.host.empty() ? "" : host_port(endpoint_.host, endpoint_.port);
  endpoint_.host = host;
  endpoint_.port = port;
  if (!connections_started_) {
    spdlog::info("redis shard {}: the primary of {} is {} ({})", index_, endpoint_.master_name, to, why);
    connections_started_ = true;
    pub_.start();
    sub_.start();
    return;
  }
  failovers_.add();
  spdlog::warn("redis shard {}: the primary of {} moved from {} to {} ({}); reconnecting", index_,
               endpoint_.master_name, from, to, why);
  // At once, not after the backoff: the old primary is dead or demoted, the new one is ready.
  pub_.reconnect_now("the primary moved to " + to);
  sub_.reconnect_now("the primary moved to " + to);
}

void redis_shard::check_role(redis_link* ac, bool publish_side) {
  (publish_side ? pub_role_ok_ : sub_role_ok_) = false;
  ac->command(publish_side ? &redis_shard::on_pub_role : &redis_shard::on_sub_role, this, "ROLE");
  if (publish_side) ac->command(&redis_shard::on_replication_info, this, "INFO replication");
}

void redis_shard::on_replication_info(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;
  const std::string_view info = r->type == REDIS_REPLY_STRING ? std::string_view(r->str, r->len) : "";
  constexpr std::string_view field = "master_replid:";
  const auto at = info.find(field);
  if (at == std::string_view::npos) {
    // Without it a failover could hand out offsets again under the same epoch: not ready.
    self->pub_role_ok_ = false;
    spdlog::log(self->pub_.failure_level(), "{}: no master_replid in INFO replication", self->pub_.name());
    return self->pub_.drop_later("no replication id");
  }
  auto value = [&](std::size_t from) {
    const auto end = info.find_first_of("\r\n", from);
    return std::string(info.substr(from, end == std::string_view::npos ? end : end - from));
  };
  self->replication_id_ = value(at + field.size());
  // Cluster: the previous id too (a promoted replica's is its old primary's; the publish script starts new
  // epochs only for metas that primary wrote, not for ones a slot migration brought).
  constexpr std::string_view field2 = "master_replid2:";
  if (const auto at2 = info.find(field2); self->opts_.cluster && at2 != std::string_view::npos) {
    self->replication_id2_ = value(at2 + field2.size());
  }
}

void redis_shard::on_pub_role(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  self->role_answered(self->pub_, self->pub_role_ok_, static_cast<redisReply*>(reply));
}

void redis_shard::on_sub_role(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_shard*>(privdata);
  self->role_answered(self->sub_, self->sub_role_ok_, static_cast<redisReply*>(reply));
}

void redis_shard::role_answered(redis_connection& conn, bool& ok, const redisReply* r) {
  if (r == nullptr) return;  // connection going away
  const bool array = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                     (r->element[0]->type == REDIS_REPLY_STRING || r->element[0]->type == REDIS_REPLY_STATUS);
  const std::string role = array ? std::string(r->element[0]->str, r->element[0]->len)
                           : r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                                          : "no answer";
  ok = role == "master";
  if (ok) return;
  spdlog::log(conn.failure_level(), "{}: {} is not the primary (ROLE: {}); asking the {} again", conn.name(),
              host_port(endpoint_.host, endpoint_.port), role, opts_.cluster ? "cluster" : "sentinels");
  conn.drop_later("not the primary");
  not_the_primary("ROLE " + role);
}

bool redis_shard::readonly(redis_link* ac, const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR ||
      std::string_view(r->str, r->len).find("READONLY") == std::string_view::npos) {
    return false;
  }
  // The first of a pipeline's READONLY answers does it; the later ones find the connection going down.
  if (ac == nullptr || pub_.open_context() != ac || !pub_.ready()) return true;
  spdlog::warn(
      "redis shard {}: writes answered READONLY: the server is a replica now (demoted by a failover); "
      "reconnecting",
      index_);
  pub_.going_down();  // no new publish is accepted from here on
  pub_.drop_later("READONLY");
  sub_.drop_later("the publish connection found a replica");
  not_the_primary("READONLY");
  return true;
}

void redis_shard::not_the_primary(const std::string& why) {
  if (!endpoint_.host.empty()) {
    not_primary_ = host_port(endpoint_.host, endpoint_.port);
    not_primary_at_ = std::chrono::steady_clock::now();
  }
  spdlog::debug("redis shard {}: not the primary ({})", index_, why);
  if (sentinel_) sentinel_->ask();
  if (topology_hint_) topology_hint_("not the primary (" + why + ")");
}

}  // namespace bc::broker
