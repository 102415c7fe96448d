// The broker conformance suite: the contract of broker.hpp (`broker` and `delivery_sink`) written once and
// run against every broker implementation, each over its real backend (the Redis broker against a real
// redis-server on a free loopback port, one per test). A new broker feature is specified here first; every
// broker must then pass it. Tests talk to a broker only through `broker::broker` and a recording
// `delivery_sink`, and assert only what broker.hpp promises: where brokers legitimately differ (the memory
// broker delivers everything to its one node, Redis delivers by interest) a test states the weaker promise
// both keep ("a node without interest *need not* receive").
//
// Parts:
//   1. broker_conformance: every test, every broker (`all_kinds`).
//   2. multi_node_conformance: two nodes (two broker instances, two sinks) over one shared backend
//      (`shared_backend_kinds`). The memory broker has a single node by design, so it is not in it.
//   3. Implementation-specific, clearly marked: what one broker promises beyond broker.hpp (memory broker:
//      `overloaded` from a refusing sink; Redis broker: no delivery without interest).
//
// Adding a broker: write a `<impl>_kind` next to `memory_kind` (a `name`, a `backend` started per test, and
// `make` building one node's broker over it), add it to `all_kinds`, and to `shared_backend_kinds` when two
// instances can share that backend.

#include "broker/broker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "broker/memory_broker.hpp"
#include "broker/redis_broker.hpp"
#include "redis_test_support.hpp"

namespace bc::broker {

// So that gtest prints `ok`, not the enum's bytes (found by argument-dependent lookup, hence not in the
// unnamed namespace).
void PrintTo(publish_status s, std::ostream* os) {
  *os << (s == publish_status::ok ? "ok" : s == publish_status::unavailable ? "unavailable" : "overloaded");
}

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// ---- the brokers under test ----------------------------------------------------------------------------

struct memory_kind {
  static constexpr const char* name = "memory";
  struct backend {};  // nothing to share: one node only
  static std::unique_ptr<broker> make(backend&, delivery_sink& sink, core::channel_rules rules = {}) {
    return std::make_unique<memory_broker>(sink, std::move(rules));
  }
};

struct redis_kind {
  static constexpr const char* name = "redis";
  struct backend {
    redis_test::redis_server server;  // a real redis-server on a free loopback port
  };
  static std::unique_ptr<broker> make(backend& b, delivery_sink& sink, core::channel_rules rules = {}) {
    auto opts = redis_test::contract_options();
    opts.channels = std::move(rules);
    return make_redis_broker(sink, b.server.url(), std::move(opts));
  }
};

using all_kinds = ::testing::Types<memory_kind, redis_kind>;
using shared_backend_kinds = ::testing::Types<redis_kind>;

struct kind_name {
  template <class Kind>
  static std::string GetName(int) {
    return Kind::name;
  }
};

// ---- test support --------------------------------------------------------------------------------------

// Records every message a broker hands over, in order; can refuse try_deliver() like a node whose queues are
// full. Thread-safe.
class recording_sink final : public delivery_sink {
 public:
  void deliver(core::message msg) override {
    std::lock_guard lock(m_);
    ++ids_[msg.id];
    got_.push_back(std::move(msg));
    cv_.notify_all();
  }
  bool try_deliver(core::message msg) override {
    if (refuse_) {
      ++refused_;
      return false;
    }
    deliver(std::move(msg));
    return true;
  }
  void deliver_gap(std::string channel, std::uint64_t last_offset, std::uint64_t count) override {
    std::lock_guard lock(m_);
    gaps_.push_back({std::move(channel), last_offset, count});
    cv_.notify_all();
  }
  void deliver_presence_event(core::message event) override {
    std::lock_guard lock(m_);
    events_.push_back(std::move(event));
    cv_.notify_all();
  }
  void deliver_control(control_message msg) override {
    std::lock_guard lock(m_);
    controls_.push_back(std::move(msg));
    cv_.notify_all();
  }
  // The join / leave events on `channel`, in delivery order.
  std::vector<core::message> events(const std::string& channel) {
    std::lock_guard lock(m_);
    std::vector<core::message> out;
    for (const auto& e : events_) {
      if (e.channel == channel) out.push_back(e);
    }
    return out;
  }
  bool wait_events(const std::string& channel, std::size_t n, milliseconds timeout = 5s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] {
      return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(),
                                                    [&](auto& e) { return e.channel == channel; })) >= n;
    });
  }
  std::vector<control_message> controls() {
    std::lock_guard lock(m_);
    return controls_;
  }
  bool wait_controls(std::size_t n, milliseconds timeout = 5s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] { return controls_.size() >= n; });
  }
  struct gap {
    std::string channel;
    std::uint64_t last_offset;
    std::uint64_t count;
  };
  std::vector<gap> gaps() {
    std::lock_guard lock(m_);
    return gaps_;
  }
  void refuse(bool on) { refuse_ = on; }
  int refused() const { return refused_; }

  // The messages on `channel`, in delivery order.
  std::vector<core::message> on(const std::string& channel) {
    std::lock_guard lock(m_);
    std::vector<core::message> out;
    for (const auto& m : got_) {
      if (m.channel == channel) out.push_back(m);
    }
    return out;
  }
  // How many times message `id` was delivered.
  std::size_t count(const std::string& id) {
    std::lock_guard lock(m_);
    const auto it = ids_.find(id);
    return it == ids_.end() ? 0 : it->second;
  }
  std::size_t size() {
    std::lock_guard lock(m_);
    return got_.size();
  }
  // Waits until at least `n` messages arrived on `channel`.
  bool wait_for(const std::string& channel, std::size_t n, milliseconds timeout = 5s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] {
      return static_cast<std::size_t>(
                 std::count_if(got_.begin(), got_.end(), [&](auto& m) { return m.channel == channel; })) >= n;
    });
  }

 private:
  std::vector<gap> gaps_;
  std::vector<core::message> events_;
  std::vector<control_message> controls_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<core::message> got_;
  std::unordered_map<std::string, std::size_t> ids_;  // deliveries per message id
  std::atomic<bool> refuse_{false};
  std::atomic<int> refused_{0};
};

// The callbacks (`done` or `ready`) one test hands to a broker. Each counts its own calls. Once the broker
// has let go of every one of them (destroyed its last copy) none can be called again, so "exactly once" and
// "never" are checked after wait_released() without sleeping.
class call_log {
 public:
  explicit call_log(std::size_t n) : s_(std::make_shared<state>(n)) {
    token_ = std::shared_ptr<void>(nullptr, [s = s_](void*) {
      std::lock_guard lock(s->m);
      s->released = true;
      s->cv.notify_all();
    });
  }

  // `done` for publish number `i`; `check`, if any, runs at the answer and its result is kept (e.g. "is the
  // message in the sink already").
  std::function<void(publish_status)> done(std::size_t i, std::function<bool()> check = {}) {
    return [s = s_, t = token_, i, check = std::move(check)](publish_status st) {
      const bool checked = check ? check() : false;  // outside our lock: it may take the sink's
      std::lock_guard lock(s->m);
      ++s->calls.at(i);
      s->status.at(i) = st;
      s->checked.at(i) = checked;
      ++s->answered;
      s->cv.notify_all();
    };
  }
  std::function<void()> ready(std::size_t i) {
    return [s = s_, t = token_, i] {
      std::lock_guard lock(s->m);
      ++s->calls.at(i);
      ++s->answered;
      s->cv.notify_all();
    };
  }

