#include "core/hub.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/message.hpp"
#include "core/subscriber.hpp"

namespace bc::core {
namespace {

// Remembers every delivery in order: which publication (by channel and payload) and which seq.
class recording_subscriber : public subscriber {
 public:
  struct delivery {
    std::string channel;
    std::string payload;
    std::uint64_t seq;
  };
  void deliver(const publication_ptr& pub, std::uint64_t seq) override {
    got.push_back({pub->channel, pub->tail, seq});
  }
  std::vector<std::uint64_t> seqs() const {
    std::vector<std::uint64_t> out;
    for (const auto& d : got) out.push_back(d.seq);
    return out;
  }
  std::vector<delivery> got;
};

// Records interest changes as "+channel" / "-channel".
class recording_listener : public interest_listener {
 public:
  void on_channel_active(std::string_view channel) override { events.push_back("+" + std::string(channel)); }
  void on_channel_idle(std::string_view channel) override { events.push_back("-" + std::string(channel)); }
  std::vector<std::string> events;
};

publication_ptr make_pub(std::string channel, std::string payload = "{}") {
  auto p = std::make_shared<publication>();
  p->channel = std::move(channel);
  p->head = "H";
  p->tail = std::move(payload);  // read back by recording_subscriber
  return p;
}

using seqs = std::vector<std::uint64_t>;

TEST(hub, first_delivery_has_seq_one_and_seq_increments_per_delivery) {
  hub h(0);
  recording_subscriber s;
  auto sub = h.subscribe("news", s);
  EXPECT_EQ(h.deliver(make_pub("news", "1")), 1u);
  EXPECT_EQ(h.deliver(make_pub("news", "2")), 1u);
  EXPECT_EQ(h.deliver(make_pub("news", "3")), 1u);
  EXPECT_EQ(s.seqs(), (seqs{1, 2, 3}));
  ASSERT_EQ(s.got.size(), 3u);
  EXPECT_EQ(s.got[0].payload, "1");
  EXPECT_EQ(s.got[2].payload, "3");
  EXPECT_EQ(s.got[1].channel, "news");
}

TEST(hub, seq_is_per_subscription_not_per_channel) {
  hub h(0);
  recording_subscriber early, late;
  auto a = h.subscribe("news", early);
  h.deliver(make_pub("news"));
  h.deliver(make_pub("news"));
  auto b = h.subscribe("news", late);
  h.deliver(make_pub("news"));
  EXPECT_EQ(early.seqs(), (seqs{1, 2, 3}));
  EXPECT_EQ(late.seqs(), (seqs{1}));
}

TEST(hub, one_subscriber_has_an_independent_seq_per_channel) {
  hub h(0);
  recording_subscriber s;
  auto a = h.subscribe("a", s);
  auto b = h.subscribe("b", s);
  h.deliver(make_pub("a"));
  h.deliver(make_pub("a"));
  h.deliver(make_pub("b"));
  h.deliver(make_pub("a"));
  ASSERT_EQ(s.got.size(), 4u);
  EXPECT_EQ(s.got[0].seq, 1u);
  EXPECT_EQ(s.got[1].seq, 2u);
  EXPECT_EQ(s.got[2].channel, "b");
  EXPECT_EQ(s.got[2].seq, 1u);
  EXPECT_EQ(s.got[3].seq, 3u);
}

TEST(hub, new_subscription_after_unsubscribe_restarts_at_one) {
  hub h(0);
  recording_subscriber s;
  auto sub = h.subscribe("news", s);
  h.deliver(make_pub("news"));
  h.deliver(make_pub("news"));
  sub.reset();  // unsubscribe
  EXPECT_EQ(h.deliver(make_pub("news")), 0u);
  sub = h.subscribe("news", s);
  h.deliver(make_pub("news"));
  EXPECT_EQ(s.seqs(), (seqs{1, 2, 1}));
}

TEST(hub, restart_at_one_also_when_other_subscribers_keep_the_channel_alive) {
  hub h(0);
  recording_subscriber stays, leaves;
  auto keep = h.subscribe("news", stays);
  auto sub = h.subscribe("news", leaves);
  h.deliver(make_pub("news"));
  h.deliver(make_pub("news"));
  sub.reset();
  sub = h.subscribe("news", leaves);
  h.deliver(make_pub("news"));
  EXPECT_EQ(stays.seqs(), (seqs{1, 2, 3}));
  EXPECT_EQ(leaves.seqs(), (seqs{1, 2, 1}));
}

TEST(hub, delivers_only_to_the_channels_subscribers) {
  hub h(0);
  recording_subscriber news, chat, both;
  auto a = h.subscribe("news", news);
  auto b = h.subscribe("chat:room-1", chat);
  auto c = h.subscribe("news", both);
  auto d = h.subscribe("chat:room-1", both);

  EXPECT_EQ(h.deliver(make_pub("news", "n1")), 2u);
  EXPECT_EQ(h.deliver(make_pub("chat:room-1", "c1")), 2u);
  EXPECT_EQ(h.deliver(make_pub("chat:room-2", "x")), 0u);
  EXPECT_EQ(h.deliver(make_pub("new", "x")), 0u);  // a prefix is another channel
  EXPECT_EQ(h.deliver(make_pub("chat", "x")), 0u);

  ASSERT_EQ(news.got.size(), 1u);
  EXPECT_EQ(news.got[0].payload, "n1");
  ASSERT_EQ(chat.got.size(), 1u);
  EXPECT_EQ(chat.got[0].payload, "c1");
  ASSERT_EQ(both.got.size(), 2u);
  EXPECT_EQ(both.got[0].payload, "n1");
  EXPECT_EQ(both.got[1].payload, "c1");
}

TEST(hub, deliver_on_empty_hub_reaches_nobody) {
  hub h(0);
  EXPECT_EQ(h.deliver(make_pub("news")), 0u);
  EXPECT_EQ(h.channel_count(), 0u);
}

TEST(hub, hands_over_the_same_shared_publication_to_every_subscriber) {
  hub h(0);
  class pointer_recorder : public subscriber {
   public:
    void deliver(const publication_ptr& pub, std::uint64_t) override { seen.push_back(pub.get()); }
    std::vector<const publication*> seen;
  } a, b;
  auto sa = h.subscribe("news", a);
  auto sb = h.subscribe("news", b);
  const auto pub = make_pub("news");
  h.deliver(pub);
  ASSERT_EQ(a.seen.size(), 1u);
  ASSERT_EQ(b.seen.size(), 1u);
  EXPECT_EQ(a.seen[0], pub.get());
  EXPECT_EQ(b.seen[0], pub.get());
}

// Removes subscriptions from the middle, the front and the back (swap-removal moves the last slot into the
// hole) and checks after every step that exactly the remaining subscribers receive, each with its own seq.
TEST(hub, swap_removal_keeps_every_remaining_subscriber_receiving) {
  hub h(0);
  constexpr int n = 12;
  std::vector<recording_subscriber> subs(n);
  std::vector<std::unique_ptr<subscription>> handles;
  for (auto& s : subs) handles.push_back(h.subscribe("news", s));
  h.deliver(make_pub("news"));
  h.deliver(make_pub("news"));

  std::vector<std::size_t> expected(n, 2);
  std::set<int> removed;
  for (int victim : {5, 0, 11, 6, 3, 10, 1}) {
    handles[static_cast<std::size_t>(victim)].reset();
    removed.insert(victim);
    const std::size_t reached = h.deliver(make_pub("news"));
    EXPECT_EQ(reached, static_cast<std::size_t>(n) - removed.size());
    EXPECT_EQ(h.subscriber_count("news"), static_cast<std::size_t>(n) - removed.size());
    for (int i = 0; i < n; ++i) {
      if (!removed.count(i)) ++expected[static_cast<std::size_t>(i)];
      auto& got = subs[static_cast<std::size_t>(i)].got;
      ASSERT_EQ(got.size(), expected[static_cast<std::size_t>(i)])
          << "subscriber " << i << " after removing " << victim;
      // The moved slot keeps its seq: every subscriber's seqs are exactly 1..k.
      for (std::size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k].seq, k + 1) << "subscriber " << i;
    }
  }
  // Remove the rest in reverse creation order; the channel disappears with the last one.
  for (int i = n - 1; i >= 0; --i) handles[static_cast<std::size_t>(i)].reset();
  EXPECT_EQ(h.subscriber_count("news"), 0u);
  EXPECT_EQ(h.channel_count(), 0u);
  EXPECT_EQ(h.subscription_count(), 0u);
}

TEST(hub, removing_subscribers_in_many_orders_keeps_the_index_consistent) {
  // A permutation-driven stress of swap-removal: after each removal every remaining one still gets exactly
  // one message, and a removed one gets nothing more.
  std::vector<int> order(8);
  for (int i = 0; i < 8; ++i) order[static_cast<std::size_t>(i)] = i;
  int permutations = 0;
  do {
    hub h(1);
    std::vector<recording_subscriber> subs(order.size());
    std::vector<std::unique_ptr<subscription>> handles;
    for (auto& s : subs) handles.push_back(h.subscribe("c", s));
    for (std::size_t step = 0; step < order.size(); ++step) {
      handles[static_cast<std::size_t>(order[step])].reset();
      std::vector<std::size_t> before;
      for (auto& s : subs) before.push_back(s.got.size());
      EXPECT_EQ(h.deliver(make_pub("c")), order.size() - step - 1);
      for (std::size_t i = 0; i < subs.size(); ++i) {
        const bool alive = handles[i] != nullptr;
        ASSERT_EQ(subs[i].got.size(), before[i] + (alive ? 1 : 0));
      }
    }
    EXPECT_EQ(h.channel_count(), 0u);
    ++permutations;
  } while (std::next_permutation(order.begin(), order.begin() + 5) && permutations < 200);
  EXPECT_GT(permutations, 100);
}

TEST(hub, interest_listener_fires_on_first_and_last_subscriber_only) {
  recording_listener l;
  hub h(0, &l);
  recording_subscriber s1, s2, s3;
  auto a = h.subscribe("news", s1);
  EXPECT_EQ(l.events, (std::vector<std::string>{"+news"}));
  auto b = h.subscribe("news", s2);
  auto c = h.subscribe("news", s3);
  auto d = h.subscribe("chat", s1);
  EXPECT_EQ(l.events, (std::vector<std::string>{"+news", "+chat"}));
  b.reset();
  a.reset();
  EXPECT_EQ(l.events, (std::vector<std::string>{"+news", "+chat"}));
  c.reset();
  EXPECT_EQ(l.events, (std::vector<std::string>{"+news", "+chat", "-news"}));
  // The channel comes back: active again.
  auto e = h.subscribe("news", s2);
  EXPECT_EQ(l.events, (std::vector<std::string>{"+news", "+chat", "-news", "+news"}));
  d.reset();
  e.reset();
  EXPECT_EQ(l.events, (std::vector<std::string>{"+news", "+chat", "-news", "+news", "-chat", "-news"}));
}

TEST(hub, listener_sees_the_channel_name_when_idle) {
  // The hub moves the name out of the entry before erasing it; the listener must still get the full name.
  recording_listener l;
  hub h(0, &l);
  recording_subscriber s;
  const std::string long_name(200, 'x');
  auto sub = h.subscribe(long_name, s);
  sub.reset();
  ASSERT_EQ(l.events.size(), 2u);
  EXPECT_EQ(l.events[1], "-" + long_name);
}

TEST(hub, may_have_follows_the_channels_it_holds) {
  hub h(0);
  recording_subscriber a, b;
  const auto news = channel_filter::hash("news");
  EXPECT_FALSE(h.may_have(news));
  auto first = h.subscribe("news", a);
  auto second = h.subscribe("news", b);
  EXPECT_TRUE(h.may_have(news));
  first.reset();
  EXPECT_TRUE(h.may_have(news)) << "one subscriber is left";
  second.reset();
  EXPECT_FALSE(h.may_have(news));
}

TEST(hub, works_without_a_listener) {
  hub h(0, nullptr);
  recording_subscriber s;
  auto sub = h.subscribe("news", s);
  sub.reset();
  EXPECT_EQ(h.channel_count(), 0u);
}

TEST(hub, counts_channels_subscriptions_and_subscribers) {
  hub h(0);
  recording_subscriber s1, s2;
  EXPECT_EQ(h.channel_count(), 0u);
  EXPECT_EQ(h.subscription_count(), 0u);
  EXPECT_EQ(h.subscriber_count("news"), 0u);

  auto a = h.subscribe("news", s1);
  auto b = h.subscribe("news", s2);
  auto c = h.subscribe("chat", s1);
  EXPECT_EQ(h.channel_count(), 2u);
  EXPECT_EQ(h.subscription_count(), 3u);
  EXPECT_EQ(h.subscriber_count("news"), 2u);
  EXPECT_EQ(h.subscriber_count("chat"), 1u);
  EXPECT_EQ(h.subscriber_count("other"), 0u);

  a.reset();
  EXPECT_EQ(h.channel_count(), 2u);
  EXPECT_EQ(h.subscription_count(), 2u);
  EXPECT_EQ(h.subscriber_count("news"), 1u);
  c.reset();
  EXPECT_EQ(h.channel_count(), 1u);
  EXPECT_EQ(h.subscription_count(), 1u);
  EXPECT_EQ(h.subscriber_count("chat"), 0u);
  b.reset();
  EXPECT_EQ(h.channel_count(), 0u);
  EXPECT_EQ(h.subscription_count(), 0u);
}

TEST(hub, subscription_reports_its_channel) {
  hub h(0);
  recording_subscriber s;
  auto a = h.subscribe("chat:room-42", s);
  auto b = h.subscribe("news", s);
  EXPECT_EQ(a->channel(), "chat:room-42");
  EXPECT_EQ(b->channel(), "news");
  // Many more channels force rehashing; entries are address-stable, so the names still resolve.
  std::vector<std::unique_ptr<subscription>> more;
  for (int i = 0; i < 500; ++i) more.push_back(h.subscribe("c" + std::to_string(i), s));
  EXPECT_EQ(a->channel(), "chat:room-42");
  EXPECT_EQ(b->channel(), "news");
  EXPECT_EQ(more[321]->channel(), "c321");
}

TEST(hub, subscription_ids_are_unique_and_carry_the_shard_index) {
  hub h0(0), h7(7);
  recording_subscriber s;
  std::vector<std::unique_ptr<subscription>> handles;
  for (int i = 0; i < 100; ++i) {
    handles.push_back(h0.subscribe("c" + std::to_string(i % 3), s));
    handles.push_back(h7.subscribe("c" + std::to_string(i % 3), s));
  }
  // Ids are also unique after unsubscribing and subscribing again.
  handles.erase(handles.begin(), handles.begin() + 20);
  for (int i = 0; i < 20; ++i) handles.push_back(h7.subscribe("c0", s));
  std::set<std::uint64_t> live;
  for (const auto& sub : handles) live.insert(sub->id());
  EXPECT_EQ(live.size(), handles.size());

  for (const auto& sub : handles) {
    const std::uint64_t shard = sub->id() >> 40;
    EXPECT_TRUE(shard == 0 || shard == 7) << sub->id();
    EXPECT_NE(sub->id() & ((std::uint64_t{1} << 40) - 1), 0u);
  }
  std::size_t on_7 = 0;
  for (const auto& sub : handles) on_7 += (sub->id() >> 40) == 7;
  EXPECT_EQ(on_7, 100u - 10u + 20u);  // 100 created on h7, 10 of them erased, 20 new
  handles.clear();
}

TEST(hub, ids_from_different_shards_never_collide) {
  hub a(1), b(2);
  recording_subscriber s;
  auto x = a.subscribe("news", s);
  auto y = b.subscribe("news", s);
  EXPECT_NE(x->id(), y->id());
  EXPECT_EQ(x->id() >> 40, 1u);
  EXPECT_EQ(y->id() >> 40, 2u);
}

TEST(hub, ids_increase_within_a_shard_and_are_never_reused) {
  hub h(3);
  recording_subscriber s;
  std::uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    auto sub = h.subscribe("news", s);  // destroyed at the end of each iteration
    EXPECT_GT(sub->id(), last);
    last = sub->id();
  }
}

