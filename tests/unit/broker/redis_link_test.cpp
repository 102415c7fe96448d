#include "broker/redis_link.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/redis_tls.hpp"
#include "redis_test_support.hpp"
#include "redis_tls_test_support.hpp"

namespace bc::broker {
namespace {

using namespace redis_test;
namespace asio = boost::asio;

// Runs the io_context on the test thread until `pred` holds.
bool run_until(asio::io_context& ioc, const std::function<bool()>& pred,
               std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ioc.restart();
    ioc.run_for(5ms);
  }
  return true;
}

std::string text_of(const void* reply) {
  const auto* r = static_cast<const redisReply*>(reply);
  if (r == nullptr) return "null";
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ERROR:
      return "error " + std::string(r->str, r->len);
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (std::size_t i = 0; i < r->elements; ++i) out += (i ? "," : "") + text_of(r->element[i]);
      return out + "]";
    }
    default:
      return std::string(r->str, r->len);
  }
}

// What the callbacks of one test saw, in the order they ran: "<tag> <reply>".
struct recorder {
  std::vector<std::string> seen;
  std::function<void(redis_link*, const std::string& tag, void* reply)> also;
};
struct tagged {
  recorder* rec;
  std::string tag;
};
void on_reply(redis_link* link, void* reply, void* privdata) {
  auto* t = static_cast<tagged*>(privdata);
  t->rec->seen.push_back(t->tag + " " + text_of(reply));
  if (t->rec->also) t->rec->also(link, t->tag, reply);
}

struct link_under_test {
  std::shared_ptr<redis_link> link;
  bool opened = false;
  std::vector<std::string> closed;  // close handler calls, with the reason

  link_under_test(asio::io_context& ioc, int port, std::shared_ptr<redis_tls> tls = nullptr,
                  std::string host = "127.0.0.1")
      : link(redis_link::create(ioc, {std::move(host), port, std::move(tls)})) {
    link->connect([this] { opened = true; }, [this](const std::string& why) { closed.push_back(why); });
  }
};

int argv_command(redis_link& link, tagged& t, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> len;
  for (const auto& a : args) {
    argv.push_back(a.data());
    len.push_back(a.size());
  }
  return link.command_argv(&on_reply, &t, static_cast<int>(args.size()), argv.data(), len.data());
}

TEST(RedisLink, PipelinedCommandsAreAnsweredInOrderEachToItsCallback) {
  redis_server server;
  asio::io_context ioc;
  recorder rec;
  link_under_test l(ioc, server.port());
  // Issued before the connection is up: they wait for it, then go out pipelined.
  constexpr int n = 3000;
  std::vector<tagged> tags;
  tags.reserve(n + 2);
  for (int i = 0; i < n; ++i) {
    tags.push_back({&rec, std::to_string(i)});
    const int rc = i % 2 == 0 ? l.link->command(&on_reply, &tags.back(), "INCR %s", "counter")
                              : argv_command(*l.link, tags.back(), {"INCR", "counter"});
    ASSERT_EQ(rc, 0);
  }
  const std::string big(1 << 20, 'x');  // larger than one read, and than one write's worth
  tags.push_back({&rec, "set"});
  ASSERT_EQ(l.link->command(&on_reply, &tags.back(), "SET big %b", big.data(), big.size()), 0);
  tags.push_back({&rec, "strlen"});
  ASSERT_EQ(l.link->command(&on_reply, &tags.back(), "STRLEN big"), 0);
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == n + 2; }));
  for (int i = 0; i < n; ++i) ASSERT_EQ(rec.seen[i], std::to_string(i) + " " + std::to_string(i + 1));
  EXPECT_EQ(rec.seen[n], "set OK");
  EXPECT_EQ(rec.seen[n + 1], "strlen " + std::to_string(big.size()));
  EXPECT_TRUE(l.opened);
  EXPECT_TRUE(l.closed.empty());
  EXPECT_EQ(l.link->pending(), 0u);
  l.link->close();
}

