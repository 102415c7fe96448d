#pragma once
// Tunables of the Redis broker. Plain aggregate with production defaults; tests shorten the timeouts.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "core/channel_rules.hpp"

namespace bc::broker {

class redis_tls;

// REDIS_TLS_*: how `rediss://` (and `rediss+sentinel://`) connections are made. docs/redis.md "TLS and ACL
// users".
struct redis_tls_options {
  std::string ca_file;      // PEM CAs the server's certificate must chain to; empty = the system trust store
  std::string cert_file;    // client certificate chain (PEM), for servers with `tls-auth-clients yes`
  std::string key_file;     // its private key (PEM, unencrypted)
  std::string server_name;  // SNI and the name the certificate must carry; empty = each connection's host
  bool insecure_skip_verify = false;  // development only: no certificate or name check at all
};

struct redis_options {
  // Every Broadcaster channel C is the Redis Pub/Sub channel `channel_prefix + C`, so that several
  // deployments (or other applications) can share one Redis.
  std::string channel_prefix = "broadcaster:";

  // Redis Cluster (a redis+cluster:// URL, docs/redis.md "Redis Cluster"): a channel's Pub/Sub channel is the
  // sharded `channel_prefix{C}` (SPUBLISH / SSUBSCRIBE) on the primary that owns its slot. Set by the broker.
  bool cluster = false;
  // The cluster's slot map is read again this often, at once on MOVED, a sunsubscribe from Redis or a lost
  // connection, and every cluster_refresh_degraded while some slot has no reachable primary (a failover).
  std::chrono::milliseconds cluster_refresh{5000};
  std::chrono::milliseconds cluster_refresh_degraded{250};

  // Reconnect delay: starts at backoff_min, doubles after every failed attempt up to backoff_max, with jitter
  // (the actual wait is uniformly drawn from [d/2, d]). Reset once a connection is up.
  std::chrono::milliseconds backoff_min{50};
  std::chrono::milliseconds backoff_max{2000};

  // From starting a TCP connect to the connection being usable (AUTH answered, PING/SUBSCRIBE confirmed).
  std::chrono::milliseconds connect_timeout{2000};

  // A PUBLISH whose reply has not arrived after this long means Redis hangs: the shard's connections are
  // dropped (every in-flight publish answers `unavailable`) and re-established.
  std::chrono::milliseconds publish_timeout{2000};

  // A publish connection with nothing in flight for this long sends a PING, so that a hung or partitioned
  // Redis is noticed (by the same timeout) even on a node that publishes nothing.
  std::chrono::milliseconds heartbeat_interval{1000};

  // PUBLISHes sent and not yet answered, per shard, by count and by envelope bytes; beyond either a publish
  // answers `unavailable` (bounded memory when Redis is slow).
  std::size_t max_in_flight = 100000;
  std::size_t max_in_flight_bytes = 64u << 20;

  // REDIS_WAIT_REPLICAS: a publish to a channel with history answers `ok` only once this many replicas
  // acknowledged it (WAIT after the publish script), so that a failover cannot lose an acknowledged message
  // from history. 0 = off (replication stays asynchronous). A WAIT not satisfied within wait_timeout answers
  // `unavailable` (the message may have been delivered). docs/redis.md "Sentinel".
  unsigned wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{
      500};  // below publish_timeout, or the watchdog would drop the connection

  // How long a channel's position (its epoch and last offset, the `{C}:meta` hash) outlives its last publish.
  // Long, so that a client resuming after a quiet period finds the same epoch; a channel idle for longer
  // starts a new epoch (its subscribers then see `recovered: false`). docs/redis.md "Channel positions".
  std::chrono::seconds position_ttl{std::chrono::hours(24 * 30)};

  // PRESENCE_TTL: this node's members expire in Redis this long after their last refresh (the node refreshes
  // them every third of it), so a node that dies leaves presence within it. docs/redis.md "Presence".
  std::chrono::seconds presence_ttl{60};

  // TLS settings for `rediss://` entries, and the context built from them at start-up (redis_broker does it
  // when an entry asks for TLS; null otherwise).
  redis_tls_options tls;
  std::shared_ptr<redis_tls> tls_context;

  // REDIS_SENTINEL_USERNAME / REDIS_SENTINEL_PASSWORD: AUTH with the sentinels themselves (the credentials
  // in a redis+sentinel:// URL are the data nodes'). Empty password = no AUTH.
  std::string sentinel_username;
  std::string sentinel_password;

  // History and presence per channel (HISTORY_SIZE, HISTORY_TTL, [[channels]] rules).
  core::channel_rules channels;
};

}  // namespace bc::broker