  // Until at least `n` calls (of any callbacks) were made.
  bool wait_answered(std::size_t n, milliseconds timeout = 5s) {
    std::unique_lock lock(s_->m);
    return s_->cv.wait_for(lock, timeout, [&] { return s_->answered >= n; });
  }
  // Drops the log's own reference and waits until the broker dropped every callback. No callback can be made
  // from this log afterwards.
  bool wait_released(milliseconds timeout = 5s) {
    token_.reset();
    std::unique_lock lock(s_->m);
    return s_->cv.wait_for(lock, timeout, [&] { return s_->released; });
  }

  int calls(std::size_t i) {
    std::lock_guard lock(s_->m);
    return s_->calls.at(i);
  }
  publish_status status(std::size_t i) {
    std::lock_guard lock(s_->m);
    return s_->status.at(i);
  }
  bool checked(std::size_t i) {
    std::lock_guard lock(s_->m);
    return s_->checked.at(i);
  }
  // Callbacks called other than exactly once.
  std::size_t not_once() {
    std::lock_guard lock(s_->m);
    return static_cast<std::size_t>(
        std::count_if(s_->calls.begin(), s_->calls.end(), [](int c) { return c != 1; }));
  }
  std::size_t answered_with(publish_status st) {
    std::lock_guard lock(s_->m);
    std::size_t n = 0;
    for (std::size_t i = 0; i < s_->calls.size(); ++i) n += s_->calls[i] > 0 && s_->status[i] == st ? 1 : 0;
    return n;
  }

 private:
  struct state {
    explicit state(std::size_t n) : calls(n), status(n, publish_status::unavailable), checked(n) {}
    std::mutex m;
    std::condition_variable cv;
    std::vector<int> calls;
    std::vector<publish_status> status;  // the last answer
    std::vector<bool> checked;
    std::size_t answered = 0;
    bool released = false;
  };
  std::shared_ptr<state> s_;
  std::shared_ptr<void> token_;  // copied into every callback; its deleter runs when the last one is gone
};

const char* to_string(publish_status s) {
  switch (s) {
    case publish_status::ok:
      return "ok";
    case publish_status::unavailable:
      return "unavailable";
    case publish_status::overloaded:
      return "overloaded";
  }
  return "?";
}

core::message make_message(const std::string& channel, const std::string& id, std::string payload = "{}",
                           std::string event = "ev", std::int64_t create_time_ms = 1767225600123) {
  core::message m;
  m.id = id;
  m.create_time_ms = create_time_ms;
  m.channel = channel;
  m.event = std::move(event);
  m.payload = std::move(payload);
  return m;
}

bool wait_healthy(const broker& b, milliseconds timeout = 5s) {
  return redis_test::wait_until([&] { return b.healthy(); }, timeout);
}

// Declares this node's interest in `channel` the way the engine does (subscribe(), then await_subscribed()
// from the same thread) and waits until the broker says that messages published to it on any node reach this
// node: await_subscribed() returned true, or called back.
bool interest(broker& b, const std::string& channel, milliseconds timeout = 5s) {
  b.subscribe(channel);
  call_log log(1);
  return b.await_subscribed(channel, log.ready(0)) || log.wait_answered(1, timeout);
}

// Publishes and waits for the answer (nullopt: none in time). With `sink`, also records whether the message
// was in it when the answer came.
struct answer {
  publish_status status;
  bool in_sink_at_answer;
};
std::optional<answer> publish_and_wait(broker& b, core::message msg, recording_sink* sink = nullptr,
                                       milliseconds timeout = 5s) {
  call_log log(1);
  std::function<bool()> check;
  if (sink != nullptr) check = [sink, id = msg.id] { return sink->count(id) == 1; };
  b.publish(std::move(msg), log.done(0, std::move(check)));
  if (!log.wait_answered(1, timeout)) return std::nullopt;
  return answer{log.status(0), log.checked(0)};
}

std::optional<publish_status> status_of(broker& b, core::message msg) {
  const auto a = publish_and_wait(b, std::move(msg));
  return a ? std::optional(a->status) : std::nullopt;
}

void expect_same(const core::message& got, const core::message& sent) {
  EXPECT_EQ(got.id, sent.id);
  EXPECT_EQ(got.create_time_ms, sent.create_time_ms) << "id " << sent.id;
  EXPECT_EQ(got.channel, sent.channel) << "id " << sent.id;
  EXPECT_EQ(got.event, sent.event) << "id " << sent.id;
  EXPECT_EQ(got.payload.size(), sent.payload.size()) << "id " << sent.id;
  EXPECT_TRUE(got.payload == sent.payload) << "payload bytes differ, id " << sent.id;
}

// ---- presence and the server API (broker.hpp "Presence", "The server API") ---------------------------

core::presence_member member(const std::string& id, const std::string& user, const std::string& info = {}) {
  return {id, user, info};
}

// The answer to presence() / presence_stats() / control(), or nullopt when none came in time.
std::optional<presence_result> presence_of(broker& b, const std::string& channel, std::size_t max = 1000) {
  auto p = std::make_shared<std::promise<presence_result>>();
  auto f = p->get_future();
  b.presence(channel, max, [p](presence_result r) { p->set_value(std::move(r)); });
  if (f.wait_for(5s) != std::future_status::ready) return std::nullopt;
  return f.get();
}
std::optional<presence_stats_result> stats_of(broker& b, const std::string& channel) {
  auto p = std::make_shared<std::promise<presence_stats_result>>();
  auto f = p->get_future();
  b.presence_stats(channel, [p](presence_stats_result r) { p->set_value(std::move(r)); });
  if (f.wait_for(5s) != std::future_status::ready) return std::nullopt;
  return f.get();
}
std::optional<publish_status> control_of(broker& b, control_message msg) {
  auto p = std::make_shared<std::promise<publish_status>>();
  auto f = p->get_future();
  b.control(std::move(msg), [p](publish_status st) { p->set_value(st); });
  if (f.wait_for(5s) != std::future_status::ready) return std::nullopt;
  return f.get();
}
// "clients/users", or "unavailable" / "no answer".
std::string counts_of(broker& b, const std::string& channel) {
  const auto r = stats_of(b, channel);
  if (!r) return "no answer";
  if (r->status != publish_status::ok) return to_string(r->status);
  return std::to_string(r->counts.clients) + "/" + std::to_string(r->counts.users);
}
// The members as "client id user info" lines, sorted.
std::vector<std::string> members_of(const presence_result& r) {
  std::vector<std::string> out;
  for (const auto& m : r.clients) out.push_back(m.client_id + " " + m.user + " " + m.info);
  std::sort(out.begin(), out.end());
  return out;
}
std::string event_of(const core::message& e) {
  const char* kind = e.type == core::message::kind::join    ? "join"
                     : e.type == core::message::kind::leave ? "leave"
                                                            : "publication";
  return std::string(kind) + " " + e.id + " " + e.event + " " + e.payload;
}