publication_ptr at(std::string channel, std::uint64_t offset, std::string epoch = "E") {
  auto p = std::make_shared<publication>();
  p->channel = std::move(channel);
  p->head = "H";
  p->tail = std::to_string(offset);
  p->offset = offset;
  p->epoch = std::move(epoch);
  return p;
}

publication_ptr gap(std::string channel, std::uint64_t last_offset, std::uint64_t count) {
  auto p = std::make_shared<publication>();
  p->channel = std::move(channel);
  p->offset = last_offset;
  p->skipped = count;
  return p;
}

std::vector<std::string> payloads(const recording_subscriber& s) {
  std::vector<std::string> out;
  for (const auto& d : s.got) out.push_back(d.payload);
  return out;
}

TEST(hub, a_gap_marker_advances_every_seq_and_delivers_nothing) {
  hub h(0);
  recording_subscriber a, b;
  auto sa = h.subscribe("news", a);
  h.deliver(at("news", 1));
  auto sb = h.subscribe("news", b);
  EXPECT_EQ(h.deliver(gap("news", 4, 3)), 0u);
  h.deliver(at("news", 5));
  EXPECT_EQ(a.seqs(), (seqs{1, 5}));
  EXPECT_EQ(b.seqs(), (seqs{4}));
}

TEST(hub, a_buffered_subscription_holds_back_until_it_goes_live) {
  hub h(0);
  recording_subscriber live, s;
  auto sl = h.subscribe("news", live);
  auto sub = h.subscribe("news", s, /*buffered=*/true);
  EXPECT_TRUE(sub->buffering());
  h.deliver(at("news", 7));
  h.deliver(at("news", 8));
  EXPECT_TRUE(s.got.empty());
  EXPECT_EQ(live.seqs(), (seqs{1, 2}));
  // The position was read at 7: 7 is covered by the replay (5..7), 8 follows it.
  h.go_live(*sub, {at("news", 5), at("news", 6), at("news", 7)}, "E", 7);
  EXPECT_FALSE(sub->buffering());
  EXPECT_EQ(payloads(s), (std::vector<std::string>{"5", "6", "7", "8"}));
  EXPECT_EQ(s.seqs(), (seqs{1, 2, 3, 4}));
  h.deliver(at("news", 9));
  EXPECT_EQ(s.seqs(), (seqs{1, 2, 3, 4, 5}));
}

