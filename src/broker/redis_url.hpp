#pragma once
// Parsing of REDIS_URL: where each Redis instance (shard) of the Redis broker lives.

#include <string>
#include <string_view>
#include <vector>

namespace bc::broker {

// A host and port, for a sentinel.
struct redis_host {
  std::string host;
  int port = 26379;
};

// One Redis instance. `db` is accepted for compatibility with the usual URL form but has no effect: Redis
// Pub/Sub is not scoped to a database.
//
// With Sentinel (`sentinels` not empty) host and port are not known up front: they are the primary the
// sentinels name for `master_name`, filled in (and changed on failover) by the shard (redis_sentinel.hpp).
// The credentials are the data nodes'; the sentinels' own are redis_options::sentinel_username/password.
//
// `tls` (rediss://, rediss+sentinel://): every connection is TLS, as redis_options::tls says; with Sentinel,
// to the sentinels and to the primaries they name alike.
struct redis_endpoint {
  std::string host;
  int port = 6379;
  std::vector<redis_host> sentinels;
  std::string master_name;
  // Redis Cluster (`redis+cluster://`): the seed nodes asked for the cluster's topology. Each primary then
  // becomes a shard of its own, at the address the cluster announces (redis_cluster.hpp).
  std::vector<redis_host> cluster_seeds;
  std::string username;  // Redis 6 ACL user; empty = the default user
  std::string password;  // empty = no AUTH
  int db = 0;
  bool tls = false;

  // host:port, for logs and metrics (never the password); with Sentinel `sentinel/<master name>`, which stays
  // the same across failovers (one metrics series per shard); for a cluster's seeds `cluster`.
  std::string address() const;
};

// Parses `redis://[[user]:password@]host[:port][/db]`, or a comma-separated list of them (one per shard, in
// shard order); `rediss://` is the same over TLS. An entry may also be
// `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/name[/db]` (sentinel port 26379 by
// default; `rediss+sentinel://` over TLS): its comma-separated sentinels run up to the '/' before the master
// name. Or, alone (a cluster is not one shard among others),
// `redis+cluster://[[user]:password@]host[:port][,host[:port]...][/db]`: seed nodes of a Redis Cluster (port
// 6379 by default), one entry with `cluster_seeds` set. The scheme may be left
// out; an IPv6 host is written in brackets; user and password may be percent-encoded. Throws
// std::invalid_argument with a message naming the bad entry. The message never contains a password.
std::vector<redis_endpoint> parse_redis_urls(std::string_view list);

// `url` with its password replaced by ******** (for logs, errors and --print-config):
// redis://user:pw@host → redis://user:********@host; redis://pw@host → redis://********@host.
std::string redact_redis_url(std::string_view url);

}  // namespace bc::broker
