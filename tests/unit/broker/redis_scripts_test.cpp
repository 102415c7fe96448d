#include "broker/redis_scripts.hpp"

#include <gtest/gtest.h>

#include "broker/redis_envelope.hpp"
#include "redis_test_support.hpp"

namespace bc::broker {
namespace {

using redis_test::redis_probe;
using redis_test::redis_server;

// The publish script with a replication id (Sentinel): the offset it gives, or -1.
long long run_publish(redis_probe& probe, const std::string& sha, const std::string& epoch_candidate,
                      const std::string& replication_id) {
  core::message m;
  m.id = "id-" + epoch_candidate;
  m.channel = "c";
  m.event = "ev";
  m.payload = "1";
  const std::string r = probe.command({"EVALSHA", sha, "2", redis_scripts::meta_key("p:", "c"),
                                       redis_scripts::stream_key("p:", "c"), "p:c", epoch_candidate, "10",
                                       "300000", "2592000000", encode_envelope_body(m), replication_id});
  return !r.empty() && r.find_first_not_of("0123456789") == std::string::npos ? std::stoll(r) : -1;
}

TEST(redis_scripts, another_replication_id_starts_a_new_epoch) {
  redis_server redis;
  redis_probe probe(redis.port());
  const std::string sha = probe.command({"SCRIPT", "LOAD", redis_scripts::publish});
  ASSERT_EQ(sha.size(), 40u);
  const std::string meta = redis_scripts::meta_key("p:", "c");
  const std::string stream = redis_scripts::stream_key("p:", "c");

  EXPECT_EQ(run_publish(probe, sha, "e1", "replid-a"), 1);
  EXPECT_EQ(run_publish(probe, sha, "e2", "replid-a"), 2);  // same primary: same epoch, next offset
  EXPECT_EQ(probe.command({"HGET", meta, "e"}), "e1");
  EXPECT_EQ(probe.command({"XLEN", stream}), "2");

  // A promoted replica (another replication id) may lack the last offsets given: new epoch, offsets from 1,
  // the stream of the old epoch gone.
  EXPECT_EQ(run_publish(probe, sha, "e3", "replid-b"), 1);
  EXPECT_EQ(probe.command({"HGET", meta, "e"}), "e3");
  EXPECT_EQ(probe.command({"HGET", meta, "r"}), "replid-b");
  EXPECT_EQ(probe.command({"XLEN", stream}), "1");
  EXPECT_EQ(run_publish(probe, sha, "e4", "replid-b"), 2);

  // Without Sentinel (no id): the position goes on, whatever id was recorded.
  EXPECT_EQ(run_publish(probe, sha, "e5", ""), 3);
  EXPECT_EQ(probe.command({"HGET", meta, "e"}), "e3");
}

TEST(redis_scripts, a_position_made_without_an_id_keeps_its_epoch_when_one_comes) {
  redis_server redis;
  redis_probe probe(redis.port());
  const std::string sha = probe.command({"SCRIPT", "LOAD", redis_scripts::publish});
  EXPECT_EQ(run_publish(probe, sha, "e1", ""), 1);
  EXPECT_EQ(run_publish(probe, sha, "e2", "replid-a"),
            2);  // first seen under Sentinel: recorded, not a new epoch
  EXPECT_EQ(probe.command({"HGET", redis_scripts::meta_key("p:", "c"), "e"}), "e1");
}

}  // namespace
}  // namespace bc::broker