TEST(RedisLink, EveryPendingCallbackGetsOneNullReplyOnLossBeforeTheCloseHandler) {
  redis_server server;
  asio::io_context ioc;
  recorder rec;
  link_under_test l(ioc, server.port());
  tagged ping{&rec, "ping"}, b1{&rec, "b1"}, b2{&rec, "b2"}, after{&rec, "after"};
  l.link->command(&on_reply, &ping, "PING");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 1; }));
  // Blocked in Redis: never answered before the server dies.
  l.link->command(&on_reply, &b1, "BLPOP nothing 0");
  l.link->command(&on_reply, &b2, "BLPOP nothing 0");
  l.link->command(&on_reply, &after, "PING");
  run_until(
      ioc, [] { return false; }, 100ms);
  server.kill();
  rec.also = [&](redis_link*, const std::string&, void*) { EXPECT_TRUE(l.closed.empty()); };
  ASSERT_TRUE(run_until(ioc, [&] { return !l.closed.empty(); }));
  EXPECT_EQ(rec.seen, (std::vector<std::string>{"ping PONG", "b1 null", "b2 null", "after null"}));
  EXPECT_EQ(l.closed.size(), 1u);
  EXPECT_FALSE(l.closed[0].empty());
  EXPECT_EQ(l.link->command(&on_reply, &ping, "PING"), -1);  // closed: refused
  run_until(
      ioc, [] { return false; }, 50ms);
  EXPECT_EQ(l.closed.size(), 1u);
  EXPECT_EQ(rec.seen.size(), 4u);
}

TEST(RedisLink, ACallbackMayIssueCommandsCloseTheLinkAndDropTheLastReference) {
  redis_server server;
  asio::io_context ioc;
  recorder rec;
  auto l = std::make_unique<link_under_test>(ioc, server.port());
  std::weak_ptr<redis_link> weak = l->link;
  tagged first{&rec, "first"}, second{&rec, "second"}, third{&rec, "third"}, late{&rec, "late"};
  rec.also = [&](redis_link* link, const std::string& tag, void* reply) {
    if (tag == "first") {
      EXPECT_EQ(link->command(&on_reply, &late, "ECHO late"), 0);  // queued behind second and third
    }
    if (tag == "second" && reply != nullptr) {
      link->close();  // third and late get null, once each
      l.reset();      // the owner goes away while the link is inside its read loop
    }
  };
  l->link->command(&on_reply, &first, "ECHO first");
  l->link->command(&on_reply, &second, "ECHO second");
  l->link->command(&on_reply, &third, "ECHO third");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 4; }));
  run_until(
      ioc, [] { return false; }, 50ms);
  EXPECT_EQ(rec.seen, (std::vector<std::string>{"first first", "second second", "third null", "late null"}));
  EXPECT_TRUE(weak.expired());  // nothing kept it alive once its operations finished
}

TEST(RedisLink, PubSubConfirmationsAndMessagesGoToTheSubscribeCallbackOtherRepliesToTheirOwn) {
  redis_server server;
  redis_probe probe(server.port());
  asio::io_context ioc;
  recorder rec;
  link_under_test l(ioc, server.port());
  tagged role{&rec, "role"}, sub{&rec, "sub"}, ping{&rec, "ping"}, unsub{&rec, "unsub"};
  l.link->command(&on_reply, &role, "ECHO before");
  l.link->command(&on_reply, &sub, "SUBSCRIBE a b");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 3; }));
  EXPECT_EQ(rec.seen[0], "role before");
  EXPECT_EQ(rec.seen[1], "sub [subscribe,a,1]");
  EXPECT_EQ(rec.seen[2], "sub [subscribe,b,2]");
  ASSERT_EQ(probe.publish("a", "hello"), 1);
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 4; }));
  EXPECT_EQ(rec.seen[3], "sub [message,a,hello]");
  // In subscribed mode PING answers ["pong", ""]: to PING's own callback, in order.
  l.link->command(&on_reply, &ping, "PING");
  l.link->command(&on_reply, &unsub, "UNSUBSCRIBE a");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 6; }));
  EXPECT_EQ(rec.seen[4], "ping [pong,]");
  EXPECT_EQ(rec.seen[5], "unsub [unsubscribe,a,1]");
  EXPECT_EQ(probe.publish("a", "gone"), 0);
  ASSERT_EQ(probe.publish("b", "still"), 1);
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 7; }));
  EXPECT_EQ(rec.seen[6], "sub [message,b,still]");
  EXPECT_EQ(l.link->pending(), 0u);
  // On loss the subscribe callback hears it too (once), like every pending command.
  server.kill();
  ASSERT_TRUE(run_until(ioc, [&] { return !l.closed.empty(); }));
  EXPECT_EQ(rec.seen.back(), "sub null");
  EXPECT_EQ(rec.seen.size(), 8u);
}

