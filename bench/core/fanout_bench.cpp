// The fan-out core without the kernel: what one delivery costs in our own code (issue 3 asks for the hot
// path's cost above the kernel's share). A hub with N subscribers, each holding an outbound_queue as a
// WebSocket session does; one iteration delivers a publication and then does, for every subscriber, what a
// successful write does around the syscall: gather the queue into iovecs and consume what was "sent".
//
//   build/bench/fanout-bench                       Google Benchmark: ns per delivery, allocations per
//   delivery build/bench/fanout-bench --fixed N ROUNDS      ROUNDS fan-outs to N subscribers and nothing
//   else, for
//                                                  bench/core/callgrind.sh (instructions per delivery)
#include <benchmark/benchmark.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/hub.hpp"
#include "core/subscriber.hpp"
#include "net/outbound_queue.hpp"
#include "protocol/encoder.hpp"

// Every heap allocation in the process, to show that a delivery allocates nothing. GCC takes the replaced
// operators for the library's and warns about new/free pairs; they are malloc/free here on purpose.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<std::uint64_t> g_allocations{0};
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using namespace bc;

struct queue_subscriber final : core::subscriber {
  net::outbound_queue out;
  void deliver(const core::publication_ptr& pub, std::uint64_t seq) override {
    out.push_publication(pub, seq);
  }
  // What ws_session does around a write that took everything.
  std::size_t write() {
    iovec iov[64];
    const std::size_t n = out.gather(iov, 64);
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) bytes += iov[i].iov_len;
    out.consume(bytes);
    return bytes;
  }
};

core::publication_ptr make_publication(std::size_t payload_bytes) {
  core::message m;
  m.id = "01936f4e-7a3b-7c2d-8e9f-0a1b2c3d4e5f";
  m.create_time_ms = 1764300000000;
  m.channel = "room:lobby";
  m.event = "chat";
  m.payload = "{\"text\":\"" + std::string(payload_bytes, 'x') + "\"}";
  return protocol::encode_publication(std::move(m));
}

struct fanout {
  core::hub hub{0};
  std::vector<std::unique_ptr<queue_subscriber>> subs;
  std::vector<std::unique_ptr<core::subscription>> memberships;
  explicit fanout(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      subs.push_back(std::make_unique<queue_subscriber>());
      memberships.push_back(hub.subscribe("room:lobby", *subs.back()));
    }
  }
  // `burst` publications queue up before the writes, as under backlog (one write carries them all).
  std::size_t run(const core::publication_ptr& pub, int burst = 1) {
    for (int b = 0; b < burst; ++b) hub.deliver(pub);
    std::size_t bytes = 0;
    for (auto& s : subs) bytes += s->write();
    return bytes;
  }
};

void BM_encode_publication(benchmark::State& state) {
  const std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    core::message m;
    m.id = "01936f4e-7a3b-7c2d-8e9f-0a1b2c3d4e5f";
    m.channel = "room:lobby";
    m.event = "chat";
    m.payload = "{\"text\":\"" + payload + "\"}";
    benchmark::DoNotOptimize(protocol::encode_publication(std::move(m)));
  }
}
BENCHMARK(BM_encode_publication)->Arg(64)->Arg(1024);

void BM_fanout(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int burst = static_cast<int>(state.range(1));
  fanout f(n);
  const auto pub = make_publication(64);
  f.run(pub, burst);  // warm: each queue's vector reaches its steady capacity
  const auto allocs_before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(f.run(pub, burst));
  const auto deliveries = static_cast<double>(state.iterations()) * static_cast<double>(n) * burst;
  state.SetItemsProcessed(static_cast<std::int64_t>(deliveries));
  state.counters["allocs_per_delivery"] =
      static_cast<double>(g_allocations.load() - allocs_before) / deliveries;
  state.counters["ns_per_delivery"] =
      benchmark::Counter(deliveries, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
// {subscribers, publications per write}
BENCHMARK(BM_fanout)->Args({10, 1})->Args({10000, 1})->Args({10000, 3});

int fixed_run(std::size_t n, int rounds) {
  fanout f(n);
  const auto pub = make_publication(64);
  std::size_t bytes = 0;
  for (int r = 0; r < rounds; ++r) bytes += f.run(pub);
  std::printf("%d fan-outs to %zu subscribers, %zu bytes\n", rounds, n, bytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--fixed") == 0) {
    return fixed_run(std::strtoul(argv[2], nullptr, 10), std::atoi(argv[3]));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
