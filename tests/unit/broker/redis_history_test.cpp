// The Redis broker's channel positions, history and "no silent loss" (issue 17), against real redis-server
// processes: offsets given by the publish script, history() from the channel's stream, jumps repaired or
// reported as gaps, a subscribe connection killed mid-stream, Redis restarted.
#include "broker/redis_broker.hpp"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <set>
#include <thread>

#include "redis_test_support.hpp"

namespace bc::broker {
namespace {

using namespace redis_test;
using namespace std::chrono_literals;

struct node {
  recording_sink sink;
  redis_broker broker;
  node(const std::string& url, redis_options opts) : broker(sink, parse_redis_urls(url), std::move(opts)) {
    broker.start();
  }
  bool wait_healthy(std::chrono::milliseconds t = 5s) {
    return wait_until([&] { return broker.healthy(); }, t);
  }
  // Declares interest the way the engine does and waits until Redis confirmed it.
  bool interest(const std::string& channel) {
    broker.subscribe(channel);
    std::promise<void> ready;
    if (broker.await_subscribed(channel, [&] { ready.set_value(); })) return true;
    return ready.get_future().wait_for(5s) == std::future_status::ready;
  }
};

std::optional<history_result> history_of(broker& b, std::string channel, std::size_t limit,
                                         std::optional<stream_position> since = std::nullopt) {
  auto p = std::make_shared<std::promise<history_result>>();
  auto f = p->get_future();
  b.history({std::move(channel), std::move(since), limit},
            [p](history_result r) { p->set_value(std::move(r)); });
  if (f.wait_for(5s) != std::future_status::ready) return std::nullopt;
  return f.get();
}

std::vector<std::uint64_t> offsets(const std::vector<core::message>& ms) {
  std::vector<std::uint64_t> out;
  for (const auto& m : ms) out.push_back(m.offset);
  return out;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> out;
  for (auto o = from; o <= to; ++o) out.push_back(o);
  return out;
}

// Makes Redis refuse new connections so that an outage lasts (see redis_broker_test.cpp).
struct redis_admin {
  redis_probe conn;
  std::string maxclients;
  explicit redis_admin(int port) : conn(port), maxclients(conn.command({"CONFIG", "GET", "maxclients"})) {}
  bool refuse_new_connections() { return conn.command({"CONFIG", "SET", "maxclients", "1"}) == "OK"; }
  bool accept_new_connections() { return conn.command({"CONFIG", "SET", "maxclients", maxclients}) == "OK"; }
  bool kill_subscribers() { return !conn.command({"CLIENT", "KILL", "TYPE", "pubsub"}).empty(); }
};

// ---- offsets --------------------------------------------------------------------------------------------

TEST(redis_positions, two_nodes_publishing_to_one_channel_get_contiguous_offsets_seen_alike_everywhere) {
  redis_server redis;
  node a(redis.url(), fast_options()), b(redis.url(), fast_options());
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  ASSERT_TRUE(a.interest("both") && b.interest("both"));
  constexpr int per = 500;
  std::atomic<int> ok{0};
  std::thread ta([&] {
    for (int i = 0; i < per; ++i)
      a.broker.publish(make_pub("both", "a"), [&](publish_status s) { ok += s == publish_status::ok; });
  });
  std::thread tb([&] {
    for (int i = 0; i < per; ++i)
      b.broker.publish(make_pub("both", "b"), [&](publish_status s) { ok += s == publish_status::ok; });
  });
  ta.join();
  tb.join();
  ASSERT_TRUE(wait_until([&] { return ok == 2 * per; }, 10s)) << ok;
  ASSERT_TRUE(a.sink.wait_for(2 * per) && b.sink.wait_for(2 * per));
  const auto ga = a.sink.got(), gb = b.sink.got();
  ASSERT_EQ(ga.size(), 2u * per);
  ASSERT_EQ(gb.size(), 2u * per);
  const std::string epoch = ga.front()->epoch;
  EXPECT_EQ(epoch.size(), 16u);
  for (std::size_t i = 0; i < ga.size(); ++i) {
    ASSERT_EQ(ga[i]->offset, i + 1) << "contiguous, in delivery order";
    ASSERT_EQ(ga[i]->epoch, epoch);
    ASSERT_EQ(gb[i]->id, ga[i]->id) << "the same message at the same offset on both nodes";
    ASSERT_EQ(gb[i]->offset, ga[i]->offset);
    ASSERT_EQ(gb[i]->epoch, epoch);
  }
  EXPECT_EQ(redis_probe(redis.port()).command({"HGET", "broadcaster:{both}:meta", "o"}),
            std::to_string(2 * per));
  EXPECT_EQ(redis_probe(redis.port()).command({"EXISTS", "broadcaster:{both}:stream"}), "0") << "history off";
  EXPECT_EQ(a.broker.stats().at(0).gaps + b.broker.stats().at(0).gaps, 0u);
}

TEST(redis_positions, a_channel_never_published_to_has_a_position_that_its_first_publish_keeps) {
  redis_server redis;
  node a(redis.url(), fast_options());
  ASSERT_TRUE(a.wait_healthy());
  const auto before = history_of(a.broker, "new", 0);
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(before->status, publish_status::ok);
  EXPECT_EQ(before->top.offset, 0u);
  ASSERT_FALSE(before->top.epoch.empty());
  EXPECT_EQ(history_of(a.broker, "new", 0)->top, before->top) << "read twice, same position";
  ASSERT_TRUE(a.interest("new"));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("new", "1")), publish_status::ok);
  ASSERT_TRUE(a.sink.wait_for(1));
  EXPECT_EQ(a.sink.got().at(0)->epoch, before->top.epoch);
  EXPECT_EQ(a.sink.got().at(0)->offset, 1u);
  EXPECT_EQ(history_of(a.broker, "new", 0)->top, (stream_position{before->top.epoch, 1}));
}

