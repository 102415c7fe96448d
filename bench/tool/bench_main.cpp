// broadcaster-bench: opens N WebSocket subscribers over K channels on Broadcaster, Nchan or Socket.IO,
// publishes over REST at a target rate (or as fast as a bounded number in flight allows) and reports delivery
// latency, deliveries/s, loss, seq gaps, connect+subscribe rate, and the server's memory and CPU from /proc.
// With --sub-ports and one --server-pid per port it measures several nodes sharing a broker: the subscribers
// are spread over the nodes, publishing goes to --port, and CPU and latency are also reported per node.
// Prints a live progress line on stderr, then a human table and one JSON line on stdout.
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_options.hpp"
#include "load_worker.hpp"
#include "proc_stats.hpp"

using namespace bc::bench;

namespace {

const char* usage =
    "usage: broadcaster-bench --port P [options]\n"
    "  --target broadcaster|nchan|socketio   protocol of the server (default broadcaster)\n"
    "  --host H --port P                     server address (loopback only)\n"
    "  --server-pid PID                      sample RSS and CPU of this process tree from /proc; repeat it\n"
    "                                        for several nodes, in the order of --sub-ports\n"
    "  --sub-ports P1,P2,..                  subscribers spread over these ports (nodes): subscriber i "
    "opens\n"
    "                                        P[(i / K) mod N], so every channel has subscribers on every "
    "node;\n"
    "                                        --port stays the publish target (default: --port only)\n"
    "  --broker-pid PID                      an external broker (redis-server): its CPU is reported apart\n"
    "  --connections N --channels K          subscribers, spread round-robin over K channels\n"
    "  --rate R --duration S                 publishes/s (0 = max speed) for S seconds (0 = no publishing)\n"
    "  --inflight M                          REST publisher keep-alive connections = publishes in flight\n"
    "  --idle S                              hold the connections idle S seconds before publishing\n"
    "  --drain S                             wait up to S seconds for acks and deliveries afterwards\n"
    "  --threads T --sources S --source-first A --connect-concurrency C --connect-timeout S\n"
    "  --payload-bytes B --jwt-secret S --api-key K --base-path /broadcaster\n"
    "  --label NAME --json-out FILE --check --no-progress\n"
    "  --deflate                             subscribers offer permessage-deflate (RFC 7692) and inflate\n"
    "                                        compressed messages; wire bytes per delivery are reported\n"
    "  --payload-words                       pad payloads with varied words and numbers, not 'x's\n"
    "  --storm N --storm-at S --storm-spread S --storm-timeout S\n"
    "                                        reconnect storm: the last N subscribers (on channels of their\n"
    "                                        own) drop their connections S seconds into publishing and\n"
    "                                        reconnect spread over --storm-spread s (default 1); reports "
    "the\n"
    "                                        time until all are subscribed again and the other subscribers'\n"
    "                                        latency before/during/after\n"
    "  --join-leave --distinct-users         Broadcaster presence: subscribe with joinLeave (join/leave\n"
    "                                        received are counted as notifications); user u<i> per "
    "subscriber\n";

bench_options parse(int argc, char** argv) {
  bench_options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "missing value for " << a << "\n" << usage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--target")
      o.proto.target = val();
    else if (a == "--host")
      o.proto.host = val();
    else if (a == "--port")
      o.proto.port = std::stoi(val());
    else if (a == "--base-path")
      o.proto.base_path = val();
    else if (a == "--jwt-secret")
      o.proto.jwt_secret = val();
    else if (a == "--api-key")
      o.proto.api_key = val();
    else if (a == "--channels")
      o.proto.channels = std::stoi(val());
    else if (a == "--server-pid")
      o.server_pids.push_back(std::stoi(val()));
    else if (a == "--sub-ports") {
      std::stringstream ss(val());
      for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) o.sub_ports.push_back(std::stoi(item));
    } else if (a == "--broker-pid")
      o.broker_pid = std::stoi(val());
    else if (a == "--connections")
      o.connections = std::stoi(val());
    else if (a == "--threads")
      o.threads = std::stoi(val());
    else if (a == "--sources")
      o.sources = std::stoi(val());
    else if (a == "--source-first")
      o.source_first = std::stoi(val());
    else if (a == "--connect-concurrency")
      o.connect_concurrency = std::stoi(val());
    else if (a == "--connect-timeout")
      o.connect_timeout = std::stod(val());
    else if (a == "--idle")
      o.idle = std::stod(val());
    else if (a == "--rate")
      o.rate = std::stod(val());
    else if (a == "--duration")
      o.duration = std::stod(val());
    else if (a == "--inflight")
      o.inflight = std::stoi(val());
    else if (a == "--drain")
      o.drain = std::stod(val());
    else if (a == "--payload-bytes")
      o.payload_bytes = std::stoi(val());
    else if (a == "--label")
      o.label = val();
    else if (a == "--json-out")
      o.json_out = val();
    else if (a == "--check")
      o.check = true;
    else if (a == "--deflate")
      o.deflate = true;
    else if (a == "--payload-words")
      o.payload_words = true;
    else if (a == "--join-leave")
      o.proto.join_leave = true;
    else if (a == "--distinct-users")
      o.proto.distinct_users = true;
    else if (a == "--storm")
      o.storm = std::stoi(val());
    else if (a == "--storm-at")
      o.storm_at = std::stod(val());
    else if (a == "--storm-spread")
      o.storm_spread = std::stod(val());
    else if (a == "--storm-timeout")
      o.storm_timeout = std::stod(val());
    else if (a == "--no-progress")
      o.progress = false;
    else if (a == "-h" || a == "--help") {
      std::cout << usage;
      std::exit(0);
    } else {
      std::cerr << "unknown option " << a << "\n" << usage;
      std::exit(2);
    }
  }
  if (o.proto.port <= 0) {
    std::cerr << "--port is required\n" << usage;
    std::exit(2);
  }
  if (o.proto.host.rfind("127.", 0) != 0) {
    std::cerr << "only loopback targets (127.0.0.0/8) are allowed\n";
    std::exit(2);
  }
  if (o.node_count() > bench_options::max_nodes) {
    std::cerr << "at most " << bench_options::max_nodes << " --sub-ports\n";
    std::exit(2);
  }
  for (int p : o.sub_ports)
    if (p <= 0) {
      std::cerr << "bad port in --sub-ports\n";
      std::exit(2);
    }
  if (o.server_pids.size() > 1 && static_cast<int>(o.server_pids.size()) != o.node_count()) {
    std::cerr << "several --server-pid need one per --sub-ports entry, in the same order\n";
    std::exit(2);
  }
  o.threads = std::max(1, o.threads);
  o.sources = std::max(1, o.sources);
  o.proto.channels = std::max(1, o.proto.channels);
  o.inflight = std::max(1, o.inflight);
  if (o.storm > 0) {
    if (o.storm >= o.connections || o.duration <= o.storm_at) {
      std::cerr << "--storm needs fewer storm subscribers than --connections (the rest receive the load) and "
                   "--duration beyond --storm-at\n";
      std::exit(2);
    }
    // Channels K..2K-1 are the storm subscribers': tokens exist for them, nobody publishes to them.
    o.published_channels = o.proto.channels;
    o.proto.channels *= 2;
  }
  return o;
}

