#include "broker/redis_broker.hpp"

#include <gtest/gtest.h>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <future>
#include <set>

#include "redis_test_proxy.hpp"
#include "redis_test_support.hpp"

namespace bc::broker {
namespace {

using namespace redis_test;
using namespace std::chrono_literals;

constexpr const char* prefix = "broadcaster:";

// One node's broker over the given Redis URL(s), started; stopped by its destructor.
struct node {
  recording_sink sink;
  redis_broker broker;
  node(const std::string& url, redis_options opts = fast_options())
      : broker(sink, parse_redis_urls(url), std::move(opts)) {
    broker.start();
  }
  bool wait_healthy(std::chrono::milliseconds t = 5s) {
    return wait_until([&] { return broker.healthy(); }, t);
  }
};

// Waits until Redis reports `n` subscribers for a Broadcaster channel (SUBSCRIBE is asynchronous).
bool wait_numsub(int port, const std::string& channel, long long n, std::chrono::milliseconds t = 5s) {
  return wait_until([&] { return redis_probe(port).numsub(prefix + channel) == n; }, t);
}

TEST(redis_broker, round_trip_through_redis) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  EXPECT_EQ(a.broker.describe(), "redis 1 shard, 1 up");
  a.broker.subscribe("news");
  ASSERT_TRUE(wait_numsub(redis.port(), "news", 1));

  auto pub = make_pub("news", R"({"text":"hi","n":[1,2]})", "greeting");
  EXPECT_EQ(publish_and_wait(a.broker, pub), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));
  const auto got = a.sink.got().front();
  EXPECT_EQ(got->id, pub.id);
  EXPECT_EQ(got->create_time_ms, pub.create_time_ms);
  EXPECT_EQ(got->channel, "news");
  EXPECT_EQ(got->event, "greeting");
  EXPECT_EQ(got->payload, R"({"text":"hi","n":[1,2]})");

  const auto st = a.broker.stats().at(0);
  EXPECT_TRUE(st.publish_up && st.subscribe_up);
  EXPECT_EQ(st.published, 1u);
  EXPECT_EQ(st.received, 1u);
  EXPECT_EQ(st.channels, 1u);
  EXPECT_EQ(st.in_flight, 0u);
}

TEST(redis_broker, a_message_reaches_every_node_with_interest_and_only_those) {
  redis_server redis;
  node a(redis.url()), b(redis.url()), c(redis.url());
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy() && c.wait_healthy());
  b.broker.subscribe("room");
  c.broker.subscribe("room");
  c.broker.subscribe("other");
  ASSERT_TRUE(wait_numsub(redis.port(), "room", 2));
  ASSERT_TRUE(wait_numsub(redis.port(), "other", 1));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("room", "1")), publish_status::ok);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("other", "2")), publish_status::ok);
  ASSERT_TRUE(b.sink.wait_for(1));
  ASSERT_TRUE(c.sink.wait_for(2));
  EXPECT_EQ(a.sink.size(), 0u) << "no local interest, no Redis subscription, nothing delivered";
  EXPECT_EQ(b.sink.size(), 1u);
}

TEST(redis_broker, one_thousand_publishes_from_one_thread_arrive_in_order_on_every_node) {
  redis_server redis;
  node a(redis.url()), b(redis.url());
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  a.broker.subscribe("seq");
  b.broker.subscribe("seq");
  ASSERT_TRUE(wait_numsub(redis.port(), "seq", 2));

  constexpr int n = 1000;
  std::atomic<int> ok{0}, answered{0};
  for (int i = 0; i < n; ++i) {
    a.broker.publish(make_pub("seq", std::to_string(i)), [&](publish_status s) {
      if (s == publish_status::ok) ++ok;
      ++answered;
    });
  }
  ASSERT_TRUE(wait_until([&] { return answered == n; }, 10s));
  EXPECT_EQ(ok, n);
  for (auto* sink : {&a.sink, &b.sink}) {
    ASSERT_TRUE(sink->wait_for(n, 10s));
    const auto got = sink->got();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(got[i]->payload, std::to_string(i)) << "at " << i;
  }
}