// ==== 1. every broker ===================================================================================

template <class Kind>
class broker_conformance : public ::testing::Test {
 protected:
  // One node: its sink and its broker over the test's backend (the sink outlives the broker).
  struct node {
    recording_sink sink;
    std::unique_ptr<broker> b;
    explicit node(typename Kind::backend& be) : b(Kind::make(be, sink)) {}
  };

  void SetUp() override {
    a_ = make_node();
    a_->b->start();
    ASSERT_TRUE(wait_healthy(*a_->b)) << a_->b->describe();
  }
  std::unique_ptr<node> make_node() { return std::make_unique<node>(backend_); }
  broker& b() { return *a_->b; }
  recording_sink& sink() { return a_->sink; }

  typename Kind::backend backend_;  // first: outlives the nodes
  std::unique_ptr<node> a_;         // started and healthy
};

TYPED_TEST_SUITE(broker_conformance, all_kinds, kind_name);

TYPED_TEST(broker_conformance, is_healthy_once_started_and_always_describes_itself) {
  auto n = this->make_node();
  EXPECT_FALSE(n->b->describe().empty()) << "before start";
  n->b->start();
  // Redis: once connected. Polled with a deadline: healthy() has no notification.
  EXPECT_TRUE(wait_healthy(*n->b));
  EXPECT_FALSE(n->b->describe().empty());
  n->b->stop();
  EXPECT_FALSE(n->b->describe().empty()) << "after stop";
}

TYPED_TEST(broker_conformance, a_publish_answered_ok_has_reached_the_sink_of_a_node_with_interest) {
  // broker.hpp: `ok` means "the memory broker handed it to the sink; the Redis broker ... for a channel with
  // subscribers on this node, saw it come back": by the time `done(ok)` runs, this node's sink has it.
  ASSERT_TRUE(interest(this->b(), "news"));
  const auto sent = make_message("news", "0190a5d0-0000-7000-8000-000000000001", R"({"text":"hi"})");
  const auto a = publish_and_wait(this->b(), sent, &this->sink());
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->status, publish_status::ok) << to_string(a->status);
  EXPECT_TRUE(a->in_sink_at_answer);
  const auto got = this->sink().on("news");
  ASSERT_EQ(got.size(), 1u);
  expect_same(got[0], sent);
}

TYPED_TEST(broker_conformance, a_message_arrives_unchanged) {
  // A 60 KiB JSON string cycling through printable ASCII (quote and backslash replaced).
  std::string big(60 * 1024, '_');
  for (std::size_t i = 0; i < big.size(); ++i) {
    char c = static_cast<char>(' ' + i % 95);
    big[i] = c == '"' || c == '\\' ? '_' : c;
  }
  big.front() = '"';
  big.back() = '"';
  const std::string long_channel = std::string(127, 'c') + ":" + std::string(127, 'D');  // 255, the maximum
  std::string long_event;
  for (int i = 0; i < 255; ++i) long_event += "\xC3\xA9";  // 255 code points of "é"
  const std::vector<core::message> sent = {
      make_message("num", "0190a5d0-0000-7000-8000-000000000010",
                   R"({"big":123456789012345678901234567890,"neg":-9223372036854775809,)"
                   R"("max":1.7976931348623157e308,"tiny":5e-324,"f":-0.0,"e":1E+2})"),
      make_message(
          "esc", "0190a5d0-0000-7000-8000-000000000011",
          R"({"s":"quote \" backslash \\ slash \/ \b\f\n\r\t nul \u0000 pair \ud83d\ude00 \u00e9"})"),
      make_message("utf8", "0190a5d0-0000-7000-8000-000000000012",
                   "{\"s\":\"h\xC3\xA9llo w\xC3\xB6rld \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
                   "\xF0\x9F\x8E\x89\"}",
                   "\xC3\xBCn\xC3\xAF"
                   "c\xC3\xB8"
                   "d\xC3\xA9 \xE2\x9C\x93"),
      make_message("big", "0190a5d0-0000-7000-8000-000000000013", big),
      make_message("scalar", "0190a5d0-0000-7000-8000-000000000014", "0", "e", 0),
      make_message("scalar", "0190a5d0-0000-7000-8000-000000000015", "null", "e",
                   std::numeric_limits<std::int64_t>::max()),
      make_message("scalar", "0190a5d0-0000-7000-8000-000000000016", R"("")", "e", 253402300799999),
      make_message("scalar", "0190a5d0-0000-7000-8000-000000000017", "[]", long_event),
      make_message(long_channel, "0190a5d0-0000-7000-8000-000000000018", R"({"a":[1,{"b":[]}]})", "x"),
      make_message("chat:room-42_A", "0190a5d0-0000-7000-8000-000000000019", " [ true , false ] ", "x"),
  };
  for (const auto& m : sent) ASSERT_TRUE(interest(this->b(), m.channel)) << m.channel;
  for (const auto& m : sent) {
    const auto a = publish_and_wait(this->b(), m, &this->sink());
    ASSERT_TRUE(a.has_value()) << m.id;
    EXPECT_EQ(a->status, publish_status::ok) << m.id << ": " << to_string(a->status);
    EXPECT_TRUE(a->in_sink_at_answer) << m.id;
  }
  for (const auto& m : sent) {
    std::optional<core::message> got;
    for (auto& g : this->sink().on(m.channel)) {
      if (g.id == m.id) got = std::move(g);
    }
    ASSERT_TRUE(got.has_value()) << m.id;
    expect_same(*got, m);
    EXPECT_EQ(this->sink().count(m.id), 1u);
  }
}

TYPED_TEST(broker_conformance, publications_from_one_thread_to_one_channel_arrive_in_publish_order) {
  ASSERT_TRUE(interest(this->b(), "seq"));
  constexpr std::size_t n = 2000;
  call_log log(n);
  for (std::size_t i = 0; i < n; ++i) {
    this->b().publish(make_message("seq", "seq-" + std::to_string(i), std::to_string(i)), log.done(i));
  }
  ASSERT_TRUE(log.wait_released(10s)) << "every done was let go of";
  EXPECT_EQ(log.not_once(), 0u) << "done called exactly once each";
  EXPECT_EQ(log.answered_with(publish_status::ok), n);
  ASSERT_TRUE(this->sink().wait_for("seq", n));
  const auto got = this->sink().on("seq");
  ASSERT_EQ(got.size(), n);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i].payload, std::to_string(i)) << "at " << i;
}