TEST(hub, after_go_live_messages_up_to_the_position_still_queued_for_the_thread_are_dropped) {
  hub h(0);
  recording_subscriber s;
  auto sub = h.subscribe("news", s, true);
  // The position was read at 7 while 6 and 7 sat in this thread's inbox, not yet drained.
  h.go_live(*sub, {at("news", 5), at("news", 6), at("news", 7)}, "E", 7);
  h.deliver(at("news", 6));
  h.deliver(at("news", 7));
  h.deliver(gap("news", 9, 3));  // 7..9 lost: 8 and 9 are after the start
  h.deliver(at("news", 10));
  EXPECT_EQ(payloads(s), (std::vector<std::string>{"5", "6", "7", "10"}));
  EXPECT_EQ(s.seqs(), (seqs{1, 2, 3, 6}));
  // Past the start the filter is off: a new epoch starting at 1 is delivered.
  h.deliver(at("news", 1, "F"));
  EXPECT_EQ(s.seqs(), (seqs{1, 2, 3, 6, 7}));
}

TEST(hub, go_live_keeps_held_messages_of_another_epoch_and_trims_gaps_to_the_position) {
  hub h(0);
  recording_subscriber s;
  auto sub = h.subscribe("news", s, true);
  h.deliver(at("news", 3));      // covered by the position (5)
  h.deliver(gap("news", 7, 3));  // 5..7 lost: only 6 and 7 are after the position
  h.deliver(at("news", 8));
  h.deliver(at("news", 1, "F"));  // a new epoch began: kept
  h.go_live(*sub, {}, "E", 5);
  EXPECT_EQ(payloads(s), (std::vector<std::string>{"8", "1"}));
  EXPECT_EQ(s.seqs(), (seqs{3, 4}));
}

