#include "broker/redis_url.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace bc::broker {
namespace {

TEST(redis_url, full_form) {
  auto eps = parse_redis_urls("redis://:p%40ss@cache.internal:6380/3");
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].host, "cache.internal");
  EXPECT_EQ(eps[0].port, 6380);
  EXPECT_EQ(eps[0].username, "");
  EXPECT_EQ(eps[0].password, "p@ss");
  EXPECT_EQ(eps[0].db, 3);
  EXPECT_EQ(eps[0].address(), "cache.internal:6380");
}

TEST(redis_url, defaults_and_short_forms) {
  auto eps = parse_redis_urls("redis://localhost");
  EXPECT_EQ(eps.at(0).host, "localhost");
  EXPECT_EQ(eps.at(0).port, 6379);
  EXPECT_EQ(eps.at(0).password, "");
  EXPECT_EQ(eps.at(0).db, 0);
  eps = parse_redis_urls("127.0.0.1:7000");
  EXPECT_EQ(eps.at(0).host, "127.0.0.1");
  EXPECT_EQ(eps.at(0).port, 7000);
  eps = parse_redis_urls("redis://secret@h/");
  EXPECT_EQ(eps.at(0).password, "secret");
  eps = parse_redis_urls("redis://alice:pw@h:1");
  EXPECT_EQ(eps.at(0).username, "alice");
  EXPECT_EQ(eps.at(0).password, "pw");
  eps = parse_redis_urls("redis://[::1]:6390");
  EXPECT_EQ(eps.at(0).host, "::1");
  EXPECT_EQ(eps.at(0).port, 6390);
  EXPECT_EQ(eps.at(0).address(), "[::1]:6390");
}

TEST(redis_url, comma_separated_list_keeps_shard_order) {
  auto eps = parse_redis_urls("redis://a:1, redis://b:2 ,c:3");
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].host, "a");
  EXPECT_EQ(eps[1].host, "b");
  EXPECT_EQ(eps[2].port, 3);
}

TEST(redis_url, rediss_is_tls_and_mixes_with_plain_entries) {
  auto eps = parse_redis_urls(
      "rediss://app:pw@cache.internal:6380,redis://b:2,rediss+sentinel://s1,s2:26380/m,redis+sentinel://s3/"
      "n");
  ASSERT_EQ(eps.size(), 4u);
  EXPECT_TRUE(eps[0].tls);
  EXPECT_EQ(eps[0].host, "cache.internal");
  EXPECT_EQ(eps[0].port, 6380);
  EXPECT_EQ(eps[0].username, "app");
  EXPECT_EQ(eps[0].password, "pw");
  EXPECT_FALSE(eps[1].tls);
  EXPECT_TRUE(eps[2].tls);
  EXPECT_EQ(eps[2].master_name, "m");
  ASSERT_EQ(eps[2].sentinels.size(), 2u);
  EXPECT_EQ(eps[2].sentinels[1].port, 26380);
  EXPECT_FALSE(eps[3].tls);
  EXPECT_EQ(eps[3].master_name, "n");
  EXPECT_EQ(parse_redis_urls("rediss://h").at(0).port, 6379);
  EXPECT_EQ(redact_redis_url("rediss://app:pw@h:1"), "rediss://app:********@h:1");
}

TEST(redis_url, rejects_bad_entries_with_a_message_naming_them) {
  for (const char* bad :
       {"", "redis://", "redisss://h:1", "rediss+sentinel://h", "http://h", "redis://h:0", "redis://h:65536",
        "redis://h:abc", "redis://h:1/x", "redis://[::1", "redis://:%4@h", "a:1,,b:2", "a:1,"}) {
    EXPECT_THROW(parse_redis_urls(bad), std::invalid_argument) << bad;
  }
  try {
    parse_redis_urls("redis://ok:1,redis://bad:port");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("redis://bad:port"), std::string::npos) << e.what();
  }
}

TEST(redis_url, sentinel_form) {
  auto eps = parse_redis_urls("redis+sentinel://alice:p%40ss@s1:26380,s2,[::1]:26381/mymaster/2");
  ASSERT_EQ(eps.size(), 1u);
  const auto& ep = eps[0];
  EXPECT_EQ(ep.master_name, "mymaster");
  EXPECT_EQ(ep.db, 2);
  EXPECT_EQ(ep.username, "alice");
  EXPECT_EQ(ep.password, "p@ss");
  ASSERT_EQ(ep.sentinels.size(), 3u);
  EXPECT_EQ(ep.sentinels[0].host, "s1");
  EXPECT_EQ(ep.sentinels[0].port, 26380);
  EXPECT_EQ(ep.sentinels[1].host, "s2");
  EXPECT_EQ(ep.sentinels[1].port, 26379);
  EXPECT_EQ(ep.sentinels[2].host, "::1");
  EXPECT_EQ(ep.sentinels[2].port, 26381);
  EXPECT_EQ(ep.address(), "sentinel/mymaster");
  EXPECT_TRUE(ep.host.empty());  // the sentinels name it at run time
}

TEST(redis_url, sentinel_entries_mix_with_plain_shards) {
  auto eps = parse_redis_urls("redis://a:1, redis+sentinel://s1,s2:5/m1 ,redis+sentinel://s3/m2/,c:3");
  ASSERT_EQ(eps.size(), 4u);
  EXPECT_EQ(eps[0].host, "a");
  EXPECT_TRUE(eps[0].sentinels.empty());
  EXPECT_EQ(eps[1].master_name, "m1");
  EXPECT_EQ(eps[1].sentinels.size(), 2u);
  EXPECT_EQ(eps[1].sentinels[1].port, 5);
  EXPECT_EQ(eps[2].master_name, "m2");
  EXPECT_EQ(eps[2].sentinels.size(), 1u);
  EXPECT_EQ(eps[2].db, 0);
  EXPECT_EQ(eps[3].host, "c");
  EXPECT_EQ(eps[3].port, 3);
}