TEST(redis_positions, a_flushed_script_cache_costs_at_most_the_publishes_in_flight_then_publishing_resumes) {
  redis_server redis;
  node a(redis.url(), fast_options());
  ASSERT_TRUE(a.wait_healthy());
  ASSERT_TRUE(a.interest("ns"));
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("ns", "1")), publish_status::ok);
  EXPECT_EQ(redis_probe(redis.port()).command({"SCRIPT", "FLUSH"}), "OK");
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("ns", "2")), publish_status::unavailable)
      << "NOSCRIPT: not run";
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("ns", "3")), publish_status::ok) << "reloaded";
  ASSERT_TRUE(a.sink.wait_for(2));
  EXPECT_EQ(a.sink.got().at(1)->payload, "3");
  EXPECT_EQ(a.sink.got().at(1)->offset, 2u);
  EXPECT_TRUE(a.broker.healthy());
}

TEST(redis_positions, version_1_envelopes_from_older_nodes_are_still_delivered) {
  redis_server redis;
  node a(redis.url(), fast_options());
  ASSERT_TRUE(a.wait_healthy());
  ASSERT_TRUE(a.interest("old"));
  EXPECT_EQ(redis_probe(redis.port()).publish("broadcaster:old", encode_envelope(make_pub("old", "v1"))), 1);
  ASSERT_TRUE(a.sink.wait_for(1));
  EXPECT_EQ(a.sink.got().at(0)->payload, "v1");
  EXPECT_EQ(a.sink.got().at(0)->offset, 0u);
  EXPECT_EQ(a.broker.stats().at(0).invalid, 0u);
}

// ---- history --------------------------------------------------------------------------------------------