TYPED_TEST(broker_conformance, each_thread_s_publications_to_a_shared_channel_arrive_in_its_order) {
  ASSERT_TRUE(interest(this->b(), "shared"));
  constexpr std::size_t threads = 4, per = 500;
  call_log log(threads * per);
  std::vector<std::thread> pubs;
  for (std::size_t t = 0; t < threads; ++t) {
    pubs.emplace_back([&, t] {
      for (std::size_t i = 0; i < per; ++i) {
        this->b().publish(
            make_message("shared", std::to_string(t) + "-" + std::to_string(i), std::to_string(i)),
            log.done(t * per + i));
      }
    });
  }
  for (auto& p : pubs) p.join();
  ASSERT_TRUE(log.wait_released(10s));
  EXPECT_EQ(log.not_once(), 0u);
  EXPECT_EQ(log.answered_with(publish_status::ok), threads * per);
  ASSERT_TRUE(this->sink().wait_for("shared", threads * per));
  std::vector<std::size_t> next(threads, 0);
  for (const auto& m : this->sink().on("shared")) {
    const std::size_t t = std::stoul(m.id.substr(0, m.id.find('-')));
    ASSERT_LT(t, threads);
    ASSERT_EQ(m.payload, std::to_string(next[t])) << "thread " << t;
    ++next[t];
  }
  for (std::size_t t = 0; t < threads; ++t) EXPECT_EQ(next[t], per) << "thread " << t;
}

TYPED_TEST(broker_conformance, done_is_called_exactly_once_for_every_publish_across_stop) {
  ASSERT_TRUE(interest(this->b(), "s"));
  constexpr std::size_t during = 3000, after = 100;
  call_log log(during + after);
  auto check = [this](std::size_t i) {
    return [this, i] { return this->sink().count("s-" + std::to_string(i)) == 1; };
  };
  std::thread publisher([&] {
    for (std::size_t i = 0; i < during; ++i) {
      this->b().publish(make_message("s", "s-" + std::to_string(i)), log.done(i, check(i)));
    }
  });
  log.wait_answered(100);  // stop while publishes are (probably) still in flight
  this->b().stop();
  publisher.join();
  for (std::size_t i = during; i < during + after; ++i) {
    this->b().publish(make_message("s", "s-" + std::to_string(i)), log.done(i, check(i)));
  }
  this->b().stop();  // twice: harmless
  ASSERT_TRUE(log.wait_released());
  EXPECT_EQ(log.not_once(), 0u) << "exactly once, never twice";
  for (std::size_t i = 0; i < during + after; ++i) {
    if (log.status(i) == publish_status::ok) {
      ASSERT_TRUE(log.checked(i)) << "answered ok, not in the sink: " << i;
    }
    EXPECT_LE(this->sink().count("s-" + std::to_string(i)), 1u);
  }
}

TYPED_TEST(broker_conformance, after_stop_healthy_tells_whether_a_publish_can_succeed) {
  // broker.hpp: healthy() is "true while publishes can succeed". After stop() nothing changes any more, so
  // the two must agree.
  ASSERT_TRUE(interest(this->b(), "late"));
  this->b().stop();
  const bool healthy = this->b().healthy();
  const auto a = publish_and_wait(this->b(), make_message("late", "late-1"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(healthy, a->status == publish_status::ok)
      << "healthy " << healthy << ", " << to_string(a->status);
}

// broker.hpp: after stop(), every publish answers `unavailable` (a node shutting down delivers nothing more).
TYPED_TEST(broker_conformance, a_publish_after_stop_is_answered_unavailable_and_not_delivered) {
  ASSERT_TRUE(interest(this->b(), "late"));
  this->b().stop();
  const auto a = publish_and_wait(this->b(), make_message("late", "late-2"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::unavailable) << to_string(a->status);
  EXPECT_EQ(this->sink().count("late-2"), 0u);
}

TYPED_TEST(broker_conformance, await_subscribed_calls_back_exactly_once_unless_it_returns_true) {
  // Subscribed, never subscribed, unsubscribed, a burst of fresh ones, and after stop(): in every case it
  // either returns true (ready now, and `ready` is never called) or calls `ready` exactly once, in time.
  std::vector<std::string> channels = {"w-subscribed", "w-never", "w-gone"};
  for (int i = 0; i < 100; ++i) channels.push_back("w-burst-" + std::to_string(i));
  auto& b = this->b();
  b.subscribe("w-subscribed");
  b.subscribe("w-gone");
  b.unsubscribe("w-gone");
  for (int i = 0; i < 100; ++i) b.subscribe("w-burst-" + std::to_string(i));

  call_log log(channels.size() + 2);
  std::vector<bool> returned(channels.size() + 2);
  for (std::size_t i = 0; i < channels.size(); ++i)
    returned[i] = b.await_subscribed(channels[i], log.ready(i));
  const auto live = static_cast<std::size_t>(
      std::count(returned.begin(), returned.begin() + static_cast<std::ptrdiff_t>(channels.size()), false));
  ASSERT_TRUE(log.wait_answered(live)) << "every `ready` is called, in time";
  b.stop();
  b.subscribe("w-stopped");
  returned[channels.size()] = b.await_subscribed("w-stopped", log.ready(channels.size()));
  returned[channels.size() + 1] = b.await_subscribed("w-never-2", log.ready(channels.size() + 1));

  ASSERT_TRUE(log.wait_released());
  for (std::size_t i = 0; i < returned.size(); ++i) {
    EXPECT_EQ(log.calls(i), returned[i] ? 0 : 1)
        << (i < channels.size() ? channels[i] : "after stop") << ": returned " << returned[i];
  }
}

TYPED_TEST(broker_conformance, unsubscribe_lifts_the_need_to_deliver_and_subscribe_again_restores_it) {
  // broker.hpp: interest is node-level, and "a broker that delivers everything may ignore it". So after
  // unsubscribe() a publish is still answered, and a node without interest *need not* receive it (the memory
  // broker, with its single node, does; the Redis broker does not: see the Redis-only part). If it does
  // receive it, then unchanged and once.
  auto& b = this->b();
  auto& sink = this->sink();
  ASSERT_TRUE(interest(b, "u"));
  auto a = publish_and_wait(b, make_message("u", "u-1"), &sink);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::ok);
  EXPECT_TRUE(a->in_sink_at_answer);

  b.unsubscribe("u");
  const auto without = make_message("u", "u-2", R"({"no":"interest"})");
  a = publish_and_wait(b, without, &sink);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::ok) << "a healthy broker takes a publish nobody here wants";
  for (const auto& m : sink.on("u")) {
    if (m.id == without.id) expect_same(m, without);
  }
  EXPECT_LE(sink.count(without.id), 1u);

  ASSERT_TRUE(interest(b, "u"));
  a = publish_and_wait(b, make_message("u", "u-3"), &sink);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::ok);
  EXPECT_TRUE(a->in_sink_at_answer) << "interest again, delivered again";
}