TEST(hub, a_buffered_subscription_that_leaves_takes_its_held_messages_with_it) {
  hub h(0);
  recording_subscriber a, b;
  auto sa = h.subscribe("news", a, true);
  auto sb = h.subscribe("news", b);
  h.deliver(at("news", 1));
  sa.reset();  // swap-remove moves b's slot; its state must follow
  h.deliver(at("news", 2));
  EXPECT_EQ(b.seqs(), (seqs{1, 2}));
  auto sc = h.subscribe("news", a, true);
  h.deliver(at("news", 3));
  h.go_live(*sc, {}, "E", 2);
  EXPECT_EQ(payloads(a), (std::vector<std::string>{"3"}));
}

}  // namespace
}  // namespace bc::core

namespace bc::core {
namespace {

publication_ptr presence_event(std::string channel, std::string frame) {
  auto p = std::make_shared<publication>();
  p->channel = std::move(channel);
  p->tail = std::move(frame);
  p->presence_event = true;
  return p;
}

TEST(hub, presence_events_reach_only_join_leave_subscriptions_and_consume_no_seq) {
  hub h(0);
  recording_subscriber plain, watcher;
  auto a = h.subscribe("chat", plain);
  auto b = h.subscribe("chat", watcher, false, /*join_leave=*/true);
  EXPECT_TRUE(b->join_leave());
  EXPECT_FALSE(a->join_leave());
  h.deliver(make_pub("chat", "1"));
  EXPECT_EQ(h.deliver(presence_event("chat", "join")), 1u);
  h.deliver(make_pub("chat", "2"));
  EXPECT_EQ(plain.seqs(), (std::vector<std::uint64_t>{1, 2}));
  ASSERT_EQ(watcher.got.size(), 3u);
  EXPECT_EQ(watcher.got[1].payload, "join");
  EXPECT_EQ(watcher.got[1].seq, 0u);
  EXPECT_EQ(watcher.got[2].seq, 2u);  // the event took no number
}

TEST(hub, presence_events_cost_nothing_where_nobody_asked) {
  hub h(0);
  recording_subscriber plain;
  auto a = h.subscribe("chat", plain);
  EXPECT_EQ(h.deliver(presence_event("chat", "join")), 0u);
  EXPECT_TRUE(plain.got.empty());
  recording_subscriber watcher;
  {
    auto b = h.subscribe("chat", watcher, false, true);
  }  // gone again: the channel's count of join/leave subscriptions goes back to 0
  EXPECT_EQ(h.deliver(presence_event("chat", "leave")), 0u);
}

TEST(hub, presence_events_held_back_while_buffering_come_after_go_live_without_seq) {
  hub h(0);
  recording_subscriber watcher;
  auto b = h.subscribe("chat", watcher, /*buffered=*/true, /*join_leave=*/true);
  h.deliver(presence_event("chat", "join"));
  EXPECT_TRUE(watcher.got.empty());
  h.go_live(*b, {}, "e", 0);
  ASSERT_EQ(watcher.got.size(), 1u);
  EXPECT_EQ(watcher.got[0].seq, 0u);
  h.deliver(make_pub("chat", "1"));
  EXPECT_EQ(watcher.got.back().seq, 1u);
}

}  // namespace
}  // namespace bc::core