TEST(redis_history, newest_since_limit_trimmed_and_another_epoch) {
  redis_server redis;
  node a(redis.url(), history_options(10));
  ASSERT_TRUE(a.wait_healthy());
  for (int i = 1; i <= 15; ++i)
    ASSERT_EQ(publish_and_wait(a.broker, make_pub("h", std::to_string(i))), publish_status::ok);

  auto r = history_of(a.broker, "h", 5);
  ASSERT_TRUE(r && r->status == publish_status::ok);
  EXPECT_EQ(r->top.offset, 15u);
  EXPECT_EQ(offsets(r->messages), range(11, 15)) << "the newest 5, oldest first";
  EXPECT_EQ(r->messages.back().payload, "15");
  EXPECT_EQ(r->messages.back().epoch, r->top.epoch);
  EXPECT_FALSE(r->complete);
  const std::string epoch = r->top.epoch;

  EXPECT_EQ(offsets(history_of(a.broker, "h", 100)->messages), range(6, 15))
      << "history_size 10, exactly (MAXLEN ~ keeps more in the stream)";

  r = history_of(a.broker, "h", 10, stream_position{epoch, 12});
  EXPECT_EQ(offsets(r->messages), range(13, 15));
  EXPECT_TRUE(r->complete);
  r = history_of(a.broker, "h", 2, stream_position{epoch, 12});
  EXPECT_EQ(offsets(r->messages), range(13, 14));
  EXPECT_FALSE(r->complete) << "limit reached";
  r = history_of(a.broker, "h", 10, stream_position{epoch, 15});
  EXPECT_TRUE(r->messages.empty());
  EXPECT_TRUE(r->complete) << "nothing missed";
  r = history_of(a.broker, "h", 100, stream_position{epoch, 2});
  EXPECT_EQ(offsets(r->messages), range(6, 15)) << "what is left";
  EXPECT_FALSE(r->complete) << "3..5 trimmed";
  r = history_of(a.broker, "h", 100, stream_position{"another", 2});
  EXPECT_TRUE(r->messages.empty());
  EXPECT_FALSE(r->complete);
  EXPECT_EQ(r->top, (stream_position{epoch, 15}));
}

TEST(redis_history, expired_history_has_no_messages_but_the_position_stays) {
  redis_server redis;
  node a(redis.url(), history_options(10, 1s));
  ASSERT_TRUE(a.wait_healthy());
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(publish_and_wait(a.broker, make_pub("x", std::to_string(i))), publish_status::ok);
  const auto r = history_of(a.broker, "x", 10);
  ASSERT_EQ(offsets(r->messages), range(1, 3));
  ASSERT_TRUE(wait_until(
      [&] {
        return redis_probe(redis.port()).command({"EXISTS", "broadcaster:{x}:stream"}) == "0";
      },
      5s));
  const auto later = history_of(a.broker, "x", 10, stream_position{r->top.epoch, 1});
  EXPECT_TRUE(later->messages.empty());
  EXPECT_FALSE(later->complete);
  EXPECT_EQ(later->top, r->top);
  ASSERT_EQ(publish_and_wait(a.broker, make_pub("x", "4")), publish_status::ok);
  EXPECT_EQ(offsets(history_of(a.broker, "x", 10)->messages), range(4, 4));
}

TEST(redis_history, history_off_gives_the_position_only) {
  redis_server redis;
  node a(redis.url(), fast_options());
  ASSERT_TRUE(a.wait_healthy());
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(publish_and_wait(a.broker, make_pub("off", "m")), publish_status::ok);
  const auto r =
      history_of(a.broker, "off", 10, stream_position{history_of(a.broker, "off", 0)->top.epoch, 1});
  EXPECT_EQ(r->top.offset, 3u);
  EXPECT_TRUE(r->messages.empty());
  EXPECT_FALSE(r->complete);
}

TEST(redis_history, answered_while_only_the_subscribe_connection_is_down) {
  redis_server redis;
  node a(redis.url(), history_options(10));
  ASSERT_TRUE(a.wait_healthy());
  ASSERT_EQ(publish_and_wait(a.broker, make_pub("s", "1")), publish_status::ok);
  redis_admin admin(redis.port());
  ASSERT_TRUE(admin.refuse_new_connections());
  ASSERT_TRUE(admin.kill_subscribers());
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 2s));
  const auto r = history_of(a.broker, "s", 10);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, publish_status::ok);
  EXPECT_EQ(offsets(r->messages), range(1, 1));
  ASSERT_TRUE(admin.accept_new_connections());
}

TEST(redis_history, unavailable_while_redis_is_down) {
  redis_server redis;
  node a(redis.url(), history_options(10));
  ASSERT_TRUE(a.wait_healthy());
  redis.kill();
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy(); }, 2s));
  EXPECT_EQ(history_of(a.broker, "d", 10)->status, publish_status::unavailable);
}

// ---- no silent loss --------------------------------------------------------------------------------------

