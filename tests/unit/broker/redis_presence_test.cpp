// Presence in Redis beyond what broker_conformance_test.cpp asks of every broker: members kept alive by
// refreshes, the members of a node that stopped refreshing leaving within PRESENCE_TTL (with a leave event),
// members published again after Redis lost them, removals made during an outage, and many members. Real
// redis-server processes; every wait is on a condition with a deadline.
#include "broker/redis_presence.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>

#include "broker/redis_broker.hpp"
#include "redis_test_support.hpp"

namespace bc::broker {
namespace {

using namespace redis_test;
using namespace std::chrono_literals;

// Records join / leave events, counts messages.
class presence_sink final : public delivery_sink {
 public:
  void deliver(core::message) override {}
  void deliver_gap(std::string, std::uint64_t, std::uint64_t) override {}
  void deliver_presence_event(core::message e) override {
    std::lock_guard lock(m_);
    events_.push_back((e.type == core::message::kind::join ? "join " : "leave ") + e.id);
    cv_.notify_all();
  }
  bool wait_event(const std::string& what, std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout,
                        [&] { return std::find(events_.begin(), events_.end(), what) != events_.end(); });
  }
  std::vector<std::string> events() {
    std::lock_guard lock(m_);
    return events_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
};

// Presence on for every channel (join/leave too), with the given ttl.
redis_options presence_options(std::chrono::seconds ttl) {
  redis_options o = contract_options();
  o.presence_ttl = ttl;
  core::channel_options c;
  c.presence = true;
  o.channels = core::channel_rules(c, {});
  return o;
}

struct node {
  presence_sink sink;
  redis_broker broker;
  node(const std::string& url, redis_options opts) : broker(sink, parse_redis_urls(url), std::move(opts)) {
    broker.start();
  }
  bool wait_healthy(std::chrono::milliseconds t = 5s) {
    return wait_until([&] { return broker.healthy(); }, t);
  }
  // "clients/users", or "unavailable".
  std::string counts(const std::string& channel) {
    auto p = std::make_shared<std::promise<presence_stats_result>>();
    auto f = p->get_future();
    broker.presence_stats(channel, [p](presence_stats_result r) { p->set_value(std::move(r)); });
    if (f.wait_for(5s) != std::future_status::ready) return "no answer";
    const auto r = f.get();
    if (r.status != publish_status::ok) return "unavailable";
    return std::to_string(r.counts.clients) + "/" + std::to_string(r.counts.users);
  }
  bool wait_counts(const std::string& channel, const std::string& want, std::chrono::milliseconds t = 5s) {
    return wait_until([&] { return counts(channel) == want; }, t);
  }
  redis_shard_stats stats() { return broker.stats().at(0); }
};

core::presence_member member(const std::string& id, const std::string& user) {
  return {id, user, {}};
}

bool interest(broker& b, const std::string& channel) {
  b.subscribe(channel);
  auto p = std::make_shared<std::promise<void>>();
  auto f = p->get_future();
  if (b.await_subscribed(channel, [p] { p->set_value(); })) return true;
  return f.wait_for(5s) == std::future_status::ready;
}

TEST(redis_presence, refreshes_keep_a_node_s_members_beyond_the_ttl) {
  redis_server redis;
  node a(redis.url(), presence_options(1s));
  node b(redis.url(), presence_options(1s));
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  for (int i = 0; i < 3; ++i) a.broker.add_presence("keep", member("a" + std::to_string(i), "u"), false);
  ASSERT_TRUE(b.wait_counts("keep", "3/1"));
  // Five passes over the three members after they were added: more than the ttl (a third of it apart).
  const auto before = a.stats().presence_refreshed;
  ASSERT_TRUE(wait_until([&] { return a.stats().presence_refreshed >= before + 15; }, 10s));
  EXPECT_EQ(b.counts("keep"), "3/1");
  EXPECT_EQ(a.stats().presence_members, 3u);
  EXPECT_EQ(a.stats().presence_errors, 0u);
}

TEST(redis_presence, a_node_that_stops_refreshing_leaves_within_the_ttl_with_a_leave_event) {
  redis_server redis;
  auto a = std::make_unique<node>(redis.url(), presence_options(1s));
  node b(redis.url(), presence_options(60s));
  ASSERT_TRUE(a->wait_healthy() && b.wait_healthy());
  ASSERT_TRUE(interest(b.broker, "dead"));
  a->broker.add_presence("dead", member("ghost", "g"), true);
  b.broker.add_presence("dead", member("alive", "l"), true);
  ASSERT_TRUE(b.sink.wait_event("join ghost", 5s));
  ASSERT_TRUE(b.wait_counts("dead", "2/2"));
  // Stopped without removing anything, as a killed node would: its member stays until its expiry.
  const auto stopped = std::chrono::steady_clock::now();
  a->broker.stop();
  ASSERT_TRUE(b.wait_counts("dead", "1/1", 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 1500ms) << "gone within the ttl (1 s) and a read";
  // The read that removed it announced its leave, to every node with interest.
  EXPECT_TRUE(b.sink.wait_event("leave ghost", 5s));
  const auto events = b.sink.events();
  EXPECT_EQ(std::count(events.begin(), events.end(), "leave alive"), 0);
}

TEST(redis_presence, members_are_published_again_after_redis_lost_them) {
  redis_server redis;
  node a(redis.url(), presence_options(60s));
  node b(redis.url(), presence_options(60s));
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  a.broker.add_presence("back", member("a1", "alice"), false);
  a.broker.add_presence("back", member("a2", "bob"), false);
  b.broker.add_presence("back", member("b1", "alice"), false);
  ASSERT_TRUE(a.wait_counts("back", "3/2"));
  redis.kill();
  redis.start();  // empty: no persistence
  ASSERT_TRUE(a.wait_healthy(10s) && b.wait_healthy(10s));
  // Each node re-adds its own members as soon as its publish connection is back.
  ASSERT_TRUE(b.wait_counts("back", "3/2", 10s)) << b.counts("back");
  // Counted when the re-add's answer reaches the node, which may be after another node already reads them.
  EXPECT_TRUE(wait_until([&] { return a.stats().presence_readded >= 2; }, 5s)) << a.stats().presence_readded;
  EXPECT_TRUE(wait_until([&] { return b.stats().presence_readded >= 1; }, 5s)) << b.stats().presence_readded;
  // And they are still removable as usual.
  a.broker.remove_presence("back", member("a2", "bob"), false);
  EXPECT_TRUE(a.wait_counts("back", "2/1"));
}

TEST(redis_presence, a_member_removed_while_redis_is_unreachable_leaves_when_it_is_back) {
  redis_server redis;
  node a(redis.url(), presence_options(60s));
  node b(redis.url(), presence_options(60s));
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  a.broker.add_presence("gap", member("a1", "u1"), true);
  a.broker.add_presence("gap", member("a2", "u2"), true);
  ASSERT_TRUE(b.wait_counts("gap", "2/2"));
  // Redis hangs (its data kept): the node notices, and removes a member meanwhile.
  redis.pause();
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 5s));
  a.broker.remove_presence("gap", member("a1", "u1"), true);
  redis.resume();
  ASSERT_TRUE(a.wait_healthy(10s) && b.wait_healthy(10s));
  // Long before its 60 s expiry: sent as soon as the connection came back. (Its leave went out then too,
  // but b, which lost Redis as well, may not have been subscribed again yet: Pub/Sub keeps nothing.)
  EXPECT_TRUE(b.wait_counts("gap", "1/1", 5s)) << b.counts("gap");
  EXPECT_EQ(a.stats().presence_members, 1u);
}

TEST(redis_presence, many_members_are_refreshed_in_bounded_batches) {
  redis_server redis;
  node a(redis.url(), presence_options(3s));
  node b(redis.url(), presence_options(3s));
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  constexpr int crowd = 2500, channels = 300;
  for (int i = 0; i < crowd; ++i)
    a.broker.add_presence("crowd", member("c" + std::to_string(i), "u" + std::to_string(i % 100)), false);
  for (int i = 0; i < channels; ++i)
    a.broker.add_presence("solo-" + std::to_string(i), member("s", "u"), false);
  ASSERT_TRUE(b.wait_counts("crowd", "2500/100", 10s)) << b.counts("crowd");
  const auto before = a.stats().presence_refreshed;
  ASSERT_TRUE(
      wait_until([&] { return a.stats().presence_refreshed >= before + 2 * (crowd + channels); }, 20s));
  // Publishes still flow while refreshes run.
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(publish_and_wait(a.broker, make_pub("crowd", "1")), publish_status::ok);
  EXPECT_EQ(b.counts("crowd"), "2500/100");
  EXPECT_EQ(b.counts("solo-299"), "1/1");
  EXPECT_EQ(a.stats().presence_members, static_cast<std::uint64_t>(crowd + channels));
  EXPECT_EQ(a.stats().presence_errors, 0u);
  EXPECT_EQ(a.stats().presence_readded, 0u);
}

TEST(redis_presence, presence_keys_expire_when_no_node_refreshes_them) {
  redis_server redis;
  redis_probe probe(redis.port());
  {
    node a(redis.url(), presence_options(1s));
    ASSERT_TRUE(a.wait_healthy());
    a.broker.add_presence("tidy", member("a1", "u"), false);
    ASSERT_TRUE(a.wait_counts("tidy", "1/1"));
  }
  EXPECT_NE(probe.command({"EXISTS", redis_scripts::presence_expiry_key("broadcaster:", "tidy")}), "0");
  EXPECT_TRUE(wait_until(
      [&] {
        return probe.command({"EXISTS", redis_scripts::presence_expiry_key("broadcaster:", "tidy"),
                              redis_scripts::presence_members_key("broadcaster:", "tidy"),
                              redis_scripts::presence_users_key("broadcaster:", "tidy")}) == "0";
      },
      5s));
}

}  // namespace
}  // namespace bc::broker