TEST(redis_broker, unsubscribe_stops_delivery) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("gone");
  a.broker.subscribe("marker");
  ASSERT_TRUE(wait_numsub(redis.port(), "gone", 1));
  ASSERT_TRUE(wait_numsub(redis.port(), "marker", 1));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("gone", "before")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));

  a.broker.unsubscribe("gone");
  ASSERT_TRUE(wait_numsub(redis.port(), "gone", 0));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("gone", "after")), publish_status::ok)
      << "Redis accepts a publish nobody listens to";
  // Same subscribe connection, so once the later marker is here the earlier message would have been too.
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("marker", "m")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(2));
  const auto got = a.sink.got();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]->payload, "before");
  EXPECT_EQ(got[1]->payload, "m");
  EXPECT_EQ(a.broker.stats().at(0).channels, 1u);
}

TEST(redis_broker, unsubscribe_then_subscribe_again_quickly_keeps_the_subscription) {
  // Pipelined SUBSCRIBE/UNSUBSCRIBE/SUBSCRIBE of one channel: the case hiredis 0.14 gets wrong without the
  // anchor.
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  for (int i = 0; i < 50; ++i) {
    a.broker.subscribe("flap");
    a.broker.unsubscribe("flap");
  }
  a.broker.subscribe("flap");
  ASSERT_TRUE(wait_numsub(redis.port(), "flap", 1));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("flap", "still here")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));
  EXPECT_EQ(a.sink.got().at(0)->payload, "still here");
  a.broker.unsubscribe("flap");
  ASSERT_TRUE(wait_numsub(redis.port(), "flap", 0));
  EXPECT_TRUE(a.broker.healthy());
}

TEST(redis_broker, a_publish_right_after_a_local_subscribe_is_delivered_locally) {
  // No waiting for Redis between them. SUBSCRIBE and PUBLISH travel on different connections, which Redis
  // does not order: without holding the publish until the SUBSCRIBE is confirmed, a third or more are lost in
  // a sanitizer build.
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  constexpr int n = 1000;
  std::atomic<int> ok{0};
  for (int i = 0; i < n; ++i) {
    const std::string ch = "imm:" + std::to_string(i);
    a.broker.subscribe(ch);
    a.broker.publish(make_pub(ch, std::to_string(i)),
                     [&](publish_status s) { ok += s == publish_status::ok; });
  }
  ASSERT_TRUE(a.sink.wait_for(n, 10s)) << a.sink.size() << " of " << n;
  // `ok` comes after the delivery: it waits for the subscribe connection to pass the message.
  EXPECT_TRUE(wait_until([&] { return ok == n; }, 5s)) << ok << " of " << n;
}