TEST(redis_no_silent_loss, a_jump_is_repaired_from_history_in_order) {
  redis_server redis;
  node a(redis.url(), history_options(100));
  ASSERT_TRUE(a.wait_healthy());
  ASSERT_TRUE(a.interest("j"));
  script_publisher lost(redis.port());
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("j", "1")), publish_status::ok);
  for (int i = 2; i <= 4; ++i) ASSERT_EQ(lost.publish("j", std::to_string(i), 100, true), i);
  // `ok` means the sink holds it: after the repaired 2..4.
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("j", "5")), publish_status::ok);
  EXPECT_EQ(a.sink.order(), (std::vector<std::string>{"j 1", "j 2", "j 3", "j 4", "j 5"}));
  std::vector<std::string> payloads;
  for (const auto& m : a.sink.got()) payloads.push_back(m->payload);
  EXPECT_EQ(payloads, (std::vector<std::string>{"1", "2", "3", "4", "5"}));
  const auto st = a.broker.stats().at(0);
  EXPECT_EQ(st.repaired, 3u);
  EXPECT_EQ(st.gaps, 0u);
}

TEST(redis_no_silent_loss, a_jump_without_history_is_reported_as_a_gap_in_its_place) {
  redis_server redis;
  node a(redis.url(), fast_options());
  ASSERT_TRUE(a.wait_healthy());
  ASSERT_TRUE(a.interest("g"));
  script_publisher lost(redis.port());
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("g", "1")), publish_status::ok);
  for (int i = 2; i <= 4; ++i) ASSERT_EQ(lost.publish("g", "x", 0, true), i);
  EXPECT_EQ(publish_and_wait(a.broker, make_pub("g", "5")), publish_status::ok);
  EXPECT_EQ(a.sink.order(), (std::vector<std::string>{"g 1", "g gap 4/3", "g 5"}));
  const auto st = a.broker.stats().at(0);
  EXPECT_EQ(st.gaps, 1u);
  EXPECT_EQ(st.skipped, 3u);
  EXPECT_EQ(st.repaired, 0u);
}

// A stream published straight through the script (no node involved) while node b's subscribe connection is
// killed and kept down for a while; b must account for every offset, in order.
void stream_across_a_subscribe_connection_kill(std::size_t history_size, std::uint64_t* gap_messages,
                                               std::uint64_t* repaired) {
  redis_server redis;
  node b(redis.url(), history_options(history_size));
  ASSERT_TRUE(b.wait_healthy());
  ASSERT_TRUE(b.interest("s"));
  redis_admin admin(redis.port());
  script_publisher pub(redis.port());
  ASSERT_TRUE(pub.ok());
  constexpr long long total = 600;
  std::atomic<long long> published{0};
  std::atomic<bool> go_on{true};
  std::thread publisher([&] {
    for (long long i = 1; i <= total && go_on; ++i) {
      if (pub.publish("s", std::to_string(i), history_size) != i) return;
      published = i;
      std::this_thread::sleep_for(200us);  // a stream, not one burst (pacing only, not synchronisation)
    }
  });
  ASSERT_TRUE(b.sink.wait_accounted("s", 100, 10s));
  ASSERT_TRUE(admin.refuse_new_connections());
  ASSERT_TRUE(admin.kill_subscribers());
  const long long at_kill = published;
  ASSERT_TRUE(wait_until([&] { return published >= at_kill + 100; }, 10s)) << "published while b is away";
  ASSERT_TRUE(admin.accept_new_connections());
  ASSERT_TRUE(wait_until([&] { return b.broker.stats().at(0).reconnects >= 1; }, 5s));
  publisher.join();
  ASSERT_EQ(published, total);
  ASSERT_TRUE(b.sink.wait_accounted("s", total, 10s)) << b.sink.order().size();
  EXPECT_EQ(check_accounted(b.sink.order(), "s", total, gap_messages), "");
  *repaired = b.broker.stats().at(0).repaired;
  EXPECT_EQ(b.broker.stats().at(0).skipped, *gap_messages);
}

TEST(redis_no_silent_loss, a_killed_subscribe_connection_with_history_on_loses_nothing) {
  std::uint64_t gap_messages = 0, repaired = 0;
  stream_across_a_subscribe_connection_kill(1000, &gap_messages, &repaired);
  EXPECT_EQ(gap_messages, 0u) << "everything came from the stream";
  EXPECT_GT(repaired, 0u) << "the outage did lose messages on the way";
}