struct totals {
  std::uint64_t opened = 0, upgraded = 0, subscribed = 0, failed = 0, closed = 0;
  std::uint64_t received = 0, gaps = 0, out_of_order = 0, last_subscribe_us = 0, last_delivery_us = 0;
  std::uint64_t notifications = 0, wire_bytes = 0, compressed = 0, deflate_agreed = 0;
  std::uint64_t pub_sent = 0, pub_acked = 0, pub_errors = 0, pub_reconnects = 0, expected = 0, pub_behind = 0;
  std::uint64_t storm_resubscribed = 0, storm_retries = 0, last_storm_sub_us = 0;
  int pub_inflight = 0;
  bool connect_done = true;
  std::array<std::uint64_t, bench_options::max_nodes> subscribed_by_node{}, received_by_node{};
};

totals sum(const std::vector<std::unique_ptr<load_worker>>& ws) {
  totals t;
  for (const auto& w : ws) {
    const auto& c = w->counters();
    auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    t.opened += r(c.opened);
    t.upgraded += r(c.upgraded);
    t.subscribed += r(c.subscribed);
    t.failed += r(c.failed);
    t.closed += r(c.closed);
    t.received += r(c.received);
    t.gaps += r(c.gaps);
    t.out_of_order += r(c.out_of_order);
    t.notifications += r(c.notifications);
    t.wire_bytes += r(c.wire_bytes);
    t.compressed += r(c.compressed);
    t.deflate_agreed += r(c.deflate_agreed);
    t.last_subscribe_us = std::max(t.last_subscribe_us, r(c.last_subscribe_us));
    t.last_delivery_us = std::max(t.last_delivery_us, r(c.last_delivery_us));
    t.pub_sent += r(c.pub_sent);
    t.pub_acked += r(c.pub_acked);
    t.pub_errors += r(c.pub_errors);
    t.pub_reconnects += r(c.pub_reconnects);
    t.expected += r(c.expected);
    t.pub_behind += r(c.pub_behind);
    t.pub_inflight += c.pub_inflight.load(std::memory_order_relaxed);
    t.storm_resubscribed += r(c.storm_resubscribed);
    t.storm_retries += r(c.storm_retries);
    t.last_storm_sub_us = std::max(t.last_storm_sub_us, r(c.last_storm_sub_us));
    for (int n = 0; n < bench_options::max_nodes; ++n) {
      t.subscribed_by_node[static_cast<std::size_t>(n)] +=
          r(c.subscribed_by_node[static_cast<std::size_t>(n)]);
      t.received_by_node[static_cast<std::size_t>(n)] += r(c.received_by_node[static_cast<std::size_t>(n)]);
    }
    t.connect_done = t.connect_done && c.connect_done.load();
  }
  return t;
}