TEST(redis_broker, a_publish_on_another_node_right_after_await_subscribed_is_delivered) {
  // The cross-node race a subscribe reply must not lose: node a learns "subscribed" (the client's reply),
  // then node b publishes at once. Without waiting for Redis's SUBSCRIBE confirmation some are lost.
  redis_server redis;
  node a(redis.url());
  node b(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  ASSERT_TRUE(b.wait_healthy());
  constexpr int n = 300;
  std::atomic<int> ok{0};
  for (int i = 0; i < n; ++i) {
    const std::string ch = "race:" + std::to_string(i);
    a.broker.subscribe(ch);
    std::promise<void> live;
    if (!a.broker.await_subscribed(ch, [&] { live.set_value(); })) {
      ASSERT_EQ(live.get_future().wait_for(5s), std::future_status::ready);
    }
    b.broker.publish(make_pub(ch, std::to_string(i)),
                     [&](publish_status s) { ok += s == publish_status::ok; });
  }
  ASSERT_TRUE(a.sink.wait_for(n, 10s)) << a.sink.size() << " of " << n;
  EXPECT_TRUE(wait_until([&] { return ok == n; }, 5s));
}

TEST(redis_broker, await_subscribed_answers_at_once_for_a_confirmed_channel_and_when_redis_hangs) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("known");
  ASSERT_TRUE(wait_numsub(redis.port(), "known", 1));
  std::promise<void> first;
  if (!a.broker.await_subscribed("known", [&] { first.set_value(); })) {
    ASSERT_EQ(first.get_future().wait_for(1s), std::future_status::ready);
  }
  // A SUBSCRIBE Redis never answers: the wait is bounded (publish_timeout, then the connection is dropped).
  redis.pause();
  a.broker.subscribe("stuck");
  std::promise<void> second;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_FALSE(a.broker.await_subscribed("stuck", [&] { second.set_value(); }));
  ASSERT_EQ(second.get_future().wait_for(3s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  redis.resume();
  ASSERT_TRUE(a.wait_healthy(5s));
}

TEST(redis_broker, await_subscribed_after_stop_answers_at_once) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.stop();
  bool called = false;
  EXPECT_TRUE(a.broker.await_subscribed("x", [&] { called = true; }));
  EXPECT_FALSE(called);
}

TEST(redis_broker, shard_of_is_stable_balanced_and_consistent) {
  EXPECT_EQ(redis_broker::shard_of("anything", 1), 0u);
  EXPECT_EQ(redis_broker::shard_of("anything", 0), 0u);
  std::vector<int> count(3);
  int moved = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string ch = "chat:room-" + std::to_string(i);
    const auto two = redis_broker::shard_of(ch, 2);
    const auto three = redis_broker::shard_of(ch, 3);
    ASSERT_EQ(two, redis_broker::shard_of(ch, 2)) << "deterministic";
    ASSERT_LT(three, 3u);
    ++count[three];
    // Jump hash: growing 2 -> 3 only moves channels onto the new shard.
    if (three != two) {
      ++moved;
      EXPECT_EQ(three, 2u) << ch;
    }
  }
  for (int c : count) EXPECT_NEAR(c, 1000, 150);
  EXPECT_NEAR(moved, 1000, 150);
  // Pinned values: changing the hash would split a running cluster (nodes must agree on it).
  EXPECT_EQ(redis_broker::shard_of("news", 2), redis_broker::shard_of(std::string("news"), 2));
}

TEST(redis_broker, channels_are_sharded_over_two_redis_instances) {
  redis_server r0, r1;
  const std::string urls = r0.url() + "," + r1.url();
  node a(urls), b(urls);
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  EXPECT_EQ(a.broker.describe(), "redis 2 shards, 2 up");

  std::vector<std::string> channels;
  for (int i = 0; i < 20; ++i) channels.push_back("shard:c" + std::to_string(i));
  std::set<std::size_t> used;
  for (const auto& ch : channels) {
    b.broker.subscribe(ch);
    used.insert(redis_broker::shard_of(ch, 2));
  }
  ASSERT_EQ(used.size(), 2u) << "the test channels must land on both shards";
  for (const auto& ch : channels) {
    const bool on0 = redis_broker::shard_of(ch, 2) == 0;
    ASSERT_TRUE(wait_numsub((on0 ? r0 : r1).port(), ch, 1)) << ch;
    EXPECT_EQ(redis_probe((on0 ? r1 : r0).port()).numsub(prefix + ch), 0)
        << ch << " subscribed on the wrong shard";
  }
  for (const auto& ch : channels) EXPECT_EQ(publish_and_wait(a.broker, make_pub(ch, ch)), publish_status::ok);
  ASSERT_TRUE(b.sink.wait_for(channels.size()));
  std::set<std::string> got;
  for (const auto& p : b.sink.got()) got.insert(p->payload);
  EXPECT_EQ(got, std::set<std::string>(channels.begin(), channels.end()));
  const auto sa = a.broker.stats(), sb = b.broker.stats();
  EXPECT_GT(sa[0].published, 0u);
  EXPECT_GT(sa[1].published, 0u);
  EXPECT_EQ(sa[0].published + sa[1].published, channels.size());
  EXPECT_EQ(sb[0].received + sb[1].received, channels.size());
  EXPECT_EQ(sb[0].channels + sb[1].channels, channels.size());
}

TEST(redis_broker, killed_redis_makes_publish_unavailable_quickly_and_health_false) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("k");
  ASSERT_TRUE(wait_numsub(redis.port(), "k", 1));

  redis.kill();
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 2s));
  EXPECT_EQ(a.broker.describe(), "redis 1 shard, 0 up");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("k", "lost")), publish_status::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms) << "refused at once, not after a timeout";
  EXPECT_GE(a.broker.stats().at(0).publish_failures, 1u);
}

