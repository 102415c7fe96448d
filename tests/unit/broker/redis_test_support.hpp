#pragma once
// Test support for the Redis broker tests: a real redis-server child process on a free loopback port, a sink
// that records deliveries, and small waiting helpers. No mocks: every test talks to a real Redis.

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "broker/redis_envelope.hpp"
#include "broker/redis_options.hpp"
#include "broker/redis_scripts.hpp"
#include "core/message.hpp"

namespace bc::broker::redis_test {

using namespace std::chrono_literals;

// A free TCP port on 127.0.0.1 (the kernel's pick; released before redis-server binds it).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// Full path of redis-server from PATH, resolved before fork (the child only calls async-signal-safe
// functions).
inline std::string redis_server_path() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t at = 0; at <= dirs.size();) {
    const auto colon = std::min(dirs.find(':', at), dirs.size());
    const std::string candidate = dirs.substr(at, colon - at) + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    at = colon + 1;
  }
  throw std::runtime_error("redis-server is not installed (scripts/install-deps.sh installs it)");
}

inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A synchronous hiredis connection for checking Redis's side (PUBSUB NUMSUB, raw PUBLISH).
class redis_probe {
 public:
  explicit redis_probe(int port, const char* password = nullptr) {
    timeval tv{1, 0};
    c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c_ != nullptr && c_->err == 0) {
      redisSetTimeout(c_, tv);
      if (password != nullptr) freeReplyObject(redisCommand(c_, "AUTH %s", password));
    }
  }
  ~redis_probe() {
    if (c_ != nullptr) redisFree(c_);
  }
  bool ok() const { return c_ != nullptr && c_->err == 0; }

  // Subscribers of one Redis channel, or -1 when Redis does not answer.
  long long numsub(const std::string& channel) {
    if (!ok()) return -1;
    auto* r = static_cast<redisReply*>(redisCommand(c_, "PUBSUB NUMSUB %b", channel.data(), channel.size()));
    long long n = -1;
    if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 2) n = r->element[1]->integer;
    if (r != nullptr) freeReplyObject(r);
    return n;
  }
  // Any command; its reply as text (status, string or integer; an array's last element), empty when there is
  // none readable.
  std::string command(const std::vector<std::string>& args) {
    if (!ok()) return {};
    std::vector<const char*> argv;
    std::vector<size_t> len;
    for (const auto& a : args) {
      argv.push_back(a.data());
      len.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), len.data()));
    const redisReply* v = r;
    if (v != nullptr && v->type == REDIS_REPLY_ARRAY)
      v = v->elements > 0 ? v->element[v->elements - 1] : nullptr;
    std::string out;
    if (v != nullptr && v->type == REDIS_REPLY_INTEGER) out = std::to_string(v->integer);
    if (v != nullptr && v->str != nullptr) out.assign(v->str, v->len);
    if (r != nullptr) freeReplyObject(r);
    return out;
  }
  long long publish(const std::string& channel, const std::string& bytes) {
    if (!ok()) return -1;
    auto* r = static_cast<redisReply*>(
        redisCommand(c_, "PUBLISH %b %b", channel.data(), channel.size(), bytes.data(), bytes.size()));
    long long n = r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r != nullptr) freeReplyObject(r);
    return n;
  }

 private:
  redisContext* c_ = nullptr;
};

