// bench/design/redis_pipeline.cpp: publishes through the Redis broker itself (no HTTP, no WebSocket), as fast
// as a window of publishes in flight allows, so that the Redis connection layer is what is measured: the
// pipelined EVALSHAs on the publish connection and, with --subscribe, every message coming back on the
// subscribe connection before its `ok`. Built against any commit's src/broker (only the public broker API is
// used), so the old and new layers run the same program (BENCHMARKS.md "Redis over TLS").
//
// usage: redis-pipeline URL [count 200000] [window 2000] [payload bytes 100] [subscribe 0|1] [rounds 3]
//        (env REDIS_TLS_CA_FILE for rediss://). Prints one line per round: publishes/s, broker CPU per
//        publish (whole process, getrusage), latency p50/p99 from publish() to its completion.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/redis_broker.hpp"

using namespace bc;
using clock_type = std::chrono::steady_clock;

namespace {

struct null_sink final : broker::delivery_sink {
  std::atomic<std::uint64_t> delivered{0};
  void deliver(core::message) override { delivered.fetch_add(1, std::memory_order_relaxed); }
  void deliver_gap(std::string, std::uint64_t, std::uint64_t) override {}
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL [count] [window] [payload] [subscribe] [rounds]\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const std::size_t count = argc > 2 ? std::stoul(argv[2]) : 200000;
  const std::size_t window = argc > 3 ? std::stoul(argv[3]) : 2000;
  const std::size_t payload = argc > 4 ? std::stoul(argv[4]) : 100;
  const bool subscribe = argc > 5 && std::string(argv[5]) == "1";
  const int rounds = argc > 6 ? std::stoi(argv[6]) : 3;

  null_sink sink;
  broker::redis_options opts;
  opts.max_in_flight = window * 2;
#ifndef NO_TLS_OPTIONS  // the old layer (before redis_link) has no TLS options
  if (const char* ca = std::getenv("REDIS_TLS_CA_FILE")) opts.tls.ca_file = ca;
#endif
  auto b = broker::make_redis_broker(sink, url, opts);
  b->start();
  const auto up_by = clock_type::now() + std::chrono::seconds(10);
  while (!b->healthy()) {
    if (clock_type::now() > up_by) {
      std::fprintf(stderr, "redis not up\n");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string channel = "bench";
  if (subscribe) {
    b->subscribe(channel);
    std::mutex m;
    std::condition_variable cv;
    bool ready = false;
    b->await_subscribed(channel, [&] {
      std::lock_guard lock(m);
      ready = true;
      cv.notify_all();
    });
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return ready; });
  }

  for (int round = 0; round < rounds; ++round) {
    std::mutex m;
    std::condition_variable cv;
    std::size_t in_flight = 0, done = 0, failed = 0;
    std::vector<std::chrono::nanoseconds> latency(count);
    const double cpu0 = cpu_seconds();
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < count; ++i) {
      {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return in_flight < window; });
        ++in_flight;
      }
      core::message msg;
      msg.id = "bench-" + std::to_string(i);
      msg.create_time_ms = 1767225600123;
      msg.channel = channel;
      msg.event = "ev";
      msg.payload = std::string(payload, 'x');
      const auto sent = clock_type::now();
      b->publish(std::move(msg), [&, i, sent](broker::publish_status s) {
        latency[i] = clock_type::now() - sent;
        std::lock_guard lock(m);
        --in_flight;
        ++done;
        if (s != broker::publish_status::ok) ++failed;
        cv.notify_all();
      });
    }
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done == count; });
    }
    const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    std::sort(latency.begin(), latency.end());
    auto pct = [&](double p) {
      return std::chrono::duration<double, std::micro>(latency[static_cast<std::size_t>(p * (count - 1))])
          .count();
    };
    std::printf(
        "round %d: %zu publishes in %.2f s = %.0f /s, %.2f us CPU/publish (process), p50 %.0f us, p99 %.0f "
        "us, "
        "%zu failed, %llu delivered\n",
        round, count, wall, static_cast<double>(count) / wall, cpu * 1e6 / static_cast<double>(count),
        pct(0.50), pct(0.99), failed, static_cast<unsigned long long>(sink.delivered.load()));
    std::fflush(stdout);
  }
  b->stop();
  return 0;
}