TEST(redis_broker, in_flight_publishes_all_complete_when_redis_dies) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  constexpr int n = 20000;
  std::atomic<int> ok{0}, unavailable{0};
  std::thread killer([&] {
    std::this_thread::sleep_for(2ms);
    redis.kill();
  });
  for (int i = 0; i < n; ++i) {
    a.broker.publish(make_pub("burst", std::string(100, 'x')),
                     [&](publish_status s) { ++(s == publish_status::ok ? ok : unavailable); });
  }
  killer.join();
  ASSERT_TRUE(wait_until([&] { return ok + unavailable == n; }, 5s))
      << ok << " ok + " << unavailable << " unavailable of " << n;
  EXPECT_GT(unavailable, 0);
  EXPECT_EQ(a.broker.stats().at(0).in_flight, 0u);
  EXPECT_EQ(a.broker.stats().at(0).published, static_cast<std::uint64_t>(ok.load()))
      << "ok exactly when Redis acknowledged the PUBLISH";
}

TEST(redis_broker, restarted_redis_gets_every_interested_channel_again_and_delivery_resumes) {
  redis_server redis;
  node a(redis.url()), b(redis.url());
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  b.broker.subscribe("r1");
  b.broker.subscribe("r2");
  b.broker.subscribe("dropped");
  ASSERT_TRUE(wait_numsub(redis.port(), "r1", 1));
  ASSERT_TRUE(wait_numsub(redis.port(), "dropped", 1));

  redis.kill();
  ASSERT_TRUE(wait_until([&] { return !b.broker.healthy(); }, 2s));
  b.broker.unsubscribe("dropped");  // interest changes while Redis is away count too
  b.broker.subscribe("r3");
  // A few failed attempts on both connections before Redis comes back.
  ASSERT_TRUE(wait_until([&] { return b.broker.stats().at(0).connect_failures >= 4; }, 5s));
  redis.start();

  ASSERT_TRUE(a.wait_healthy(5s));
  ASSERT_TRUE(b.wait_healthy(5s));
  redis_probe probe(redis.port());
  EXPECT_EQ(probe.numsub(std::string(prefix) + "r1"), 1) << "healthy means re-subscribed";
  EXPECT_EQ(probe.numsub(std::string(prefix) + "r2"), 1);
  EXPECT_EQ(probe.numsub(std::string(prefix) + "r3"), 1);
  EXPECT_EQ(probe.numsub(std::string(prefix) + "dropped"), 0);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("r1", "again")), publish_status::ok);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("r3", "new")), publish_status::ok);
  ASSERT_TRUE(b.sink.wait_for(2));
  EXPECT_EQ(b.sink.got().at(0)->payload, "again");
  EXPECT_EQ(b.sink.got().at(1)->payload, "new");
  EXPECT_GE(b.broker.stats().at(0).reconnects, 2u) << "publish and subscribe connections";
}

TEST(redis_broker, unreachable_at_start_is_unhealthy_then_connects_when_redis_appears) {
  const int port = free_port();
  node a("redis://127.0.0.1:" + std::to_string(port));
  a.broker.subscribe("early");
  ASSERT_TRUE(wait_until([&] { return a.broker.stats().at(0).connect_failures >= 4; }, 5s));
  EXPECT_FALSE(a.broker.healthy());
  EXPECT_EQ(a.broker.stats().at(0).reconnects, 0u) << "never up, so never up again";
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("early", "x")), publish_status::unavailable);

  redis_server redis(port);
  ASSERT_TRUE(a.wait_healthy(5s));
  EXPECT_EQ(redis_probe(port).numsub(std::string(prefix) + "early"), 1);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("early", "y")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));
  EXPECT_EQ(a.sink.got().at(0)->payload, "y");
}

TEST(redis_broker, hung_redis_times_publishes_out_then_recovers) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("h");
  ASSERT_TRUE(wait_numsub(redis.port(), "h", 1));

  redis.pause();  // SIGSTOP: the TCP connection stays open, nothing answers
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("h", "stuck"), 3s), publish_status::unavailable);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(waited, 1500ms) << "publish_timeout 500 ms plus one watchdog period, not a hang";
  EXPECT_FALSE(a.broker.healthy());

  redis.resume();
  ASSERT_TRUE(a.wait_healthy(5s));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("h", "fine")), publish_status::ok);
  ASSERT_TRUE(
      wait_until([&] { return !a.sink.got().empty() && a.sink.got().back()->payload == "fine"; }, 5s));
}