// redis-server on 127.0.0.1:port, no persistence, killed (SIGKILL) on destruction.
class redis_server {
 public:
  // `extra`: more redis-server options (TLS ports and files, for instance).
  explicit redis_server(int port = 0, std::string password = {}, std::vector<std::string> extra = {})
      : port_(port ? port : free_port()), password_(std::move(password)), extra_(std::move(extra)) {
    start();
  }
  ~redis_server() { kill(); }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  int port() const { return port_; }
  std::string url() const {
    return "redis://" + (password_.empty() ? "" : ":" + password_ + "@") +
           "127.0.0.1:" + std::to_string(port_);
  }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {
        "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",  "--save", "",
        "--appendonly", "no",     "--daemonize",         "no",     "--loglevel", "warning"};
    if (!password_.empty()) args.insert(args.end(), {"--requirepass", password_});
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string exe = redis_server_path();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Dies with the test process, even when that one is killed before its destructors run.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    const bool up = wait_until(
        [&] {
          redis_probe p(port_, password_.empty() ? nullptr : password_.c_str());
          return p.ok() && p.numsub("probe") >= 0;
        },
        10s);
    if (!up) {
      kill();
      throw std::runtime_error("redis-server (is it installed?) did not come up on port " +
                               std::to_string(port_));
    }
  }

  void kill() { signal_and_reap(SIGKILL); }
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

 private:
  void signal_and_reap(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int port_;
  std::string password_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// Records every message the broker delivers, in order. Thread-safe.
class recording_sink final : public delivery_sink {
 public:
  void deliver(core::message msg) override {
    std::lock_guard lock(m_);
    order_.push_back(msg.channel + " " + std::to_string(msg.offset));
    got_.push_back(std::make_shared<const core::message>(std::move(msg)));
    cv_.notify_all();
  }
  void deliver_gap(std::string channel, std::uint64_t last_offset, std::uint64_t count) override {
    std::lock_guard lock(m_);
    order_.push_back(channel + " gap " + std::to_string(last_offset) + "/" + std::to_string(count));
    gaps_.push_back({std::move(channel), last_offset, count});
    cv_.notify_all();
  }
  // Messages and gaps in delivery order: "<channel> <offset>", "<channel> gap <last offset>/<count>".
  std::vector<std::string> order() {
    std::lock_guard lock(m_);
    return order_;
  }
  // Until the messages delivered and the messages in gaps on `channel` add up to `n`.
  bool wait_accounted(const std::string& channel, std::size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] {
      std::size_t k = 0;
      for (const auto& m : got_) k += m->channel == channel ? 1 : 0;
      for (const auto& g : gaps_) k += g.channel == channel ? g.count : 0;
      return k >= n;
    });
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
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] { return got_.size() >= n; });
  }
  std::vector<std::shared_ptr<const core::message>> got() {
    std::lock_guard lock(m_);
    return got_;
  }
  std::size_t size() {
    std::lock_guard lock(m_);
    return got_.size();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const core::message>> got_;
  std::vector<gap> gaps_;
  std::vector<std::string> order_;
};

// Checks that the deliveries on `channel` (an order() log) account for offsets 1..n exactly once, in order:
// each message the next offset, each gap the next `count`. Empty when they do, else what is wrong.
inline std::string check_accounted(const std::vector<std::string>& order, const std::string& channel,
                                   std::uint64_t n, std::uint64_t* gap_messages = nullptr) {
  std::uint64_t next = 1, in_gaps = 0;
  const std::string head = channel + " ";
  for (const auto& e : order) {
    if (e.compare(0, head.size(), head) != 0) continue;
    const std::string rest = e.substr(head.size());
    if (rest.compare(0, 4, "gap ") == 0) {
      const auto slash = rest.find('/');
      const auto last = std::stoull(rest.substr(4, slash - 4));
      const auto count = std::stoull(rest.substr(slash + 1));
      if (last - count + 1 != next) return "gap " + rest + " where " + std::to_string(next) + " was next";
      next = last + 1;
      in_gaps += count;
    } else {
      if (std::stoull(rest) != next) return "offset " + rest + " where " + std::to_string(next) + " was next";
      ++next;
    }
  }
  if (gap_messages != nullptr) *gap_messages = in_gaps;
  if (next != n + 1) return "ends before " + std::to_string(next) + ", expected up to " + std::to_string(n);
  return {};
}