TEST(redis_url, rejects_bad_sentinel_entries) {
  for (const char* bad :
       {"redis+sentinel://", "redis+sentinel://s1:26379", "redis+sentinel://s1:26379/", "redis+sentinel:///m",
        "redis+sentinel://s1,,s2/m", "redis+sentinel://s1:0/m", "redis+sentinel://s1/m/x",
        "redis+sentinel://s1:x/m", "redis+sentinels://s1/m", "redis+sentinel://s1/m,"}) {
    EXPECT_THROW(parse_redis_urls(bad), std::invalid_argument) << bad;
  }
  try {
    parse_redis_urls("redis+sentinel://:s3cret@s1,s2");
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("master name"), std::string::npos) << what;
    EXPECT_EQ(what.find("s3cret"), std::string::npos) << what;
  }
  EXPECT_EQ(redact_redis_url("redis+sentinel://u:pw@s1,s2/m"), "redis+sentinel://u:********@s1,s2/m");
}

TEST(redis_url, cluster_form) {
  auto eps = parse_redis_urls("redis+cluster://alice:p%40ss@n1:7000, n2 ,[::1]:7002/1");
  ASSERT_EQ(eps.size(), 1u);
  const auto& ep = eps[0];
  EXPECT_EQ(ep.username, "alice");
  EXPECT_EQ(ep.password, "p@ss");
  EXPECT_EQ(ep.db, 1);
  ASSERT_EQ(ep.cluster_seeds.size(), 3u);
  EXPECT_EQ(ep.cluster_seeds[0].host, "n1");
  EXPECT_EQ(ep.cluster_seeds[0].port, 7000);
  EXPECT_EQ(ep.cluster_seeds[1].host, "n2");
  EXPECT_EQ(ep.cluster_seeds[1].port, 6379);
  EXPECT_EQ(ep.cluster_seeds[2].host, "::1");
  EXPECT_EQ(ep.cluster_seeds[2].port, 7002);
  EXPECT_EQ(ep.address(), "cluster");
  EXPECT_TRUE(ep.host.empty());  // the primaries come from the cluster's slot map
  EXPECT_TRUE(ep.sentinels.empty());

  eps = parse_redis_urls("  redis+cluster://:pw@127.0.0.1:7000  ");
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].password, "pw");
  EXPECT_EQ(eps[0].username, "");
  ASSERT_EQ(eps[0].cluster_seeds.size(), 1u);
  EXPECT_EQ(eps[0].cluster_seeds[0].port, 7000);
}

TEST(redis_url, cluster_over_tls) {
  auto eps = parse_redis_urls("rediss+cluster://app:pw@n1:7000,n2:7001");
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_TRUE(eps[0].tls);
  EXPECT_EQ(eps[0].username, "app");
  ASSERT_EQ(eps[0].cluster_seeds.size(), 2u);
  EXPECT_EQ(eps[0].cluster_seeds[1].port, 7001);
  EXPECT_FALSE(parse_redis_urls("redis+cluster://n1:7000").at(0).tls);
  EXPECT_THROW(parse_redis_urls("rediss+cluster://n1:7000,rediss+cluster://n2:7000"), std::invalid_argument);
  EXPECT_THROW(parse_redis_urls("rediss://a:1,rediss+cluster://n2:7000"), std::invalid_argument);
}

TEST(redis_url, rejects_bad_cluster_entries) {
  for (const char* bad :
       {"redis+cluster://", "redis+cluster://:s3cret@", "redis+cluster://:s3cret@n1,,n2",
        "redis+cluster://:s3cret@n1:0", "redis+cluster://:s3cret@n1:70000", "redis+cluster://:s3cret@n1/x",
        "redis://:s3cret@a:1,redis+cluster://:s3cret@n1", "redis+cluster://:s3cret@n1,redis://b:2"}) {
    try {
      parse_redis_urls(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(redact_redis_url("redis+cluster://u:pw@n1:7000,n2:7001"),
            "redis+cluster://u:********@n1:7000,n2:7001");
}

TEST(redis_url, errors_never_contain_the_password) {
  for (const char* bad :
       {"redis://:s3cret@h:0", "redis://user:s3cret@h/x", "s3cret@:1", "redis://s3cret@[::1",
        "http://:s3cret@h", "redis://:s3cret@h,,b", "redis://:s3/cret@h"}) {
    try {
      parse_redis_urls(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
    }
  }
}

TEST(redis_url, redaction_masks_the_password_only) {
  EXPECT_EQ(redact_redis_url("redis://user:pw@h:1/2"), "redis://user:********@h:1/2");
  EXPECT_EQ(redact_redis_url("redis://pw@h"), "redis://********@h");
  EXPECT_EQ(redact_redis_url("redis://:pw@h"), "redis://:********@h");
  EXPECT_EQ(redact_redis_url("user:p@w@h"), "user:********@h");
  EXPECT_EQ(redact_redis_url("redis://:pa/ss@h"), "redis://:********@h");
  EXPECT_EQ(redact_redis_url("redis://h:1"), "redis://h:1");
}

}  // namespace
}  // namespace bc::broker