TYPED_TEST(broker_conformance, overloaded_means_refused_whole_and_delivered_nowhere) {
  // A sink that refuses try_deliver() (this node's queues are full). Whether a broker answers `overloaded`
  // then is its own business (the memory broker does; a message back from Redis goes through deliver(), which
  // cannot refuse), but the answers must mean what broker.hpp says.
  auto& sink = this->sink();
  ASSERT_TRUE(interest(this->b(), "full"));
  sink.refuse(true);
  constexpr std::size_t n = 20;
  call_log log(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = "full-" + std::to_string(i);
    this->b().publish(make_message("full", id), log.done(i, [&sink, id] { return sink.count(id) > 0; }));
  }
  ASSERT_TRUE(log.wait_released());
  EXPECT_EQ(log.not_once(), 0u);
  for (std::size_t i = 0; i < n; ++i) {
    const auto st = log.status(i);
    EXPECT_NE(st, publish_status::unavailable) << i << ": a healthy broker";
    if (st == publish_status::ok) {
      EXPECT_TRUE(log.checked(i)) << i << ": ok, so handed to the sink";
    } else if (st == publish_status::overloaded) {
      EXPECT_FALSE(log.checked(i)) << i << ": overloaded, yet delivered";
    }
  }
  sink.refuse(false);
  const auto a = publish_and_wait(this->b(), make_message("full", "full-after"), &sink);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::ok);
  EXPECT_TRUE(a->in_sink_at_answer);
  for (std::size_t i = 0; i < n; ++i) {
    const auto delivered = sink.count("full-" + std::to_string(i));
    EXPECT_EQ(delivered, log.status(i) == publish_status::ok ? 1u : 0u)
        << i << ": " << to_string(log.status(i));
  }
}

TYPED_TEST(broker_conformance, every_member_may_be_called_from_any_thread) {
  auto& b = this->b();
  constexpr std::size_t threads = 4, rounds = 50;
  call_log dones(threads * rounds), readies(threads * rounds);
  std::atomic<std::size_t> ready_now{0};
  std::vector<std::thread> ts;
  for (std::size_t t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::string metrics;
      for (std::size_t r = 0; r < rounds; ++r) {
        const std::string ch = "any-" + std::to_string(t) + "-" + std::to_string(r % 5);
        b.subscribe(ch);
        if (b.await_subscribed(ch, readies.ready(t * rounds + r))) ++ready_now;
        b.publish(make_message(ch, ch + "-" + std::to_string(r)), dones.done(t * rounds + r));
        if (r % 5 == 4) b.unsubscribe(ch);
        EXPECT_FALSE(b.describe().empty());
        (void)b.healthy();
        b.append_metrics(metrics);
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(dones.wait_released());
  ASSERT_TRUE(readies.wait_released());
  EXPECT_EQ(dones.not_once(), 0u);
  EXPECT_EQ(dones.answered_with(publish_status::ok), threads * rounds);
  std::size_t ready_calls = 0;
  for (std::size_t i = 0; i < threads * rounds; ++i)
    ready_calls += static_cast<std::size_t>(readies.calls(i));
  EXPECT_EQ(ready_calls + ready_now, threads * rounds) << "each await: true, or one call";
}

// ==== 1b. channel positions and history, every broker ====================================================
// broker.hpp: publish gives the channel's next offset (and the epoch) at the channel's ordering point;
// history() answers the position and, per the request, messages. The node keeps history for channels
// matching "h*" (10 messages, 300 s), none for the others.

template <class Kind>
class history_conformance : public ::testing::Test {
 protected:
  void SetUp() override {
    core::channel_rule keep;
    keep.pattern = "h*";
    keep.history_size = 10;
    keep.history_ttl = std::chrono::seconds(300);
    b_ = Kind::make(backend_, sink_, core::channel_rules({}, {keep}));
    b_->start();
    ASSERT_TRUE(wait_healthy(*b_)) << b_->describe();
  }
  broker& b() { return *b_; }
  recording_sink& sink() { return sink_; }
  // history() and its answer (nullopt: none in time).
  std::optional<history_result> history(const std::string& channel, std::size_t limit,
                                        std::optional<stream_position> since = std::nullopt) {
    std::mutex m;
    std::condition_variable cv;
    std::optional<history_result> got;
    b().history({channel, std::move(since), limit}, [&](history_result r) {
      std::lock_guard lock(m);
      got = std::move(r);
      cv.notify_all();
    });
    std::unique_lock lock(m);
    cv.wait_for(lock, 5s, [&] { return got.has_value(); });
    return got;
  }
  // Publishes n messages to `channel` (payloads "1".."n" after `from`), each answered ok.
  void publish_n(const std::string& channel, int n, int from = 0) {
    for (int i = from + 1; i <= from + n; ++i) {
      ASSERT_EQ(status_of(b(), make_message(channel, channel + "-" + std::to_string(i), std::to_string(i))),
                publish_status::ok);
    }
  }
  static std::vector<std::uint64_t> offsets(const history_result& r) {
    std::vector<std::uint64_t> out;
    for (const auto& m : r.messages) out.push_back(m.offset);
    return out;
  }
  static std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> out;
    for (auto o = from; o <= to; ++o) out.push_back(o);
    return out;
  }

  typename Kind::backend backend_;
  recording_sink sink_;
  std::unique_ptr<broker> b_;
};

TYPED_TEST_SUITE(history_conformance, all_kinds, kind_name);

TYPED_TEST(history_conformance, a_new_channel_has_a_position_that_its_first_publish_keeps) {
  const auto before = this->history("fresh", 0);
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(before->status, publish_status::ok);
  EXPECT_EQ(before->top.offset, 0u);
  ASSERT_FALSE(before->top.epoch.empty());
  EXPECT_TRUE(before->messages.empty());
  ASSERT_TRUE(interest(this->b(), "fresh"));
  this->publish_n("fresh", 1);
  ASSERT_TRUE(this->sink().wait_for("fresh", 1));
  EXPECT_EQ(this->sink().on("fresh").at(0).offset, 1u);
  EXPECT_EQ(this->sink().on("fresh").at(0).epoch, before->top.epoch);
  EXPECT_EQ(this->history("fresh", 0)->top, (stream_position{before->top.epoch, 1}));
}

TYPED_TEST(history_conformance, offsets_are_contiguous_per_channel_and_reach_the_sink_in_order) {
  ASSERT_TRUE(interest(this->b(), "one"));
  ASSERT_TRUE(interest(this->b(), "two"));
  for (int i = 1; i <= 20; ++i) {
    const std::string ch = i % 3 == 0 ? "two" : "one";
    ASSERT_EQ(status_of(this->b(), make_message(ch, "c-" + std::to_string(i))), publish_status::ok);
  }
  for (const std::string ch : {"one", "two"}) {
    const auto got = this->sink().on(ch);
    ASSERT_FALSE(got.empty());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].offset, i + 1) << ch;
      EXPECT_EQ(got[i].epoch, got[0].epoch) << ch;
    }
    EXPECT_EQ(this->history(ch, 0)->top.offset, got.size()) << ch;
  }
}

TYPED_TEST(history_conformance, without_since_the_newest_messages_oldest_first_as_published) {
  this->publish_n("h1", 15);
  auto r = this->history("h1", 5);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, publish_status::ok);
  EXPECT_EQ(r->top.offset, 15u);
  EXPECT_EQ(this->offsets(*r), this->range(11, 15));
  EXPECT_FALSE(r->complete) << "no since: false";
  for (const auto& m : r->messages) {
    expect_same(m, make_message("h1", "h1-" + std::to_string(m.offset), std::to_string(m.offset)));
    EXPECT_EQ(m.epoch, r->top.epoch);
  }
  EXPECT_EQ(this->offsets(*this->history("h1", 100)), this->range(6, 15)) << "history_size 10";
}

