// The server API's per-thread index of connections by user (thread_engine::add_user / remove_user /
// on_control): every connection of the user is reached, and leaving costs the same however many share a user.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/node.hpp"
#include "engine/thread_engine.hpp"

namespace bc::engine {
namespace {

struct fake_connection final : user_connection {
  int disconnects = 0;
  std::vector<std::string> unsubscribed;
  void disconnect_by_server() override { ++disconnects; }
  void unsubscribe_by_server(std::string_view channel) override { unsubscribed.emplace_back(channel); }
};

struct fixture : ::testing::Test {
  node n{[](core::message) { return std::make_shared<core::publication>(); }};
  core::hub hub{0};
  thread_engine engine{n, hub};

  static broker::control_message disconnect(std::string user) {
    broker::control_message m;
    m.what = broker::control_message::kind::disconnect_user;
    m.user = std::move(user);
    return m;
  }
};

TEST_F(fixture, control_reaches_exactly_the_users_connections_left) {
  std::vector<std::unique_ptr<fake_connection>> alice(500), bob(3);
  for (auto& c : alice) {
    c = std::make_unique<fake_connection>();
    engine.add_user("alice", *c);
  }
  for (auto& c : bob) {
    c = std::make_unique<fake_connection>();
    engine.add_user("bob", *c);
  }
  // Half of alice's connections leave, in an order unrelated to their arrival.
  std::vector<std::size_t> order(alice.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  std::set<std::size_t> gone(order.begin(), order.begin() + 250);
  for (auto i : gone) engine.remove_user("alice", *alice[i]);

  engine.on_control(disconnect("alice"));
  for (std::size_t i = 0; i < alice.size(); ++i) EXPECT_EQ(alice[i]->disconnects, gone.count(i) ? 0 : 1) << i;
  for (auto& c : bob) EXPECT_EQ(c->disconnects, 0);

  broker::control_message u;
  u.what = broker::control_message::kind::unsubscribe_user;
  u.user = "bob";
  u.channel = "news";
  engine.on_control(u);
  for (auto& c : bob) EXPECT_EQ(c->unsubscribed, std::vector<std::string>{"news"});
}

TEST_F(fixture, removing_twice_or_under_another_user_changes_nothing) {
  fake_connection a, b;
  engine.add_user("alice", a);
  engine.add_user("alice", b);
  engine.remove_user("bob", a);  // never registered as bob
  engine.remove_user("alice", a);
  engine.remove_user("alice", a);  // already gone: b must stay
  engine.on_control(disconnect("alice"));
  EXPECT_EQ(a.disconnects, 0);
  EXPECT_EQ(b.disconnects, 1);
  engine.remove_user("alice", b);
  engine.on_control(disconnect("alice"));
  EXPECT_EQ(b.disconnects, 1);
}

}  // namespace
}  // namespace bc::engine