TEST(RedisLink, ShardedPubSubAndRepliesThatOnlyLookLikePushes) {
  redis_server server;
  redis_probe probe(server.port());
  asio::io_context ioc;
  recorder rec;
  link_under_test l(ioc, server.port());
  tagged push{&rec, "push"}, range{&rec, "range"}, ssub{&rec, "ssub"}, sub{&rec, "sub"},
      sunsub{&rec, "sunsub"};
  // Not subscribed: an array that starts with "message" is LRANGE's answer, not a push.
  l.link->command(&on_reply, &push, "RPUSH l message a b");
  l.link->command(&on_reply, &range, "LRANGE l 0 -1");
  l.link->command(&on_reply, &sub, "SUBSCRIBE plain");
  l.link->command(&on_reply, &ssub, "SSUBSCRIBE s1");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 4; }));
  EXPECT_EQ(rec.seen[0], "push 3");
  EXPECT_EQ(rec.seen[1], "range [message,a,b]");
  EXPECT_EQ(rec.seen[2], "sub [subscribe,plain,1]");
  EXPECT_EQ(rec.seen[3], "ssub [ssubscribe,s1,1]");
  ASSERT_EQ(probe.command({"SPUBLISH", "s1", "sharded"}), "1");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 5; }));
  EXPECT_EQ(rec.seen[4], "ssub [smessage,s1,sharded]");  // the last SUBSCRIBE-family command's callback
  // Leaving the sharded channel does not leave subscribed mode: the plain one still counts.
  l.link->command(&on_reply, &sunsub, "SUNSUBSCRIBE s1");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 6; }));
  EXPECT_EQ(rec.seen[5], "sunsub [sunsubscribe,s1,0]");
  ASSERT_EQ(probe.publish("plain", "still"), 1);
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 7; }));
  EXPECT_EQ(rec.seen[6], "ssub [message,plain,still]");
  EXPECT_EQ(l.link->pending(), 0u);
  l.link->close();
}

TEST(RedisLink, UnreachableServerReportsTheFailure) {
  const int port = free_port();
  asio::io_context ioc;
  link_under_test l(ioc, port);
  ASSERT_TRUE(run_until(ioc, [&] { return !l.closed.empty(); }));
  EXPECT_FALSE(l.opened);
  EXPECT_NE(l.closed[0].find("refused"), std::string::npos) << l.closed[0];
}

TEST(RedisLink, ResolvesHostNames) {
  redis_server server;
  asio::io_context ioc;
  recorder rec;
  link_under_test l(ioc, server.port(), nullptr, "localhost");
  tagged ping{&rec, "ping"};
  l.link->command(&on_reply, &ping, "PING");
  ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 1; })) << (l.closed.empty() ? "" : l.closed[0]);
  EXPECT_EQ(rec.seen[0], "ping PONG");
  l.link->close();
}

// ---- TLS -----------------------------------------------------------------------------------------------

class RedisLinkTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { material_ = new tls_material(); }
  static void TearDownTestSuite() {
    delete material_;
    material_ = nullptr;
  }
  static std::shared_ptr<redis_tls> tls(redis_tls_options o) { return std::make_shared<redis_tls>(o); }
  static redis_tls_options trusting() {
    redis_tls_options o;
    o.ca_file = material_->ca();
    return o;
  }
  static tls_material* material_;
};
tls_material* RedisLinkTls::material_ = nullptr;