TEST(redis_broker, hung_redis_is_noticed_by_heartbeats_without_any_publish) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  redis.pause();
  // heartbeat 100 ms + publish_timeout 500 ms + one watchdog period
  EXPECT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 1500ms));
  redis.resume();
  ASSERT_TRUE(a.wait_healthy(5s));
  EXPECT_EQ(a.broker.stats().at(0).in_flight, 0u) << "heartbeats are not publishes";
}

// ---- the subscribe connection ------------------------------------------------------------------------

// Makes Redis refuse new connections (maxclients 1) so that a node cannot reconnect: its outage lasts until
// accept_new_connections(). Connections already open, this one included, keep working. (Not an ACL refusing
// SUBSCRIBE: the subscribe connection's ping is a SUBSCRIBE, so that would drop it at once.)
struct redis_admin {
  redis_probe conn;
  std::string maxclients;
  explicit redis_admin(int port) : conn(port), maxclients(conn.command({"CONFIG", "GET", "maxclients"})) {}
  bool refuse_new_connections() { return conn.command({"CONFIG", "SET", "maxclients", "1"}) == "OK"; }
  bool accept_new_connections() { return conn.command({"CONFIG", "SET", "maxclients", maxclients}) == "OK"; }
  // The node's subscribe connection is the only pub/sub client: Redis closes it.
  bool kill_subscribers() { return conn.command({"CLIENT", "KILL", "TYPE", "pubsub"}) == "1"; }
};

TEST(redis_broker, a_lost_subscribe_connection_refuses_publishes_until_it_has_resubscribed) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("k");
  ASSERT_TRUE(wait_numsub(redis.port(), "k", 1));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("k", "before")), publish_status::ok);

  redis_admin admin(redis.port());
  ASSERT_TRUE(admin.refuse_new_connections());
  ASSERT_TRUE(admin.kill_subscribers());
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 2s));
  auto st = a.broker.stats().at(0);
  EXPECT_TRUE(st.publish_up);
  EXPECT_FALSE(st.subscribe_up);
  EXPECT_EQ(a.broker.describe(), "redis 1 shard, 0 up");
  // Redis would take it, but it could not reach this node's own subscriber.
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("k", "refused")), publish_status::unavailable);
  // Reconnecting is refused meanwhile: attempts that fail before the connection is ready are counted.
  ASSERT_TRUE(wait_until([&] { return a.broker.stats().at(0).connect_failures >= 2; }, 5s));
  EXPECT_FALSE(a.broker.healthy());
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("k", "refused too")), publish_status::unavailable);

  ASSERT_TRUE(admin.accept_new_connections());
  ASSERT_TRUE(a.wait_healthy());
  EXPECT_EQ(redis_probe(redis.port()).numsub(std::string(prefix) + "k"), 1) << "healthy means re-subscribed";
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("k", "after")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(2));
  const auto got = a.sink.got();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]->payload, "before");
  EXPECT_EQ(got[1]->payload, "after");
  st = a.broker.stats().at(0);
  EXPECT_EQ(st.publish_failures, 2u);
  EXPECT_EQ(st.published, 2u);
  EXPECT_EQ(st.reconnects, 1u);
}

// Every line logged through spdlog's default logger while it lives.
struct log_capture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  log_capture() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink)); }
  ~log_capture() { spdlog::set_default_logger(previous); }
  std::vector<std::string> lines_with(spdlog::level::level_enum level, const std::string& text) {
    std::vector<std::string> out;
    for (const auto& m : sink->last_raw()) {
      const std::string line(m.payload.data(), m.payload.size());
      if (m.level == level && line.find(text) != std::string::npos) out.push_back(line);
    }
    return out;
  }
};

