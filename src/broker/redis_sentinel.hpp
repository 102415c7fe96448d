#pragma once
// Finding a shard's primary through Redis Sentinel, and following it when the sentinels fail it over.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/redis_connection.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_url.hpp"

namespace bc::broker {

// Keeps two connections to every sentinel of a `redis+sentinel://` endpoint, all at once rather than one
// after the other, so that a sentinel that is down or partitioned costs nothing when the primary moves:
//
//   query:  `SENTINEL get-master-addr-by-name <name>` when it opens and on every ask() (the shard asks when
//           one of its connections is lost or cannot connect, finds a replica behind ROLE, or gets READONLY);
//   events: SUBSCRIBE +switch-master, so that a failover is known the moment a sentinel announces it, and a
//           re-ask whenever it (re)opens (an announcement may have been missed while it was down).
//
// Every answer naming a primary is handed to `on_master` (posted, never from inside a reply callback); the
// shard compares it with where it is connected. Sentinels may disagree for a moment during a failover: the
// shard checks every primary it connects to with ROLE, and asks again when it is not one.
//
// Thread-safety: everything on the io_context's thread (the broker thread).
class redis_sentinel {
 public:
  // `announced`: from a +switch-master event (a failover just happened), not an answer to a question (which a
  // sentinel that has not caught up yet may answer with the old primary).
  using master_handler =
      std::function<void(const std::string& host, int port, bool announced, const std::string& why)>;

  redis_sentinel(boost::asio::io_context& ioc, const redis_endpoint& endpoint, const redis_options& opts,
                 const std::string& name, master_handler on_master);
  ~redis_sentinel();
  redis_sentinel(const redis_sentinel&) = delete;
  redis_sentinel& operator=(const redis_sentinel&) = delete;

  void start();
  void stop();
  // Asks every sentinel whose query connection is up (the others ask when they come up).
  void ask();

 private:
  struct watcher;
  static void on_master_reply(redis_link* ac, void* reply, void* privdata);
  static void on_event(redis_link* ac, void* reply, void* privdata);
  void query(watcher& w, redis_link* ac);
  void report(std::string host, int port, bool announced, std::string why);

  boost::asio::io_context& ioc_;
  const std::string master_name_;
  const std::string name_;  // "redis shard 0" for logs
  master_handler on_master_;
  std::vector<std::unique_ptr<watcher>> watchers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // posted reports check it
};

}  // namespace bc::broker