TEST_F(RedisLinkTls, PipelineAndPubSubOverVerifiedTls) {
  const int tls_port = free_port();
  redis_server server(0, {}, material_->server_args(tls_port, false));
  redis_probe probe(server.port());
  asio::io_context ioc;
  recorder rec;
  // 127.0.0.1 is checked against the certificate's IP entry; "localhost" against its DNS entry.
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    rec.seen.clear();
    link_under_test l(ioc, tls_port, tls(trusting()), host);
    std::vector<tagged> tags;
    tags.reserve(1000);
    for (int i = 0; i < 1000; ++i) {
      tags.push_back({&rec, std::to_string(i)});
      l.link->command(&on_reply, &tags.back(), "INCR tls-counter-%s", host.c_str());
    }
    ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 1000; }))
        << host << ": " << (l.closed.empty() ? "" : l.closed[0]);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(rec.seen[i], std::to_string(i) + " " + std::to_string(i + 1));
    tagged sub{&rec, "sub"};
    l.link->command(&on_reply, &sub, "SUBSCRIBE tls-%s", host.c_str());
    ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 1001; }));
    ASSERT_EQ(probe.publish("tls-" + host, "over tls"), 1);
    ASSERT_TRUE(run_until(ioc, [&] { return rec.seen.size() == 1002; }));
    EXPECT_EQ(rec.seen.back(), "sub [message,tls-" + host + ",over tls]");
    l.link->close();
  }
}

TEST_F(RedisLinkTls, WrongCaNameMismatchAndMissingClientCertificateAreRefused) {
  const int tls_port = free_port();
  redis_server server(0, {}, material_->server_args(tls_port, true));
  asio::io_context ioc;
  auto attempt = [&](redis_tls_options o) {
    recorder rec;
    tagged ping{&rec, "ping"};
    link_under_test l(ioc, tls_port, tls(std::move(o)));
    l.link->command(&on_reply, &ping, "PING");
    EXPECT_TRUE(run_until(ioc, [&] { return !l.closed.empty() || !rec.seen.empty(); }));
    std::string out = rec.seen.empty() ? "" : rec.seen[0];
    if (!l.closed.empty()) out += " closed: " + l.closed[0];
    l.link->close();
    return out;
  };
  auto with_client_cert = [&](redis_tls_options o) {
    o.cert_file = material_->client_cert();
    o.key_file = material_->client_key();
    return o;
  };
  // Everything right.
  EXPECT_EQ(attempt(with_client_cert(trusting())), "ping PONG");
  // A CA that did not sign the server's certificate.
  auto wrong_ca = with_client_cert(trusting());
  wrong_ca.ca_file = material_->other_ca();
  const auto wrong = attempt(wrong_ca);
  EXPECT_NE(wrong.find("certificate verify failed"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("certificate check: "), std::string::npos) << wrong;  // what OpenSSL found wrong
  // A name the certificate does not carry.
  auto other_name = with_client_cert(trusting());
  other_name.server_name = "redis.example.com";
  const auto mismatch = attempt(other_name);
  EXPECT_NE(mismatch.find("hostname mismatch"), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find("redis.example.com"), std::string::npos) << mismatch;
  // The development switch accepts both.
  wrong_ca.insecure_skip_verify = true;
  wrong_ca.server_name = "redis.example.com";
  EXPECT_EQ(attempt(wrong_ca), "ping PONG");
  // tls-auth-clients yes: no client certificate, no connection (TLS 1.3 reports it on the first read).
  const auto no_cert = attempt(trusting());
  EXPECT_NE(no_cert.find("closed:"), std::string::npos) << no_cert;
  EXPECT_EQ(no_cert.find("PONG"), std::string::npos) << no_cert;
}

TEST_F(RedisLinkTls, UnreadableFilesAreRefusedWhenTheContextIsBuilt) {
  auto o = trusting();
  o.ca_file = material_->file("missing.crt");
  EXPECT_THROW(tls(o), std::runtime_error);
  o = trusting();
  o.cert_file = material_->client_cert();
  o.key_file = material_->file("server.key");  // not the certificate's key
  try {
    tls(o);
    ADD_FAILURE() << "a key that does not match its certificate was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bc::broker