// Runs the broker's publish script directly, as a node would, over its own connection: a publisher that
// needs no node. `lost` sends the message to a Pub/Sub channel nobody listens to, so it takes an offset (and
// a place in the stream) but never reaches any node: a message lost on the way.
class script_publisher {
 public:
  // `epoch`: the one a channel without a position gets.
  explicit script_publisher(int port, std::string epoch = "testepoch000000",
                            std::string prefix = "broadcaster:")
      : epoch_(std::move(epoch)),
        probe_(port),
        prefix_(std::move(prefix)),
        sha_(probe_.command({"SCRIPT", "LOAD", redis_scripts::publish})) {}
  bool ok() { return probe_.ok() && sha_.size() == 40; }
  // The offset given, or -1.
  long long publish(const std::string& channel, const std::string& payload, std::size_t history_size,
                    bool lost = false, std::int64_t history_ttl_ms = 300000) {
    core::message m;
    m.id = "sp-" + std::to_string(++n_);
    m.create_time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    m.channel = channel;
    m.event = "ev";
    m.payload = payload;
    const std::string r =
        probe_.command({"EVALSHA", sha_, "2", redis_scripts::meta_key(prefix_, channel),
                        redis_scripts::stream_key(prefix_, channel),
                        lost ? prefix_ + "!nowhere" : prefix_ + channel, epoch_, std::to_string(history_size),
                        std::to_string(history_ttl_ms), "2592000000", encode_envelope_body(m)});
    return !r.empty() && r.find_first_not_of("0123456789") == std::string::npos ? std::stoll(r) : -1;
  }
  redis_probe& probe() { return probe_; }

 private:
  std::string epoch_;
  redis_probe probe_;
  std::string prefix_;
  std::string sha_;
  int n_ = 0;
};

inline core::message make_pub(const std::string& channel, const std::string& payload,
                              const std::string& event = "ev") {
  static std::atomic<int> n{0};
  core::message m;
  m.id = "id-" + std::to_string(++n);
  m.create_time_ms = 1767225600123;  // 2026-01-01T00:00:00.123Z
  m.channel = channel;
  m.event = event;
  m.payload = payload;
  return m;
}

// Publishes and waits for the answer (fails the test by returning nullopt-like `unavailable` on timeout).
inline std::optional<publish_status> publish_and_wait(broker& b, core::message pub,
                                                      std::chrono::milliseconds timeout = 5s) {
  auto done = std::make_shared<std::promise<publish_status>>();
  auto f = done->get_future();
  b.publish(std::move(pub), [done](publish_status s) { done->set_value(s); });
  if (f.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return f.get();
}

// Short timeouts so that failure tests run in well under a second each.
inline redis_options fast_options() {
  redis_options o;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  o.connect_timeout = 1000ms;
  o.publish_timeout = 500ms;
  o.heartbeat_interval = 100ms;
  return o;
}

// True in a sanitizer build (TSan, or ASan: a burst of 2,800 presence adds once took Redis and the node past
// 500 ms there on a loaded CI machine), which runs the node several times slower.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif

// fast_options() for tests of what the broker delivers rather than of its timeouts: in a sanitizer build on
// shared cores a burst of publishes can keep the broker thread (or Redis) busy past 500 ms, and a ping
// timeout would then drop a connection that is merely slow (messages lost on the way, which the test did not
// set out to cause). Tests that measure the timeouts use fast_options() itself.
inline redis_options contract_options() {
  redis_options o = fast_options();
  if (sanitized_build) o.publish_timeout = 3000ms;
  return o;
}

// contract_options() with every channel keeping `size` messages of history for `ttl`.
inline redis_options history_options(std::size_t size, std::chrono::seconds ttl = std::chrono::seconds(300)) {
  redis_options o = contract_options();
  core::channel_options c;
  c.history_size = size;
  c.history_ttl = ttl;
  o.channels = core::channel_rules(c, {});
  return o;
}

}  // namespace bc::broker::redis_test