TYPED_TEST(history_conformance, since_a_position_of_the_same_epoch_the_first_messages_after_it) {
  this->publish_n("h2", 15);
  const std::string epoch = this->history("h2", 0)->top.epoch;
  auto r = this->history("h2", 10, stream_position{epoch, 12});
  EXPECT_EQ(this->offsets(*r), this->range(13, 15));
  EXPECT_TRUE(r->complete);
  r = this->history("h2", 2, stream_position{epoch, 12});
  EXPECT_EQ(this->offsets(*r), this->range(13, 14));
  EXPECT_FALSE(r->complete) << "limit reached";
  r = this->history("h2", 10, stream_position{epoch, 15});
  EXPECT_TRUE(r->messages.empty());
  EXPECT_TRUE(r->complete) << "nothing missed";
  r = this->history("h2", 100, stream_position{epoch, 2});
  EXPECT_FALSE(r->complete) << "3..5 are no longer kept";
  EXPECT_EQ(this->offsets(*r), this->range(6, 15)) << "what is left";
}

TYPED_TEST(history_conformance, since_another_epoch_no_messages_and_not_complete) {
  this->publish_n("h3", 3);
  const auto r = this->history("h3", 10, stream_position{"not-the-epoch", 1});
  ASSERT_EQ(r->status, publish_status::ok);
  EXPECT_TRUE(r->messages.empty());
  EXPECT_FALSE(r->complete);
  EXPECT_EQ(r->top.offset, 3u);
  EXPECT_NE(r->top.epoch, "not-the-epoch");
}

TYPED_TEST(history_conformance, without_history_positions_still_advance_and_nothing_is_kept) {
  this->publish_n("plain", 4);
  const auto now = this->history("plain", 10);
  EXPECT_EQ(now->top.offset, 4u);
  EXPECT_TRUE(now->messages.empty());
  EXPECT_FALSE(this->history("plain", 10, stream_position{now->top.epoch, 2})->complete);
  EXPECT_TRUE(this->history("plain", 10, stream_position{now->top.epoch, 4})->complete) << "nothing missed";
}

// ---- presence and the server API, every broker ----------------------------------------------------------

template <class Kind>
class presence_conformance : public broker_conformance<Kind> {};
TYPED_TEST_SUITE(presence_conformance, all_kinds, kind_name);

TYPED_TEST(presence_conformance, presence_lists_members_with_user_and_info_and_stats_count_users_once) {
  auto& b = this->b();
  b.add_presence("room", member("c1", "alice", R"({"n":1})"), false);
  b.add_presence("room", member("c2", "alice", R"({"n":1})"), false);
  b.add_presence("room", member("c3", "bob"), false);
  b.add_presence("other", member("c4", "carol"), false);
  const auto all = presence_of(b, "room");
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->status, publish_status::ok);
  EXPECT_EQ(members_of(*all),
            (std::vector<std::string>{R"(c1 alice {"n":1})", R"(c2 alice {"n":1})", "c3 bob "}));
  EXPECT_FALSE(all->truncated);
  EXPECT_EQ(counts_of(b, "room"), "3/2");
  EXPECT_EQ(counts_of(b, "other"), "1/1");
  EXPECT_EQ(counts_of(b, "empty"), "0/0");
  EXPECT_TRUE(presence_of(b, "empty")->clients.empty());

  b.remove_presence("room", member("c2", "alice"), false);
  EXPECT_EQ(counts_of(b, "room"), "2/2");
  b.remove_presence("room", member("c1", "alice"), false);
  b.remove_presence("room", member("nobody", "alice"), false);  // never there: changes nothing
  EXPECT_EQ(counts_of(b, "room"), "1/1");
  EXPECT_EQ(members_of(*presence_of(b, "room")), std::vector<std::string>{"c3 bob "});
  // Adding a member twice records it once.
  b.add_presence("room", member("c3", "bob"), false);
  EXPECT_EQ(counts_of(b, "room"), "1/1");
}

TYPED_TEST(presence_conformance, a_presence_answer_is_capped_and_says_so) {
  auto& b = this->b();
  for (int i = 0; i < 5; ++i) b.add_presence("big", member("c" + std::to_string(i), "u"), false);
  const auto capped = presence_of(b, "big", 3);
  ASSERT_TRUE(capped.has_value());
  EXPECT_EQ(capped->clients.size(), 3u);
  EXPECT_TRUE(capped->truncated);
  const auto whole = presence_of(b, "big", 5);
  EXPECT_EQ(whole->clients.size(), 5u);
  EXPECT_FALSE(whole->truncated);
  EXPECT_EQ(counts_of(b, "big"), "5/1") << "counts are never capped";
}

TYPED_TEST(presence_conformance, join_and_leave_reach_a_node_with_interest_only_when_announced) {
  auto& b = this->b();
  ASSERT_TRUE(interest(b, "jl"));
  b.add_presence("jl", member("quiet", "q"), false);
  b.add_presence("jl", member("loud", "alice", R"(["i"])"), true);
  ASSERT_TRUE(this->sink().wait_events("jl", 1));
  b.remove_presence("jl", member("quiet", "q"), false);
  b.remove_presence("jl", member("loud", "alice", R"(["i"])"), true);
  ASSERT_TRUE(this->sink().wait_events("jl", 2));
  // In order, and the quiet member's (sent before each of them, on the same path) never came.
  std::vector<std::string> got;
  for (const auto& e : this->sink().events("jl")) got.push_back(event_of(e));
  EXPECT_EQ(got, (std::vector<std::string>{R"(join loud alice ["i"])", R"(leave loud alice ["i"])"}));
  EXPECT_TRUE(this->sink().on("jl").empty()) << "no publication";
}

TYPED_TEST(presence_conformance, join_and_leave_take_no_offset) {
  auto& b = this->b();
  ASSERT_TRUE(interest(b, "off"));
  EXPECT_EQ(status_of(b, make_message("off", "o-1")), publish_status::ok);
  b.add_presence("off", member("c1", "u"), true);
  ASSERT_TRUE(this->sink().wait_events("off", 1));
  EXPECT_EQ(status_of(b, make_message("off", "o-2")), publish_status::ok);
  b.remove_presence("off", member("c1", "u"), true);
  ASSERT_TRUE(this->sink().wait_events("off", 2));
  EXPECT_EQ(status_of(b, make_message("off", "o-3")), publish_status::ok);
  ASSERT_TRUE(this->sink().wait_for("off", 3));
  std::vector<std::uint64_t> offsets;
  for (const auto& m : this->sink().on("off")) offsets.push_back(m.offset);
  EXPECT_EQ(offsets, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_TRUE(this->sink().gaps().empty());
}

TYPED_TEST(presence_conformance, a_control_message_reaches_this_node_s_sink) {
  auto& b = this->b();
  EXPECT_EQ(control_of(b, {control_message::kind::disconnect_user, "alice", {}}), publish_status::ok);
  EXPECT_EQ(control_of(b, {control_message::kind::unsubscribe_user, "bob", "chat:1"}), publish_status::ok);
  ASSERT_TRUE(this->sink().wait_controls(2));
  const auto got = this->sink().controls();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].what, control_message::kind::disconnect_user);
  EXPECT_EQ(got[0].user, "alice");
  EXPECT_EQ(got[1].what, control_message::kind::unsubscribe_user);
  EXPECT_EQ(got[1].user, "bob");
  EXPECT_EQ(got[1].channel, "chat:1");
}

