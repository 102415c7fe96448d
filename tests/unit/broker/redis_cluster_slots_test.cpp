#include "broker/redis_cluster_slots.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string>

#include "broker/redis_options.hpp"
#include "broker/redis_scripts.hpp"

namespace bc::broker {
namespace {

using namespace redis_cluster_slots;

// A RESP2 reply as hiredis parses it (what the cluster's connection hands over).
struct parsed {
  redisReply* reply = nullptr;
  explicit parsed(const std::string& resp) {
    redisReader* rd = redisReaderCreate();
    redisReaderFeed(rd, resp.data(), resp.size());
    void* r = nullptr;
    EXPECT_EQ(redisReaderGetReply(rd, &r), REDIS_OK);
    reply = static_cast<redisReply*>(r);
    redisReaderFree(rd);
  }
  ~parsed() {
    if (reply != nullptr) freeReplyObject(reply);
  }
};

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string num(long long n) {
  return ":" + std::to_string(n) + "\r\n";
}
std::string arr(std::size_t n) {
  return "*" + std::to_string(n) + "\r\n";
}

TEST(redis_cluster_slots, crc16_vectors_from_the_cluster_spec) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(crc16(""), 0);
  // Slots redis-cli CLUSTER KEYSLOT gives (Redis 7.0).
  EXPECT_EQ(slot_of("foo"), 12182);
  EXPECT_EQ(slot_of("bar"), 5061);
  EXPECT_EQ(slot_of("hello"), 866);
}

TEST(redis_cluster_slots, hash_tags_follow_the_redis_rules) {
  EXPECT_EQ(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
  EXPECT_EQ(slot_of("{user1000}.following"), slot_of("user1000"));
  // The first '{' and the first '}' after it; an empty tag hashes the whole key.
  EXPECT_EQ(slot_of("foo{{bar}}zap"), slot_of("{bar"));
  EXPECT_EQ(slot_of("foo{bar}{zap}"), slot_of("bar"));
  EXPECT_EQ(slot_of("foo{}{bar}"), crc16("foo{}{bar}") % slot_count);
  EXPECT_EQ(slot_of("foo{"), crc16("foo{") % slot_count);
  EXPECT_EQ(slot_of("}foo{x}"), slot_of("x"));
}

TEST(redis_cluster_slots, every_name_of_a_channel_is_in_one_slot) {
  redis_options cluster;
  cluster.cluster = true;
  redis_options plain;
  const std::string p = cluster.channel_prefix;
  for (const std::string c : {"news", "chat:room-42", "a{b", "a}b", "}x", "{x}", "a{b}c", "{", "}", "}{",
                              "%7B", "100%", "{}", "x{}y"}) {
    const auto slot = channel_slot(c);
    EXPECT_EQ(slot_of(redis_scripts::meta_key(p, c)), slot) << c;
    EXPECT_EQ(slot_of(redis_scripts::stream_key(p, c)), slot) << c;
    EXPECT_EQ(slot_of(redis_scripts::presence_expiry_key(p, c)), slot) << c;
    EXPECT_EQ(slot_of(redis_scripts::presence_members_key(p, c)), slot) << c;
    EXPECT_EQ(slot_of(redis_scripts::presence_users_key(p, c)), slot) << c;
    const auto name = pubsub_channel(cluster, c);
    EXPECT_EQ(slot_of(name), slot) << c;
    EXPECT_EQ(channel_of_pubsub(cluster, name), c);
    EXPECT_EQ(channel_of_tag(channel_tag(c)), c);
    EXPECT_EQ(channel_of_pubsub(plain, pubsub_channel(plain, c)), c);
  }
  // Valid channel names keep the names every version uses (non-cluster deployments, rolling upgrades).
  EXPECT_EQ(redis_scripts::meta_key(p, "chat:room-42"), "broadcaster:{chat:room-42}:meta");
  EXPECT_EQ(pubsub_channel(plain, "chat:room-42"), "broadcaster:chat:room-42");
  EXPECT_EQ(pubsub_channel(cluster, "chat:room-42"), "broadcaster:{chat:room-42}");
  EXPECT_EQ(channel_slot("chat:room-42"), slot_of("chat:room-42"));
  EXPECT_EQ(pubsub_channel(cluster, "!control"), "broadcaster:{!control}");
  EXPECT_EQ(channel_of_pubsub(cluster, "broadcaster:news"), "");
  EXPECT_EQ(channel_of_pubsub(cluster, "other:{news}"), "");
}

TEST(redis_cluster_slots, sharded_scripts_spublish) {
  const std::string publish = redis_scripts::sharded(redis_scripts::publish);
  EXPECT_EQ(publish.find("'PUBLISH'"), std::string::npos);
  EXPECT_NE(publish.find("redis.call('SPUBLISH', ARGV[1], env)"), std::string::npos);
  const std::string add = redis_scripts::sharded(redis_scripts::presence_add);
  EXPECT_EQ(add.find("'PUBLISH'"), std::string::npos);
  EXPECT_NE(add.find("'SPUBLISH'"), std::string::npos);
  EXPECT_EQ(redis_scripts::sharded(redis_scripts::publish), redis_scripts::sharded(redis_scripts::publish));
}

// CLUSTER SLOTS as Redis 7.0 answers it: start, end, primary [ip, port, id, {}], replicas...
TEST(redis_cluster_slots, parses_cluster_slots) {
  auto node = [](const std::string& ip, int port, const std::string& id) {
    return arr(4) + bulk(ip) + num(port) + bulk(id) + arr(0);
  };
  const std::string resp = arr(4) +  //
                           arr(4) + num(0) + num(5460) + node("127.0.0.1", 7000, "a") +
                           node("127.0.0.1", 7003, "d") + arr(3) + num(5461) + num(10922) +
                           node("127.0.0.1", 7001, "b") +                            //
                           arr(3) + num(10923) + num(16000) + node("", 7002, "c") +  //
                           arr(3) + num(16001) + num(16383) + node("127.0.0.1", 7000, "a");
  parsed p(resp);
  std::vector<node_slots> nodes;
  ASSERT_TRUE(parse_cluster_slots(p.reply, nodes));
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[0].address(), "127.0.0.1:7000");
  EXPECT_EQ(nodes[0].id, "a");
  ASSERT_EQ(nodes[0].ranges.size(), 2u);
  EXPECT_EQ(nodes[0].ranges[0], std::make_pair(std::uint16_t{0}, std::uint16_t{5460}));
  EXPECT_EQ(nodes[0].ranges[1], std::make_pair(std::uint16_t{16001}, std::uint16_t{16383}));
  EXPECT_EQ(nodes[1].port, 7001);
  EXPECT_EQ(nodes[2].host, "");  // "the node asked"

  std::vector<node_slots> none;
  parsed bad(arr(1) + arr(3) + num(5) + num(2) + node("h", 1, "x"));  // end before start
  EXPECT_FALSE(parse_cluster_slots(bad.reply, none));
  parsed big(arr(1) + arr(3) + num(0) + num(16384) + node("h", 1, "x"));
  EXPECT_FALSE(parse_cluster_slots(big.reply, none));
  parsed err("-ERR This instance has cluster support disabled\r\n");
  EXPECT_FALSE(parse_cluster_slots(err.reply, none));
  EXPECT_FALSE(parse_cluster_slots(nullptr, none));
}

// CLUSTER SHARDS (Redis 7): per shard a map of "slots" (flat pairs) and "nodes" (maps).
TEST(redis_cluster_slots, parses_cluster_shards) {
  auto node = [](const std::string& id, int port, const std::string& ip, const std::string& endpoint,
                 const std::string& role, const std::string& health) {
    return arr(14) + bulk("id") + bulk(id) + bulk("port") + num(port) + bulk("ip") + bulk(ip) +
           bulk("endpoint") + bulk(endpoint) + bulk("role") + bulk(role) + bulk("replication-offset") +
           num(42) + bulk("health") + bulk(health);
  };
  auto shard = [](const std::string& slots, std::size_t n_slots, const std::string& nodes,
                  std::size_t n_nodes) {
    return arr(4) + bulk("slots") + arr(n_slots) + slots + bulk("nodes") + arr(n_nodes) + nodes;
  };
  const std::string resp =
      arr(4) +
      shard(num(0) + num(100) + num(200) + num(5460), 4,
            node("r1", 7003, "127.0.0.1", "127.0.0.1", "replica", "online") +
                node("p1", 7000, "127.0.0.1", "127.0.0.1", "master", "online"),
            2) +
      shard(num(5461) + num(10922), 2, node("p2", 7001, "10.0.0.2", "?", "master", "online"), 1) +
      shard(num(10923) + num(16383), 2, node("p3", 7002, "10.0.0.3", "db3.internal", "master", "online"), 1) +
      shard("", 0, node("old", 7009, "127.0.0.1", "127.0.0.1", "master", "failed"),
            1);  // failed over, no slots
  parsed p(resp);
  std::vector<node_slots> nodes;
  ASSERT_TRUE(parse_cluster_shards(p.reply, nodes));
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[0].id, "p1");
  EXPECT_EQ(nodes[0].address(), "127.0.0.1:7000");
  ASSERT_EQ(nodes[0].ranges.size(), 2u);
  EXPECT_EQ(nodes[0].ranges[1], std::make_pair(std::uint16_t{200}, std::uint16_t{5460}));
  EXPECT_EQ(nodes[1].address(), "10.0.0.2:7001");  // endpoint "?": the ip
  EXPECT_EQ(nodes[2].address(), "db3.internal:7002");