void merge_all(const std::vector<std::unique_ptr<load_worker>>& ws, latency_histogram& h) {
  for (const auto& w : ws) h.merge(w->histogram());
}

void merge_node(const std::vector<std::unique_ptr<load_worker>>& ws, int node, latency_histogram& h) {
  for (const auto& w : ws)
    if (const auto* nh = w->node_histogram(node)) h.merge(*nh);
}

// One sample per --server-pid (a node each) and their sum.
struct nodes_sample {
  std::vector<proc_sample> node;
  proc_sample total;
};

nodes_sample sample_nodes(const bench_options& o, bool fds) {
  nodes_sample s;
  for (int pid : o.server_pids) {
    s.node.push_back(sample_tree(pid, fds));
    s.total.cpu_seconds += s.node.back().cpu_seconds;
    s.total.wait_seconds += s.node.back().wait_seconds;
    s.total.rss_kib += s.node.back().rss_kib;
    s.total.open_fds += s.node.back().open_fds;
    s.total.processes += s.node.back().processes;
  }
  return s;
}

std::string fmt_us(std::uint64_t us) {
  char b[32];
  if (us < 1000)
    std::snprintf(b, sizeof b, "%llu µs", static_cast<unsigned long long>(us));
  else if (us < 1000000)
    std::snprintf(b, sizeof b, "%.2f ms", static_cast<double>(us) / 1e3);
  else
    std::snprintf(b, sizeof b, "%.2f s", static_cast<double>(us) / 1e6);
  return b;
}

volatile sig_atomic_t g_interrupted = 0;

}  // namespace