TEST(redis_broker, a_lost_connection_that_was_up_is_logged_once_as_lost_and_is_no_connect_failure) {
  log_capture logs;  // outlives the node
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("x");
  ASSERT_TRUE(wait_numsub(redis.port(), "x", 1));
  redis_admin admin(redis.port());

  ASSERT_TRUE(admin.kill_subscribers());
  ASSERT_TRUE(wait_until([&] { return a.broker.stats().at(0).reconnects == 1 && a.broker.healthy(); }, 5s));
  EXPECT_EQ(a.broker.stats().at(0).connect_failures, 0u);
  // The publish connection (CLIENT KILL skips the connection that sends it).
  ASSERT_EQ(admin.conn.command({"CLIENT", "KILL", "TYPE", "normal"}), "1");
  ASSERT_TRUE(wait_until([&] { return a.broker.stats().at(0).reconnects == 2 && a.broker.healthy(); }, 5s));
  EXPECT_EQ(a.broker.stats().at(0).connect_failures, 0u);

  const std::string where = "(127.0.0.1:" + std::to_string(redis.port()) + "): connection lost (";
  EXPECT_EQ(logs.lines_with(spdlog::level::warn, "redis shard 0 subscribe " + where).size(), 1u);
  EXPECT_EQ(logs.lines_with(spdlog::level::warn, "redis shard 0 publish " + where).size(), 1u);
  EXPECT_EQ(logs.lines_with(spdlog::level::warn, "Server closed the connection").size(), 2u) << "why";
  EXPECT_TRUE(logs.lines_with(spdlog::level::warn, "cannot connect").empty());
  EXPECT_EQ(logs.lines_with(spdlog::level::info, ": up again").size(), 2u);
}

TEST(redis_broker, a_hung_subscribe_connection_is_noticed_by_its_ping_and_publishes_are_refused) {
  redis_server redis;
  freezing_proxy proxy(redis.port());
  node a(proxy.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("hang");
  ASSERT_TRUE(wait_numsub(redis.port(), "hang", 1));
  redis_admin admin(redis.port());
  ASSERT_TRUE(
      admin.refuse_new_connections());  // so that the outage lasts once the hung connection is dropped

  ASSERT_EQ(proxy.freeze_subscribers(), 1);
  // heartbeat 100 ms + publish_timeout 500 ms + a watchdog period; nothing else would notice (no FIN, no RST)
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 3s));
  const auto st = a.broker.stats().at(0);
  EXPECT_TRUE(st.publish_up) << "Redis itself answers: the subscribe connection's own ping noticed";
  EXPECT_FALSE(st.subscribe_up);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("hang", "refused")), publish_status::unavailable);

  ASSERT_TRUE(admin.accept_new_connections());
  ASSERT_TRUE(a.wait_healthy());
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("hang", "back")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));
  EXPECT_EQ(a.sink.got().at(0)->payload, "back");
}

TEST(redis_broker, every_publish_answered_ok_reaches_the_local_sink_across_a_lost_subscribe_connection) {
  // Publishes keep flowing while the subscribe connection is killed: those in flight were sent while the node
  // was subscribed. Whatever answered `ok` must have reached this node's own subscribers.
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("flow");
  ASSERT_TRUE(wait_numsub(redis.port(), "flow", 1));

  std::mutex m;
  std::vector<std::string> ok_ids;  // in answer order
  std::atomic<int> sent{0}, answered{0}, refused{0};
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    for (int i = 0; !stop; ++i) {
      auto pub = make_pub("flow", std::to_string(i));
      ++sent;
      a.broker.publish(pub, [&, id = pub.id](publish_status s) {
        if (s == publish_status::ok) {
          std::lock_guard lock(m);
          ok_ids.push_back(id);
        } else {
          ++refused;
        }
        ++answered;
      });
      wait_until([&] { return sent - answered < 50; }, 5s);
    }
  });
  auto ok_count = [&] {
    std::lock_guard lock(m);
    return ok_ids.size();
  };
  ASSERT_TRUE(wait_until([&] { return ok_count() >= 200; }, 5s));
  ASSERT_TRUE(redis_admin(redis.port()).kill_subscribers());
  ASSERT_TRUE(wait_until([&] { return a.broker.stats().at(0).reconnects == 1; }, 5s));
  const auto before = ok_count();
  ASSERT_TRUE(wait_until([&] { return ok_count() >= before + 200; }, 5s)) << "publishing resumes";
  stop = true;
  publisher.join();
  ASSERT_TRUE(wait_until([&] { return answered == sent; }, 5s));

  std::set<std::string> delivered;
  for (const auto& p : a.sink.got()) delivered.insert(p->id);
  std::size_t lost = 0;
  for (const auto& id : ok_ids) lost += delivered.count(id) == 0 ? 1 : 0;
  EXPECT_EQ(lost, 0u) << "of " << ok_ids.size() << " answered ok (" << refused << " refused)";
  EXPECT_EQ(a.broker.stats().at(0).published, ok_ids.size());
}

