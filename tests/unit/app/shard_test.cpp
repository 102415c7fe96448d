#include "app/shard.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auth/jwt_verifier.hpp"
#include "broker/memory_broker.hpp"
#include "core/subscriber.hpp"
#include "engine/node.hpp"
#include "net/net_config.hpp"
#include "net/worker.hpp"
#include "protocol/publisher.hpp"

namespace bc::app {
namespace {

using namespace std::chrono_literals;

// Written on the shard's thread, read by the test's.
class recording_subscriber : public core::subscriber {
 public:
  void deliver(const core::publication_ptr& pub, std::uint64_t) override {
    std::lock_guard lock(mutex_);
    payloads_.push_back(pub->tail);
    changed_.notify_all();
  }
  // The payloads once there are `n` of them, or what came within `timeout`.
  std::vector<std::string> await(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return payloads_.size() >= n; });
    return payloads_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> payloads_;
};

core::publication_ptr make_pub(std::string payload) {
  auto p = std::make_shared<core::publication>();
  p->channel = "news";
  p->head = "H";
  p->tail = std::move(payload);  // the tests read it back from here
  return p;
}

// One running shard with one subscriber of "news"; the test thread plays the other threads that hand over.
class shard_test : public ::testing::Test {
 protected:
  void start(std::chrono::milliseconds handover_delay, std::size_t inbox_limit = 0) {
    node_.attach(broker_);
    s_ = std::make_unique<shard>(0, node_, publisher_, verifier_, protocol::session_limits{}, shared_,
                                 handover_delay, inbox_limit);
    s_->start();
    std::promise<void> subscribed;
    boost::asio::post(s_->ioc(), [&] {
      sub_ = s_->hub().subscribe("news", subscriber_);
      subscribed.set_value();
    });
    subscribed.get_future().wait();
  }
  void TearDown() override {
    if (!s_) return;
    s_->join();
    sub_.reset();  // the thread has stopped: nobody else touches the hub now
    s_.reset();
  }
  // Waits, up to `timeout`, for the shard's thread to wait without a time limit.
  bool await_unbounded_wait(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!s_->waiting_unbounded()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }

  // The shard is pushed to by hand: the node routes to no thread.
  engine::node node_{[](core::message) { return core::publication_ptr{}; }};
  broker::memory_broker broker_{node_};
  protocol::publisher publisher_{node_};
  auth::jwt_verifier verifier_{"secret"};
  net::net_config config_;
  net::node_shared shared_{config_};
  recording_subscriber subscriber_;
  std::unique_ptr<shard> s_;
  std::unique_ptr<core::subscription> sub_;
};

TEST_F(shard_test, a_push_wakes_a_thread_that_waits_without_limit) {
  start(0ms);
  ASSERT_TRUE(await_unbounded_wait());
  s_->push(make_pub("1"));
  EXPECT_EQ(subscriber_.await(1), std::vector<std::string>{"1"});
  EXPECT_EQ(s_->wakeups(), 1u);
  EXPECT_EQ(s_->handovers(), 1u);
}

TEST_F(shard_test, with_no_delay_every_push_to_a_sleeping_thread_wakes_it) {
  start(0ms);
  std::vector<std::string> sent;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(await_unbounded_wait());
    sent.push_back(std::to_string(i));
    s_->push(make_pub(sent.back()));
    ASSERT_EQ(subscriber_.await(sent.size()), sent);
  }
  EXPECT_EQ(s_->wakeups(), 5u);
}

TEST_F(shard_test, while_hand_overs_keep_coming_the_thread_takes_them_without_being_woken) {
  // Two quiet bounded waits of 250 ms in a row end the lingering: far longer than the test thread needs to
  // see a delivery and push the next, even under a sanitizer on a busy machine.
  start(250ms);
  ASSERT_TRUE(await_unbounded_wait());
  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back(std::to_string(i));
    s_->push(make_pub(sent.back()));
    ASSERT_EQ(subscriber_.await(sent.size()), sent);
  }
  // The first push found the thread asleep; from then on it lingered, taking each within the delay.
  EXPECT_EQ(s_->wakeups(), 1u);
  EXPECT_EQ(s_->handovers(), 10u);
}

TEST_F(shard_test, the_inbox_is_full_at_its_limit_until_the_thread_drains_it) {
  start(0ms, 4096);
  // Hold the thread in a handler, so that nothing is drained while the test fills the inbox.
  std::promise<void> release;
  std::promise<void> held;
  boost::asio::post(s_->ioc(), [&] {
    held.set_value();
    release.get_future().wait();
  });
  held.get_future().wait();
  const std::string payload(1000, 'x');
  std::vector<std::string> sent;
  while (!s_->inbox_full()) {
    ASSERT_LT(sent.size(), 10u) << "the limit was never reached";
    sent.push_back(payload + std::to_string(sent.size()));
    s_->push(make_pub(sent.back()));
  }
  EXPECT_GE(s_->inbox_bytes(), 4096u);
  EXPECT_EQ(sent.size(), 4u);  // 3 x (1000 + overhead) < 4096 <= 4 x
  release.set_value();
  EXPECT_EQ(subscriber_.await(sent.size()), sent);
  EXPECT_FALSE(s_->inbox_full());
  EXPECT_EQ(s_->inbox_bytes(), 0u);
}

TEST_F(shard_test, a_limit_of_zero_is_no_limit) {
  start(0ms, 0);
  std::promise<void> release;
  boost::asio::post(s_->ioc(), [&] { release.get_future().wait(); });
  for (int i = 0; i < 100; ++i) s_->push(make_pub(std::string(10000, 'x')));
  EXPECT_FALSE(s_->inbox_full());
  release.set_value();
  EXPECT_EQ(subscriber_.await(100).size(), 100u);
}

TEST_F(shard_test, a_burst_is_delivered_in_order) {
  start(2ms);
  std::vector<std::string> sent;
  for (int i = 0; i < 1000; ++i) sent.push_back(std::to_string(i));
  for (const auto& p : sent) s_->push(make_pub(p));
  EXPECT_EQ(subscriber_.await(sent.size()), sent);
}

TEST_F(shard_test, once_hand_overs_stop_the_thread_goes_back_to_waiting_without_limit) {
  start(1ms);
  ASSERT_TRUE(await_unbounded_wait());
  s_->push(make_pub("1"));
  ASSERT_EQ(subscriber_.await(1).size(), 1u);
  // Two quiet bounded waits of 1 ms later it must be back in an unbounded wait, and the next push wakes it.
  ASSERT_TRUE(await_unbounded_wait());
  const auto before = s_->wakeups();
  s_->push(make_pub("2"));
  EXPECT_EQ(subscriber_.await(2), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(s_->wakeups(), before + 1);
}

}  // namespace
}  // namespace bc::app