int main(int argc, char** argv) {
  const bench_options opt = parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, [](int) { g_interrupted = 1; });
  signal(SIGTERM, [](int) { g_interrupted = 1; });
  std::unique_ptr<peer_protocol> proto;
  try {
    proto = make_protocol(opt.proto);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  run_state state(opt.proto.channels);
  const bool tty = isatty(2) != 0;
  auto sample = [&](bool fds = false) { return sample_nodes(opt, fds); };
  auto broker_sample = [&] { return opt.broker_pid ? sample_tree(opt.broker_pid) : proc_sample{}; };
  // Run-queue wait of this process's threads (from schedstat, like the server's).
  auto self_wait = [] { return sample_tree(getpid()).wait_seconds; };
  const bool has_pid = !opt.server_pids.empty();
  const int nodes = opt.node_count();

  const nodes_sample before_n = sample();
  const proc_sample& before = before_n.total;
  std::vector<std::unique_ptr<load_worker>> workers;
  int first = 0;
  // With a storm and several threads, the first thread keeps the publishers and the steady subscribers and
  // the others the storm's: the client's own reconnect work then does not hold back the load it measures.
  const bool storm_apart = opt.storm > 0 && opt.threads > 1;
  for (int t = 0; t < opt.threads; ++t) {
    int n = opt.connections / opt.threads + (t < opt.connections % opt.threads ? 1 : 0);
    if (storm_apart) {
      const int others = opt.threads - 1, k = t - 1;
      n = t == 0 ? opt.connections - opt.storm : opt.storm / others + (k < opt.storm % others ? 1 : 0);
    }
    workers.push_back(
        std::make_unique<load_worker>(t, opt, *proto, state, first, n, t == 0 && opt.duration > 0));
    first += n;
  }
  const std::uint64_t t_start = now_us();
  const double client_cpu_start = self_cpu_seconds();
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

  // Progress: one line per second (overwritten in place on a terminal).
  std::uint64_t last_received = 0, last_tick = t_start;
  const char* phase_names[] = {"connect", "idle", "publish", "drain", "done"};
  auto progress = [&](bool final_line = false) {
    if (!opt.progress) return;
    const auto t = sum(workers);
    const auto now = now_us();
    const double dt = static_cast<double>(now - last_tick) / 1e6;
    const double rate = dt > 0 ? static_cast<double>(t.received - last_received) / dt : 0;
    last_received = t.received;
    last_tick = now;
    latency_histogram h;
    merge_all(workers, h);
    std::fprintf(stderr,
                 "%s[%6.1fs] %-7s conns %llu/%d subscribed (%llu failed, %llu closed)  pubs %llu acked  "
                 "%.0f msg/s  p99 %s%s",
                 tty ? "\r" : "", static_cast<double>(now - t_start) / 1e6,
                 phase_names[static_cast<int>(state.phase.load())],
                 static_cast<unsigned long long>(t.subscribed), opt.connections,
                 static_cast<unsigned long long>(t.failed), static_cast<unsigned long long>(t.closed),
                 static_cast<unsigned long long>(t.pub_acked), rate, fmt_us(h.quantile(0.99)).c_str(),
                 tty && !final_line ? "   " : "\n");
  };
  auto wait_until = [&](std::uint64_t deadline_us, auto&& done) {
    std::uint64_t next_print = now_us() + 1000000;
    while (!g_interrupted && now_us() < deadline_us && !done()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (now_us() >= next_print) {
        progress();
        next_print += 1000000;
      }
    }
  };

  // Phase 1: connect and subscribe.
  wait_until(t_start + static_cast<std::uint64_t>(opt.connect_timeout * 1e6),
             [&] { return sum(workers).connect_done; });
  totals after_connect = sum(workers);
  // Server CPU of the connect phase (handshakes, auth, subscribe): a fairer figure than the rate when the
  // protocols need different numbers of round trips (Nchan subscribes by URL, Broadcaster sends auth and
  // subscribe after the handshake).
  const double connect_cpu_s = has_pid ? sample().total.cpu_seconds - before.cpu_seconds : 0;
  // The client's own CPU over the same phase: on a shared machine, a client that costs as much as the server
  // per connection halves the rate either could reach alone.
  const double client_connect_cpu_s = self_cpu_seconds() - client_cpu_start;
  const double us_per_connect =
      after_connect.subscribed ? connect_cpu_s * 1e6 / static_cast<double>(after_connect.subscribed) : 0;
  const std::uint64_t connect_end =
      after_connect.last_subscribe_us ? after_connect.last_subscribe_us : now_us();
  const double connect_s = static_cast<double>(connect_end - t_start) / 1e6;

  // Phase 2: idle hold, then the memory sample.
  state.phase.store(run_phase::idle);
  if (opt.idle > 0) wait_until(now_us() + static_cast<std::uint64_t>(opt.idle * 1e6), [] { return false; });
  const nodes_sample idle_n = sample(true);
  const proc_sample& idle_sample = idle_n.total;
  const std::uint64_t subscribed_idle = sum(workers).subscribed - sum(workers).closed;

  // Phase 3: publish, then drain until every acknowledged publish is delivered (or the drain bound).
  const nodes_sample cpu0_n = sample();
  const proc_sample& cpu0 = cpu0_n.total;
  const proc_sample broker0 = broker_sample();
  const double self0 = self_cpu_seconds();
  const double self_wait0 = self_wait();
  const double machine0 = machine_busy_seconds();
  const std::uint64_t pub_start = now_us();
  std::uint64_t window_end = pub_start;
  // The storm, from the main thread: the signal, then the wait until every storm subscriber is back. The
  // server's CPU is sampled at the signal and at the end; the load's own share is estimated from the rate
  // before the storm.
  std::uint64_t storm_start = 0, storm_end = 0;
  double storm_cpu_s = 0, load_cpu_per_delivery = 0;
  auto run_storm = [&] {
    wait_until(pub_start + static_cast<std::uint64_t>(opt.storm_at * 1e6), [] { return false; });
    const double cpu_a = sample().total.cpu_seconds;
    storm_start = now_us();
    std::uint64_t before = 0;
    for (const auto& w : workers) before += w->storm_histogram(0).total();
    load_cpu_per_delivery = before ? (cpu_a - cpu0.cpu_seconds) / static_cast<double>(before) : 0;
    state.storm_start_us.store(storm_start);
    state.storm_phase.store(1, std::memory_order_release);
    wait_until(storm_start + static_cast<std::uint64_t>(opt.storm_timeout * 1e6),
               [&] { return sum(workers).storm_resubscribed >= static_cast<std::uint64_t>(opt.storm); });
    storm_end = now_us();
    storm_cpu_s = sample().total.cpu_seconds - cpu_a;
    state.storm_phase.store(2, std::memory_order_release);
  };
  if (opt.duration > 0) {
    state.publish_start_us.store(pub_start);
    state.phase.store(run_phase::publish);
    if (opt.storm > 0) run_storm();
    wait_until(pub_start + static_cast<std::uint64_t>(opt.duration * 1e6), [] { return false; });
    state.phase.store(run_phase::drain);
    wait_until(now_us() + static_cast<std::uint64_t>(opt.drain * 1e6), [&] {
      const auto t = sum(workers);
      return t.pub_inflight == 0 && t.received >= t.expected;
    });
    window_end = now_us();
  }
  const nodes_sample cpu1_n = sample();
  const proc_sample& cpu1 = cpu1_n.total;
  const proc_sample broker1 = broker_sample();
  const double self1 = self_cpu_seconds();
  const double self_wait1 = self_wait();
  const double machine1 = machine_busy_seconds();
  progress(true);
  state.phase.store(run_phase::done);
  for (auto& th : threads) th.join();
  const totals t = sum(workers);
  latency_histogram h;
  merge_all(workers, h);
  std::string first_error;
  for (auto& w : workers)
    if (first_error.empty()) first_error = w->first_error();

  // Report.
  const double window_s = static_cast<double>(window_end - pub_start) / 1e6;
  const double delivery_s =
      t.last_delivery_us > pub_start ? static_cast<double>(t.last_delivery_us - pub_start) / 1e6 : window_s;
  const double server_cpu = cpu1.cpu_seconds - cpu0.cpu_seconds;
  const double self_cpu = self1 - self0;
  const double broker_cpu_s = broker1.cpu_seconds - broker0.cpu_seconds;
  // Seconds the threads were runnable but waited for a core over the window: on a busy machine this, not the
  // server, is where latency comes from.
  const double server_wait = cpu1.wait_seconds - cpu0.wait_seconds;
  const double broker_wait = broker1.wait_seconds - broker0.wait_seconds;
  const double client_wait = self_wait1 - self_wait0;
  // What other processes on the machine used over the window (compiles of other sessions, ...): when this is
  // large, throughput and latency are contaminated; CPU per delivery much less so.
  const double others_cpu = std::max(0.0, (machine1 - machine0) - server_cpu - self_cpu - broker_cpu_s);
  double load1 = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load1) != 1) load1 = 0;
    std::fclose(f);
  }
  const std::uint64_t loss = t.expected > t.received ? t.expected - t.received : 0;
  const double kib_per_conn =
      subscribed_idle ? (static_cast<double>(idle_sample.rss_kib) - static_cast<double>(before.rss_kib)) /
                            static_cast<double>(subscribed_idle)
                      : 0;
  const double deliveries_per_s = delivery_s > 0 ? static_cast<double>(t.received) / delivery_s : 0;
  const double us_per_delivery = t.received ? server_cpu * 1e6 / static_cast<double>(t.received) : 0;
  const double us_per_publish = t.pub_acked ? server_cpu * 1e6 / static_cast<double>(t.pub_acked) : 0;
  const double wire_bytes_per_delivery =
      t.received ? static_cast<double>(t.wire_bytes) / static_cast<double>(t.received) : 0;
  const double pubs_per_s = window_s > 0 ? static_cast<double>(t.pub_acked) / std::max(window_s, 1e-9) : 0;
  const double pubs_per_s_offered = opt.duration > 0 ? static_cast<double>(t.pub_sent) / opt.duration : 0;

  std::printf(
      "\n== broadcaster-bench  target=%s  label=%s  connections=%d channels=%d rate=%g duration=%gs "
      "inflight=%d\n",
      opt.proto.target.c_str(), opt.label.c_str(), opt.connections, opt.proto.channels, opt.rate,
      opt.duration, opt.inflight);
  std::printf("  connect+subscribe   %llu subscribed, %llu failed in %.2f s  (%.0f /s)",
              static_cast<unsigned long long>(after_connect.subscribed),
              static_cast<unsigned long long>(after_connect.failed), connect_s,
              connect_s > 0 ? static_cast<double>(after_connect.subscribed) / connect_s : 0);
  if (has_pid) std::printf(", server CPU %.3f s -> %.1f µs/connection", connect_cpu_s, us_per_connect);
  std::printf(", client CPU %.3f s", client_connect_cpu_s);
  std::printf("\n");
  if (t.notifications)
    std::printf("  notifications       %llu join/leave received\n",
                static_cast<unsigned long long>(t.notifications));
  if (has_pid)
    std::printf(
        "  server memory       RSS %llu KiB before, %llu KiB idle with %llu subscribed -> %.2f "
        "KiB/connection, "
        "%llu fds\n",
        static_cast<unsigned long long>(before.rss_kib), static_cast<unsigned long long>(idle_sample.rss_kib),
        static_cast<unsigned long long>(subscribed_idle), kib_per_conn,
        static_cast<unsigned long long>(idle_sample.open_fds));
  if (opt.duration > 0) {
    std::printf(
        "  publish             %llu sent, %llu acked, %llu errors, %llu reconnects  (%.0f /s acked over %.2f "
        "s)%s\n",
        static_cast<unsigned long long>(t.pub_sent), static_cast<unsigned long long>(t.pub_acked),
        static_cast<unsigned long long>(t.pub_errors), static_cast<unsigned long long>(t.pub_reconnects),
        pubs_per_s, window_s,
        t.pub_behind ? ("  [" + std::to_string(t.pub_behind) +
                        " left > 1 ms after their slot: client scheduling or in-flight bound]")
                           .c_str()
                     : "");
    std::printf(
        "  deliveries          %llu received / %llu expected: loss %llu, seq gaps %s, out of order %llu, "
        "closed by server %llu\n",
        static_cast<unsigned long long>(t.received), static_cast<unsigned long long>(t.expected),
        static_cast<unsigned long long>(loss), proto->has_seq() ? std::to_string(t.gaps).c_str() : "n/a",
        static_cast<unsigned long long>(t.out_of_order), static_cast<unsigned long long>(t.closed));
    std::printf("  throughput          %.0f deliveries/s (first publish to last delivery, %.2f s)\n",
                deliveries_per_s, delivery_s);
    std::printf(
        "  wire                %.1f bytes/delivery received by subscribers; %llu of %llu compressed, "
        "deflate agreed on %llu connections\n",
        wire_bytes_per_delivery, static_cast<unsigned long long>(t.compressed),
        static_cast<unsigned long long>(t.received), static_cast<unsigned long long>(t.deflate_agreed));
    std::printf("  latency             p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
                fmt_us(h.quantile(0.5)).c_str(), fmt_us(h.quantile(0.9)).c_str(),
                fmt_us(h.quantile(0.99)).c_str(), fmt_us(h.quantile(0.999)).c_str(), fmt_us(h.max()).c_str());
    if (has_pid) {
      std::printf("  server CPU          %.3f s over the window -> %.3f µs/delivery, %.2f µs/publish%s\n",
                  server_cpu, us_per_delivery, us_per_publish,
                  opt.server_pids.size() > 1 ? " (all nodes)" : "");
      char broker_part[64] = "";
      if (opt.broker_pid) std::snprintf(broker_part, sizeof broker_part, ", broker %.3f s", broker_wait);
      std::printf(
          "  waiting for a CPU   server threads %.3f s, client %.3f s%s over the window (run queue)\n",
          server_wait, client_wait, broker_part);
    }
    if (nodes > 1) {
      const bool per_node_cpu = static_cast<int>(opt.server_pids.size()) == nodes;
      for (int n = 0; n < nodes; ++n) {
        const auto i = static_cast<std::size_t>(n);
        latency_histogram nh;
        merge_node(workers, n, nh);
        const double cpu = per_node_cpu ? cpu1_n.node[i].cpu_seconds - cpu0_n.node[i].cpu_seconds : 0;
        std::printf("  node %d  port %-5d %s %5llu subscribed, %9llu deliveries, p50 %s p99 %s", n,
                    opt.node_port(n), opt.node_port(n) == opt.proto.port ? "(publish)" : "         ",
                    static_cast<unsigned long long>(t.subscribed_by_node[i]),
                    static_cast<unsigned long long>(t.received_by_node[i]), fmt_us(nh.quantile(0.5)).c_str(),
                    fmt_us(nh.quantile(0.99)).c_str());
        if (per_node_cpu)
          std::printf(", CPU %.3f s -> %.3f µs/delivery of its own, waited %.3f s", cpu,
                      t.received_by_node[i] ? cpu * 1e6 / static_cast<double>(t.received_by_node[i]) : 0,
                      cpu1_n.node[i].wait_seconds - cpu0_n.node[i].wait_seconds);
        std::printf("\n");
      }
    }
    if (opt.broker_pid)
      std::printf("  broker CPU          %.3f s over the window (%.0f%% of one core; pid %d)\n", broker_cpu_s,
                  window_s > 0 ? 100 * broker_cpu_s / window_s : 0, opt.broker_pid);
    std::printf("  client CPU          %.3f s over the window (%.0f%% of one core)\n", self_cpu,
                window_s > 0 ? 100 * self_cpu / window_s : 0);
    std::printf("  other processes     %.3f s of CPU over the window (%.2f cores), load average %.2f\n",
                others_cpu, window_s > 0 ? others_cpu / window_s : 0, load1);
  }
  // Storm: time from the drop to the last resubscription (or to the timeout), and the server CPU above what
  // the deliveries made meanwhile cost at the CPU per delivery before the storm.
  const bool storm_done = opt.storm > 0 && t.storm_resubscribed >= static_cast<std::uint64_t>(opt.storm);
  const double storm_s = storm_start == 0 ? 0
                         : storm_done     ? static_cast<double>(t.last_storm_sub_us - storm_start) / 1e6
                                          : static_cast<double>(storm_end - storm_start) / 1e6;
  const double storm_window_s = static_cast<double>(storm_end - storm_start) / 1e6;
  latency_histogram storm_h[3];
  for (int p = 0; p < 3; ++p)
    for (const auto& w : workers) storm_h[p].merge(w->storm_histogram(p));
  const double storm_extra_cpu =
      std::max(0.0, storm_cpu_s - load_cpu_per_delivery * static_cast<double>(storm_h[1].total()));
  const double us_per_reconnect = opt.storm > 0 ? storm_extra_cpu * 1e6 / opt.storm : 0;
  if (opt.storm > 0) {
    std::printf(
        "  storm               %d dropped at %.1f s, %llu subscribed again in %.3f s%s (%llu retries); "
        "server "
        "CPU %.3f s over %.3f s, %.3f s beyond its deliveries -> %.1f µs/reconnect (disconnect included)\n",
        opt.storm, opt.storm_at, static_cast<unsigned long long>(t.storm_resubscribed), storm_s,
        storm_done ? "" : " (TIMED OUT)", static_cast<unsigned long long>(t.storm_retries), storm_cpu_s,
        storm_window_s, storm_extra_cpu, us_per_reconnect);
    const char* names[] = {"before", "during", "after"};
    for (int p = 0; p < 3; ++p)
      std::printf("  latency %-6s      %llu deliveries  p50 %s  p99 %s  p99.9 %s  max %s\n", names[p],
                  static_cast<unsigned long long>(storm_h[p].total()),
                  fmt_us(storm_h[p].quantile(0.5)).c_str(), fmt_us(storm_h[p].quantile(0.99)).c_str(),
                  fmt_us(storm_h[p].quantile(0.999)).c_str(), fmt_us(storm_h[p].max()).c_str());
  }
  if (!first_error.empty()) std::printf("  first error         %s\n", first_error.c_str());

  std::ostringstream js;
  js.setf(std::ios::fixed);
  js.precision(3);
  js << "{\"tool\":\"broadcaster-bench\",\"target\":\"" << opt.proto.target << "\",\"label\":\"" << opt.label
     << "\",\"connections\":" << opt.connections << ",\"channels\":" << opt.proto.channels
     << ",\"rate\":" << opt.rate << ",\"duration\":" << opt.duration << ",\"inflight\":" << opt.inflight
     << ",\"threads\":" << opt.threads << ",\"subscribed\":" << after_connect.subscribed
     << ",\"connect_failed\":" << after_connect.failed << ",\"connect_s\":" << connect_s
     << ",\"connect_per_s\":"
     << (connect_s > 0 ? static_cast<double>(after_connect.subscribed) / connect_s : 0)
     << ",\"connect_cpu_s\":" << connect_cpu_s << ",\"us_per_connect\":" << us_per_connect
     << ",\"client_connect_cpu_s\":" << client_connect_cpu_s << ",\"rss_before_kib\":" << before.rss_kib
     << ",\"rss_idle_kib\":" << idle_sample.rss_kib << ",\"rss_end_kib\":" << cpu1.rss_kib
     << ",\"server_fds\":" << idle_sample.open_fds << ",\"kib_per_conn\":" << kib_per_conn
     << ",\"pub_sent\":" << t.pub_sent << ",\"pub_acked\":" << t.pub_acked
     << ",\"pub_errors\":" << t.pub_errors << ",\"pub_behind\":" << t.pub_behind
     << ",\"pub_reconnects\":" << t.pub_reconnects << ",\"pub_offered_per_s\":" << pubs_per_s_offered
     << ",\"pubs_per_s\":" << pubs_per_s << ",\"expected\":" << t.expected << ",\"received\":" << t.received
     << ",\"loss\":" << loss << ",\"gaps\":" << (proto->has_seq() ? std::to_string(t.gaps) : "null")
     << ",\"out_of_order\":" << t.out_of_order << ",\"notifications\":" << t.notifications
     << ",\"closed_by_server\":" << t.closed << ",\"window_s\":" << window_s
     << ",\"delivery_s\":" << delivery_s << ",\"deliveries_per_s\":" << deliveries_per_s
     << ",\"p50_us\":" << h.quantile(0.5) << ",\"p90_us\":" << h.quantile(0.9)
     << ",\"p99_us\":" << h.quantile(0.99) << ",\"p999_us\":" << h.quantile(0.999)
     << ",\"max_us\":" << h.max() << ",\"server_cpu_s\":" << server_cpu
     << ",\"us_per_delivery\":" << us_per_delivery << ",\"us_per_publish\":" << us_per_publish
     << ",\"deflate\":" << (opt.deflate ? "true" : "false") << ",\"deflate_agreed\":" << t.deflate_agreed
     << ",\"compressed\":" << t.compressed << ",\"wire_bytes\":" << t.wire_bytes
     << ",\"wire_bytes_per_delivery\":" << wire_bytes_per_delivery
     << ",\"payload_bytes\":" << opt.payload_bytes
     << ",\"payload_words\":" << (opt.payload_words ? "true" : "false") << ",\"client_cpu_s\":" << self_cpu
     << ",\"others_cpu_s\":" << others_cpu << ",\"load1\":" << load1 << ",\"server_wait_s\":" << server_wait
     << ",\"client_wait_s\":" << client_wait
     << ",\"broker_cpu_s\":" << (opt.broker_pid ? std::to_string(broker_cpu_s) : "null")
     << ",\"broker_wait_s\":" << (opt.broker_pid ? std::to_string(broker_wait) : "null");
  if (opt.storm > 0) {
    js << ",\"storm\":" << opt.storm << ",\"storm_at\":" << opt.storm_at
       << ",\"storm_spread\":" << opt.storm_spread << ",\"storm_resubscribed\":" << t.storm_resubscribed
       << ",\"storm_retries\":" << t.storm_retries << ",\"storm_done\":" << (storm_done ? "true" : "false")
       << ",\"storm_s\":" << storm_s << ",\"storm_cpu_s\":" << storm_cpu_s
       << ",\"storm_extra_cpu_s\":" << storm_extra_cpu << ",\"us_per_reconnect\":" << us_per_reconnect;
    const char* keys[] = {"before", "storm", "after"};
    for (int p = 0; p < 3; ++p)
      js << ",\"n_" << keys[p] << "\":" << storm_h[p].total() << ",\"p50_" << keys[p]
         << "_us\":" << storm_h[p].quantile(0.5) << ",\"p99_" << keys[p]
         << "_us\":" << storm_h[p].quantile(0.99) << ",\"max_" << keys[p] << "_us\":" << storm_h[p].max();
  }
  js << ",\"nodes\":[";
  // Per node: which port, whether it took the publishes, its subscribers and deliveries, its CPU over the
  // window (null without one --server-pid per node) and that CPU per delivery of its own subscribers.
  for (int n = 0; n < nodes; ++n) {
    const auto i = static_cast<std::size_t>(n);
    const bool cpu_known = static_cast<int>(opt.server_pids.size()) == nodes;
    const double cpu = cpu_known ? cpu1_n.node[i].cpu_seconds - cpu0_n.node[i].cpu_seconds : 0;
    latency_histogram nh;
    if (nodes > 1)
      merge_node(workers, n, nh);
    else
      nh.merge(h);
    js << (n ? "," : "") << "{\"port\":" << opt.node_port(n)
       << ",\"publish\":" << (opt.node_port(n) == opt.proto.port ? "true" : "false")
       << ",\"pid\":" << (cpu_known ? opt.server_pids[i] : 0) << ",\"subscribed\":" << t.subscribed_by_node[i]
       << ",\"received\":" << t.received_by_node[i] << ",\"p50_us\":" << nh.quantile(0.5)
       << ",\"p99_us\":" << nh.quantile(0.99) << ",\"max_us\":" << nh.max();
    if (cpu_known)
      js << ",\"rss_idle_kib\":" << idle_n.node[i].rss_kib << ",\"server_cpu_s\":" << cpu
         << ",\"wait_s\":" << cpu1_n.node[i].wait_seconds - cpu0_n.node[i].wait_seconds
         << ",\"us_per_delivery\":"
         << (t.received_by_node[i] ? cpu * 1e6 / static_cast<double>(t.received_by_node[i]) : 0);
    else
      js << ",\"server_cpu_s\":null,\"wait_s\":null,\"us_per_delivery\":null";
    js << "}";
  }
  js << "],\"hist\":[";
  bool firstb = true;
  h.for_each([&](std::uint64_t edge, std::uint64_t count) {
    js << (firstb ? "" : ",") << "[" << edge << "," << count << "]";
    firstb = false;
  });
  js << "]}";
  std::printf("%s\n", js.str().c_str());
  std::fflush(stdout);
  if (!opt.json_out.empty()) std::ofstream(opt.json_out, std::ios::app) << js.str() << "\n";

  if (opt.check) {
    const bool ok = after_connect.subscribed == static_cast<std::uint64_t>(opt.connections) && loss == 0 &&
                    t.gaps == 0 && t.out_of_order == 0 && t.pub_errors == 0 && t.pub_acked == t.pub_sent &&
                    t.closed == 0 && (opt.duration <= 0 || t.received > 0) && (opt.storm == 0 || storm_done);
    if (!ok) {
      std::fprintf(stderr,
                   "CHECK FAILED: subscribed %llu/%d, loss %llu, gaps %llu, out of order %llu, "
                   "publish errors %llu, acked %llu/%llu, closed %llu, storm back %llu/%d\n",
                   static_cast<unsigned long long>(after_connect.subscribed), opt.connections,
                   static_cast<unsigned long long>(loss), static_cast<unsigned long long>(t.gaps),
                   static_cast<unsigned long long>(t.out_of_order),
                   static_cast<unsigned long long>(t.pub_errors),
                   static_cast<unsigned long long>(t.pub_acked), static_cast<unsigned long long>(t.pub_sent),
                   static_cast<unsigned long long>(t.closed),
                   static_cast<unsigned long long>(t.storm_resubscribed), opt.storm);
      return 1;
    }
  }
  return g_interrupted ? 130 : 0;
}