  std::vector<node_slots> none;
  parsed odd(arr(1) + shard(num(0), 1, node("p", 1, "h", "h", "master", "online"), 1));
  EXPECT_FALSE(parse_cluster_shards(odd.reply, none));
  parsed not_map(arr(1) + num(3));
  EXPECT_FALSE(parse_cluster_shards(not_map.reply, none));
}

// A TLS-only node (`--port 0 --tls-port N`, tls-cluster yes) names its TLS port `tls-port` and has no `port`:
// rediss+cluster:// follows tls-port, redis+cluster:// cannot use such a node.
TEST(redis_cluster_slots, cluster_shards_over_tls_take_the_tls_port) {
  const std::string tls_only = arr(12) + bulk("id") + bulk("p1") + bulk("tls-port") + num(7100) + bulk("ip") +
                               bulk("127.0.0.1") + bulk("endpoint") + bulk("127.0.0.1") + bulk("role") +
                               bulk("master") + bulk("health") + bulk("online");
  const std::string both = arr(12) + bulk("id") + bulk("p2") + bulk("port") + num(7001) + bulk("tls-port") +
                           num(7101) + bulk("ip") + bulk("127.0.0.1") + bulk("role") + bulk("master") +
                           bulk("health") + bulk("online");
  const std::string resp = arr(2) + arr(4) + bulk("slots") + arr(2) + num(0) + num(8000) + bulk("nodes") +
                           arr(1) + tls_only + arr(4) + bulk("slots") + arr(2) + num(8001) + num(16383) +
                           bulk("nodes") + arr(1) + both;
  parsed p(resp);
  std::vector<node_slots> nodes;
  ASSERT_TRUE(parse_cluster_shards(p.reply, nodes, true));
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].address(), "127.0.0.1:7100");
  EXPECT_EQ(nodes[1].address(), "127.0.0.1:7101");
  std::vector<node_slots> plain;
  EXPECT_FALSE(parse_cluster_shards(p.reply, plain, false));  // no plain port on the first
}

}  // namespace
}  // namespace bc::broker