TEST(redis_no_silent_loss, a_killed_subscribe_connection_with_history_off_shows_every_loss_as_a_gap) {
  std::uint64_t gap_messages = 0, repaired = 0;
  stream_across_a_subscribe_connection_kill(0, &gap_messages, &repaired);
  EXPECT_GT(gap_messages, 0u);
  EXPECT_EQ(repaired, 0u);
}

TEST(redis_no_silent_loss, a_restarted_redis_starts_a_new_epoch_that_nodes_follow) {
  redis_server redis;
  node a(redis.url(), history_options(100)), b(redis.url(), history_options(100));
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  ASSERT_TRUE(b.interest("r"));
  for (int i = 1; i <= 5; ++i)
    ASSERT_EQ(publish_and_wait(a.broker, make_pub("r", std::to_string(i))), publish_status::ok);
  ASSERT_TRUE(b.sink.wait_for(5));
  const std::string first_epoch = b.sink.got().at(0)->epoch;

  redis.kill();  // no persistence: positions and streams are gone
  ASSERT_TRUE(wait_until([&] { return !a.broker.healthy() && !b.broker.healthy(); }, 2s));
  redis.start();
  ASSERT_TRUE(a.wait_healthy() && b.wait_healthy());
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(publish_and_wait(a.broker, make_pub("r", "new" + std::to_string(i))), publish_status::ok);
  ASSERT_TRUE(b.sink.wait_for(8));
  const auto got = b.sink.got();
  ASSERT_EQ(got.size(), 8u);
  EXPECT_NE(got[5]->epoch, first_epoch);
  for (int i = 5; i < 8; ++i) {
    EXPECT_EQ(got[i]->offset, static_cast<std::uint64_t>(i - 4));
    EXPECT_EQ(got[i]->epoch, got[5]->epoch);
    EXPECT_EQ(got[i]->payload, "new" + std::to_string(i - 4));
  }
  EXPECT_TRUE(b.sink.gaps().empty()) << "nothing of the new epoch was missed";
  const auto h = history_of(b.broker, "r", 10);
  EXPECT_EQ(h->top, (stream_position{got[5]->epoch, 3}));
  EXPECT_EQ(offsets(h->messages), range(1, 3));
}

TEST(redis_no_silent_loss, messages_published_to_a_new_redis_before_the_node_is_back_are_recovered) {
  // Redis restarted; another publisher writes to the new epoch while b's subscribe connection is still
  // away. b's check after reconnecting finds the new epoch and fetches it from offset 1.
  redis_server redis;
  auto slow = history_options(100);
  slow.backoff_min = slow.backoff_max = 1000ms;  // b's first retry comes 500 ms or more after the loss
  node b(redis.url(), slow);
  ASSERT_TRUE(b.wait_healthy());
  ASSERT_TRUE(b.interest("n"));
  {
    script_publisher pub(redis.port(), "oldepoch");
    for (int i = 1; i <= 3; ++i) ASSERT_EQ(pub.publish("n", "old", 100), i);
  }
  ASSERT_TRUE(b.sink.wait_for(3));
  redis.kill();
  ASSERT_TRUE(wait_until([&] { return !b.broker.healthy(); }, 2s));
  redis.start();
  redis_admin admin(redis.port());
  script_publisher pub(redis.port());
  ASSERT_TRUE(admin.refuse_new_connections());  // b stays away while the new epoch gets messages
  ASSERT_FALSE(b.broker.healthy()) << "b reconnected too early for this test";
  for (int i = 1; i <= 4; ++i) ASSERT_EQ(pub.publish("n", "new", 100), i);
  ASSERT_TRUE(admin.accept_new_connections());
  ASSERT_TRUE(b.wait_healthy(5s));
  ASSERT_TRUE(b.sink.wait_for(7)) << ::testing::PrintToString(b.sink.order());
  const auto got = b.sink.got();
  EXPECT_EQ(got.at(3)->epoch, "testepoch000000");
  EXPECT_EQ(b.sink.order(), (std::vector<std::string>{"n 1", "n 2", "n 3", "n 1", "n 2", "n 3", "n 4"}));
}

}  // namespace
}  // namespace bc::broker