TYPED_TEST(presence_conformance, presence_members_may_be_called_from_any_thread) {
  // Each client's add and remove come from one thread (as from its connection's); reads and control calls
  // run alongside. What is left is what each thread added and did not remove.
  auto& b = this->b();
  constexpr int threads = 4, members = 20;
  std::atomic<int> answers{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < members; ++i) {
        const auto m =
            member("t" + std::to_string(t) + "-" + std::to_string(i), "user-" + std::to_string(i % 3));
        b.add_presence("shared", m, i % 2 == 0);
        if (i % 2 == 1) b.remove_presence("shared", m, true);
        b.presence_stats("shared", [&](presence_stats_result) { ++answers; });
        b.presence("shared", 5, [&](presence_result) { ++answers; });
      }
      b.control({control_message::kind::disconnect_user, "u" + std::to_string(t), {}},
                [&](publish_status) { ++answers; });
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(redis_test::wait_until([&] { return answers.load() == threads * (2 * members + 1); }, 5s));
  EXPECT_EQ(counts_of(b, "shared"), std::to_string(threads * members / 2) + "/3");
  EXPECT_TRUE(this->sink().wait_controls(threads));
}

TYPED_TEST(presence_conformance, after_stop_presence_and_control_answer_unavailable) {
  auto& b = this->b();
  b.add_presence("s", member("c1", "u"), true);
  b.stop();
  EXPECT_EQ(counts_of(b, "s"), "unavailable");
  EXPECT_EQ(presence_of(b, "s")->status, publish_status::unavailable);
  EXPECT_EQ(control_of(b, {control_message::kind::disconnect_user, "u", {}}), publish_status::unavailable);
  b.add_presence("s", member("c2", "u"), true);  // ignored, silently
  b.remove_presence("s", member("c1", "u"), true);
  EXPECT_TRUE(this->sink().controls().empty());
}

// ==== 2. several nodes sharing one backend ==============================================================
// Two broker instances, each with its own sink, over the same backend: what "every node" means in broker.hpp.
// The memory broker cannot take part: it has a single node by design.

template <class Kind>
class multi_node_conformance : public broker_conformance<Kind> {
 protected:
  void SetUp() override {
    broker_conformance<Kind>::SetUp();
    if (this->HasFatalFailure()) return;
    c_ = this->make_node();
    c_->b->start();
    ASSERT_TRUE(wait_healthy(*c_->b)) << c_->b->describe();
  }
  broker& other() { return *c_->b; }
  recording_sink& other_sink() { return c_->sink; }

  std::unique_ptr<typename broker_conformance<Kind>::node> c_;  // the second node
};

TYPED_TEST_SUITE(multi_node_conformance, shared_backend_kinds, kind_name);

TYPED_TEST(multi_node_conformance, a_publish_reaches_every_node_with_interest_unchanged) {
  ASSERT_TRUE(interest(this->b(), "room"));
  ASSERT_TRUE(interest(this->other(), "room"));
  const auto sent = make_message("room", "0190a5d0-0000-7000-8000-000000000100", R"({"from":"a","n":1e400})",
                                 "\xE2\x9C\x93");
  const auto a = publish_and_wait(this->b(), sent, &this->sink());
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->status, publish_status::ok);
  EXPECT_TRUE(a->in_sink_at_answer);
  ASSERT_TRUE(this->other_sink().wait_for("room", 1));
  expect_same(this->other_sink().on("room").at(0), sent);
  expect_same(this->sink().on("room").at(0), sent);
}

TYPED_TEST(multi_node_conformance, once_await_subscribed_is_ready_publishes_from_another_node_arrive) {
  // broker.hpp: "once it is sent, messages published to `channel` on any node must reach this node". The
  // publishing node has no interest in these channels; each publish goes out the moment `ready` says so.
  constexpr std::size_t n = 50;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string ch = "fresh-" + std::to_string(i);
    ASSERT_TRUE(interest(this->other(), ch));
    const auto a = publish_and_wait(this->b(), make_message(ch, ch));
    ASSERT_TRUE(a.has_value());
    ASSERT_EQ(a->status, publish_status::ok);
  }
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_TRUE(this->other_sink().wait_for("fresh-" + std::to_string(i), 1)) << "fresh-" << i << " missed";
  }
}

TYPED_TEST(multi_node_conformance, publications_from_one_thread_arrive_in_publish_order_on_every_node) {
  ASSERT_TRUE(interest(this->b(), "seq"));
  ASSERT_TRUE(interest(this->other(), "seq"));
  constexpr std::size_t n = 2000;
  call_log log(n);
  for (std::size_t i = 0; i < n; ++i) {
    this->b().publish(make_message("seq", "seq-" + std::to_string(i), std::to_string(i)), log.done(i));
  }
  ASSERT_TRUE(log.wait_released(10s));
  EXPECT_EQ(log.not_once(), 0u);
  EXPECT_EQ(log.answered_with(publish_status::ok), n);
  for (auto* sink : {&this->sink(), &this->other_sink()}) {
    ASSERT_TRUE(sink->wait_for("seq", n, 10s));
    const auto got = sink->on("seq");
    ASSERT_EQ(got.size(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i].payload, std::to_string(i)) << "at " << i;
  }
}

TYPED_TEST(multi_node_conformance, every_node_sees_the_same_offset_and_epoch_for_the_same_message) {
  // broker.hpp: the channel's next offset is given once, at the channel's ordering point.
  ASSERT_TRUE(interest(this->b(), "pos"));
  ASSERT_TRUE(interest(this->other(), "pos"));
  constexpr std::size_t n = 200;
  call_log log(n);
  for (std::size_t i = 0; i < n; ++i) {
    broker& from = i % 2 == 0 ? this->b() : this->other();
    from.publish(make_message("pos", "pos-" + std::to_string(i)), log.done(i));
  }
  ASSERT_TRUE(log.wait_released(10s));
  EXPECT_EQ(log.answered_with(publish_status::ok), n);
  ASSERT_TRUE(this->sink().wait_for("pos", n, 10s));
  ASSERT_TRUE(this->other_sink().wait_for("pos", n, 10s));
  const auto here = this->sink().on("pos"), there = this->other_sink().on("pos");
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(here[i].offset, i + 1);
    ASSERT_EQ(there[i].offset, i + 1);
    ASSERT_EQ(here[i].id, there[i].id) << "offset " << i + 1;
    ASSERT_EQ(here[i].epoch, there[i].epoch);
    ASSERT_FALSE(here[i].epoch.empty());
  }
}