TEST(redis_broker, password_from_the_url_is_sent_and_a_wrong_one_never_gets_healthy) {
  redis_server redis(0, "s3cret");
  node good(redis.url());
  ASSERT_TRUE(good.wait_healthy());
  good.broker.subscribe("auth");
  ASSERT_TRUE(
      wait_until([&] { return redis_probe(redis.port(), "s3cret").numsub("broadcaster:auth") == 1; }, 5s));
  EXPECT_EQ(publish_and_wait(good.broker, make_pub("auth", "ok")), publish_status::ok);
  ASSERT_TRUE(good.sink.wait_for(1));

  node bad("redis://:wrong@127.0.0.1:" + std::to_string(redis.port()));
  ASSERT_TRUE(wait_until([&] { return bad.broker.stats().at(0).connect_failures >= 4; }, 5s))
      << "every attempt is refused at AUTH and retried";
  EXPECT_FALSE(bad.broker.healthy());
  EXPECT_EQ(good.broker.stats().at(0).connect_failures, 0u);
  EXPECT_EQ(publish_and_wait(bad.broker, make_pub("auth", "no")), publish_status::unavailable);
}

TEST(redis_broker, foreign_bytes_on_a_channel_are_dropped_and_counted) {
  redis_server redis;
  node a(redis.url());
  ASSERT_TRUE(a.wait_healthy());
  a.broker.subscribe("junk");
  ASSERT_TRUE(wait_numsub(redis.port(), "junk", 1));
  redis_probe probe(redis.port());
  EXPECT_EQ(probe.publish("broadcaster:junk", "not an envelope"), 1);
  EXPECT_EQ(probe.publish("broadcaster:junk", std::string("\xBC\x01\xFF", 3)), 1);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("junk", "real")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));
  EXPECT_EQ(a.sink.got().at(0)->payload, "real");
  EXPECT_EQ(a.broker.stats().at(0).invalid, 2u);
}

TEST(redis_broker, stop_answers_everything_and_refuses_afterwards) {
  redis_server redis;
  recording_sink sink;
  auto b = std::make_unique<redis_broker>(sink, parse_redis_urls(redis.url()), fast_options());
  b->start();
  ASSERT_TRUE(wait_until([&] { return b->healthy(); }, 5s));
  std::atomic<int> answered{0};
  for (int i = 0; i < 5000; ++i) b->publish(make_pub("s", "x"), [&](publish_status) { ++answered; });
  b->stop();
  EXPECT_EQ(answered, 5000) << "every accepted publish is answered by the time stop() returns";
  EXPECT_FALSE(b->healthy());
  EXPECT_EQ(publish_and_wait(*b, make_pub("s", "late")), publish_status::unavailable);
  b->subscribe("after-stop");  // ignored, no crash
  b.reset();
}

TEST(redis_broker, never_started_broker_refuses_and_destroys_cleanly) {
  recording_sink sink;
  redis_broker b(sink, parse_redis_urls("redis://127.0.0.1:1"));
  b.subscribe("x");
  EXPECT_FALSE(b.healthy());
  EXPECT_EQ(publish_and_wait(b, make_pub("x", "1")), publish_status::unavailable);
}

TEST(redis_broker, factory_rejects_a_bad_url) {
  recording_sink sink;
  EXPECT_THROW(make_redis_broker(sink, "http://x"), std::invalid_argument);
  EXPECT_THROW(make_redis_broker(sink, "redis://h:1,,redis://h:2"), std::invalid_argument);
  EXPECT_NE(make_redis_broker(sink, "redis://127.0.0.1:6379,127.0.0.1:6380"), nullptr);
}

}  // namespace
}  // namespace bc::broker