TYPED_TEST(multi_node_conformance, two_nodes_publishing_to_one_channel_each_keep_their_order_everywhere) {
  ASSERT_TRUE(interest(this->b(), "both"));
  ASSERT_TRUE(interest(this->other(), "both"));
  constexpr std::size_t per = 1000;
  call_log log(2 * per);
  std::vector<std::thread> pubs;
  for (std::size_t t = 0; t < 2; ++t) {
    pubs.emplace_back([&, t] {
      broker& from = t == 0 ? this->b() : this->other();
      for (std::size_t i = 0; i < per; ++i) {
        from.publish(make_message("both", std::to_string(t) + "-" + std::to_string(i), std::to_string(i)),
                     log.done(t * per + i));
      }
    });
  }
  for (auto& p : pubs) p.join();
  ASSERT_TRUE(log.wait_released(10s));
  EXPECT_EQ(log.not_once(), 0u);
  EXPECT_EQ(log.answered_with(publish_status::ok), 2 * per);
  for (auto* sink : {&this->sink(), &this->other_sink()}) {
    ASSERT_TRUE(sink->wait_for("both", 2 * per, 10s));
    std::size_t next[2] = {0, 0};
    for (const auto& m : sink->on("both")) {
      const std::size_t t = m.id[0] == '0' ? 0 : 1;
      ASSERT_EQ(m.payload, std::to_string(next[t])) << "from node " << t;
      ++next[t];
    }
    EXPECT_EQ(next[0], per);
    EXPECT_EQ(next[1], per);
  }
}

TYPED_TEST(multi_node_conformance, presence_counts_the_members_of_every_node) {
  auto &a = this->b(), &c = this->other();
  a.add_presence("p", member("a1", "alice"), false);
  a.add_presence("p", member("a2", "bob", "1"), false);
  c.add_presence("p", member("c1", "alice", R"("x")"), false);
  // Each node's writes are ordered before its own reads, not before the other's: wait for them.
  ASSERT_TRUE(redis_test::wait_until([&] { return counts_of(a, "p") == "3/2"; }, 5s)) << counts_of(a, "p");
  EXPECT_EQ(counts_of(c, "p"), "3/2");
  const std::vector<std::string> all{"a1 alice ", "a2 bob 1", R"(c1 alice "x")"};
  EXPECT_EQ(members_of(*presence_of(a, "p")), all);
  EXPECT_EQ(members_of(*presence_of(c, "p")), all);
  c.remove_presence("p", member("c1", "alice"), false);
  ASSERT_TRUE(redis_test::wait_until([&] { return counts_of(a, "p") == "2/2"; }, 5s)) << counts_of(a, "p");
  a.remove_presence("p", member("a1", "alice"), false);
  EXPECT_EQ(counts_of(a, "p"), "1/1");
  EXPECT_EQ(members_of(*presence_of(c, "p")), std::vector<std::string>{"a2 bob 1"});
}

TYPED_TEST(multi_node_conformance, join_and_leave_reach_every_node_with_interest) {
  auto &a = this->b(), &c = this->other();
  ASSERT_TRUE(interest(a, "jl"));
  ASSERT_TRUE(interest(c, "jl"));
  a.add_presence("jl", member("a1", "alice", "{}"), true);
  c.add_presence("jl", member("c1", "carol"), true);
  a.remove_presence("jl", member("a1", "alice", "{}"), true);
  for (auto* sink : {&this->sink(), &this->other_sink()}) {
    ASSERT_TRUE(sink->wait_events("jl", 3));
    std::vector<std::string> got;
    for (const auto& e : sink->events("jl")) got.push_back(event_of(e));
    // a1's join and leave in order; c1's join somewhere (another node: not ordered with a's).
    got.erase(std::remove(got.begin(), got.end(), "join c1 carol "), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"join a1 alice {}", "leave a1 alice {}"}));
  }
}

TYPED_TEST(multi_node_conformance, a_control_message_reaches_every_node) {
  EXPECT_EQ(control_of(this->b(), {control_message::kind::unsubscribe_user, "u", "ch"}), publish_status::ok);
  for (auto* sink : {&this->sink(), &this->other_sink()}) {
    ASSERT_TRUE(sink->wait_controls(1));
    EXPECT_EQ(sink->controls().at(0).user, "u");
    EXPECT_EQ(sink->controls().at(0).channel, "ch");
  }
}

// ==== 3a. memory broker only ============================================================================

TEST(memory_broker_only, a_refusing_sink_makes_a_publish_answer_overloaded_and_delivers_nothing) {
  // The embedded broker hands a publication to try_deliver(); a full node refuses it and the publisher is
  // told to slow down. (The Redis broker never answers `overloaded`: what comes back from Redis goes through
  // deliver(), which cannot refuse.)
  recording_sink sink;
  memory_broker b(sink);
  b.start();
  sink.refuse(true);
  const auto a = publish_and_wait(b, make_message("m", "m-1"), &sink);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::overloaded) << to_string(a->status);
  EXPECT_EQ(sink.size(), 0u);
  EXPECT_EQ(sink.refused(), 1);
  sink.refuse(false);
  const auto again = publish_and_wait(b, make_message("m", "m-2"), &sink);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, publish_status::ok);
  EXPECT_EQ(sink.size(), 1u);
}

TEST(memory_broker_only, delivers_everything_to_its_one_node_whatever_the_interest) {
  // Why the shared unsubscribe test only says "need not receive": a single node is every node with interest.
  recording_sink sink;
  memory_broker b(sink);
  b.start();
  b.subscribe("x");
  b.unsubscribe("x");
  const auto a = publish_and_wait(b, make_message("never-subscribed", "m-3"), &sink);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status, publish_status::ok);
  EXPECT_TRUE(a->in_sink_at_answer);
}

// ==== 3b. Redis broker only =============================================================================

TEST(redis_broker_only, a_node_without_interest_receives_nothing) {
  // redis_broker.hpp, beyond broker.hpp: "A node subscribes in Redis only to channels with local interest".
  // One Redis is one shard, so one subscribe connection per node: once the later marker is in, the earlier
  // message would have been too. Redis's own PUBSUB NUMSUB tells when the UNSUBSCRIBE took effect.
  redis_test::redis_server redis;
  recording_sink pub_sink, sub_sink;
  auto pub = make_redis_broker(pub_sink, redis.url(), redis_test::contract_options());
  auto sub = make_redis_broker(sub_sink, redis.url(), redis_test::contract_options());
  pub->start();
  sub->start();
  ASSERT_TRUE(wait_healthy(*pub) && wait_healthy(*sub));
  ASSERT_TRUE(interest(*sub, "gone"));
  ASSERT_TRUE(interest(*sub, "marker"));
  EXPECT_EQ(status_of(*pub, make_message("gone", "r-1")), publish_status::ok);
  ASSERT_TRUE(sub_sink.wait_for("gone", 1));

  sub->unsubscribe("gone");
  ASSERT_TRUE(redis_test::wait_until(
      [&] { return redis_test::redis_probe(redis.port()).numsub("broadcaster:gone") == 0; }, 5s));
  EXPECT_EQ(status_of(*pub, make_message("gone", "r-2")), publish_status::ok);
  EXPECT_EQ(status_of(*pub, make_message("marker", "r-3")), publish_status::ok);
  ASSERT_TRUE(sub_sink.wait_for("marker", 1));
  EXPECT_EQ(sub_sink.count("r-2"), 0u);
  EXPECT_EQ(pub_sink.size(), 0u) << "the publishing node never had interest";
}

}  // namespace
}  // namespace bc::broker
