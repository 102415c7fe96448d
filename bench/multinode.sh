#!/usr/bin/env bash
# bench/multinode.sh: the multi-node scenario of issue 4 ("Measure"). N Broadcaster nodes share one Redis
# (`--broker redis`), the subscribers are spread over every node, and publishing (REST) goes to node 0; the same
# load then runs on ONE node with the in-memory broker (same subscribers, channels and rate). Repetitions are
# interleaved (the order of the two set-ups alternates), every run starts its servers (and Redis) fresh.
#
# Each Redis node runs with --threads 1 and the memory node with --threads 2: N=3 single-thread nodes (plus
# their broker threads and redis-server) compete for the machine's cores the way one 2-thread node does, so
# both set-ups get the same cores; on a 2-core machine neither can use more than 2.
#
# usage: bench/multinode.sh [--reps 3] [--nodes 3] [--connections 3000] [--channels 10] [--rate 200]
#                           [--duration 15] [--drain 10] [--inflight 16] [--out DIR] [--quick]
#   --quick: 600 subscribers, 5 s, 1 repetition (a check that everything works)
# Output: DIR/runs.jsonl (one broadcaster-bench JSON line per run, label redis or memory, with per-node
# figures under "nodes"), DIR/summary.md (medians, ranges, ratios, the two goals), server and Redis logs.
# Needs build/broadcaster and build/bench/broadcaster-bench (BUILD=dir to use another build, or SERVER=file and
# TOOL=file: copy the binaries away first when something may rebuild build/ during the run), redis-server.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SERVER=${SERVER:-$BUILD/broadcaster}
TOOL=${TOOL:-$BUILD/bench/broadcaster-bench}
SECRET=bench-secret
KEY=bench-key

reps=3 nodes=3 connections=3000 channels=10 rate=200 duration=15 drain=10 inflight=16
out=$ROOT/bench/results/multinode-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --channels) channels=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --drain) drain=$2; shift 2 ;;
    --inflight) inflight=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) connections=600 duration=5 reps=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
for f in "$SERVER" "$TOOL"; do
  [ -x "$f" ] || { echo "missing $f: build first (ninja -C build broadcaster broadcaster-bench)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
runs=$out/runs.jsonl
{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; free -m; ulimit -n; cat /proc/loadavg; redis-server --version
  echo "server $SERVER $(sha256sum <"$SERVER" | cut -c1-16) $(stat -c %y "$SERVER")"
  echo "tool $TOOL $(sha256sum <"$TOOL" | cut -c1-16) $(stat -c %y "$TOOL")"
  echo "source $(git -C "$ROOT" describe --always --dirty 2>/dev/null)"; } >"$out/machine.txt" 2>&1

log() { echo "$*" >&2; }

# Every process this script starts, so that any exit stops them (and only them).
started=()
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_all() {  # newest first: the nodes, then their Redis
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[i]}"; done
  started=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_redis: sets redis_pid, redis_port.
start_redis() {

  for _ in 1 2 3; do
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
      >"$out/redis-$redis_port.log" 2>&1 &
    redis_pid=$!
    started+=("$redis_pid")
    for _ in $(seq 100); do
      [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_pid "$redis_pid"
  done
  echo "redis-server did not start (see $out/redis-*.log)" >&2
  return 1
}

# start_node LOGNAME ARGS...: appends to node_pids and node_ports; waits until /health is 200 (for a Redis
# node: its publish and subscribe connections are up).
start_node() {
  local name=$1 logf port="" pid
  shift
  logf=$out/$name.log
  "$SERVER" --port 0 --host 127.0.0.1 --jwt-secret "$SECRET" --api-keys "$KEY" --log-level info "$@" \
    >"$logf" 2>&1 &
  pid=$!
  started+=("$pid")
  for _ in $(seq 200); do
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$logf" | sed 's/.*://' || true)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "node exited at start-up:" >&2; cat "$logf" >&2; return 1; }
    sleep 0.05
  done
  [ -n "$port" ] || { echo "node did not report its port ($logf)" >&2; return 1; }
  for _ in $(seq 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/broadcaster/health" && break
    sleep 0.05
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/broadcaster/health" ||
    { echo "node on $port not healthy ($logf)" >&2; return 1; }
  node_pids+=("$pid")
  node_ports+=("$port")
}

load_args=(--jwt-secret "$SECRET" --api-key "$KEY" --connections "$connections" --channels "$channels"
           --idle 1 --rate "$rate" --duration "$duration" --inflight "$inflight" --drain "$drain"
           --connect-timeout 30 --no-progress --json-out "$runs")

run_tool() {
  log "\$ broadcaster-bench $*"
  timeout $((60 + ${duration%.*} + ${drain%.*})) "$TOOL" "$@" | grep -v '^{' >&2
}

run_redis() {
  local rep=$1 i args=() ports
  node_pids=() node_ports=()
  start_redis
  for i in $(seq 0 $((nodes - 1))); do
    start_node "redis-rep$rep-node$i" --threads 1 --broker redis --redis-url "redis://127.0.0.1:$redis_port"
  done
  ports=$(IFS=,; echo "${node_ports[*]}")
  for i in "${node_pids[@]}"; do args+=(--server-pid "$i"); done
  sleep 0.5
  run_tool --port "${node_ports[0]}" --sub-ports "$ports" "${args[@]}" --broker-pid "$redis_pid" \
    --label redis "${load_args[@]}"
  stop_all
}

run_memory() {
  local rep=$1
  node_pids=() node_ports=()
  start_node "memory-rep$rep" --threads 2
  sleep 0.5
  run_tool --port "${node_ports[0]}" --server-pid "${node_pids[0]}" --label memory "${load_args[@]}"
  stop_all
}

log "multinode: $nodes Redis nodes (--threads 1 each) vs 1 memory node (--threads 2); $connections subscribers," \
  "$channels channels, $rate publishes/s for $duration s, $reps repetitions; results in $out"
t0=$(date +%s)
for rep in $(seq 0 $((reps - 1))); do
  if [ $((rep % 2)) -eq 0 ]; then order="redis memory"; else order="memory redis"; fi
  for mode in $order; do
    log ""
    log "### rep $rep  $mode  (t=$(( $(date +%s) - t0 ))s)"
    "run_$mode" "$rep"
  done
done

python3 - "$runs" "$out/summary.md" "$nodes" "$connections" "$channels" "$rate" "$duration" <<'PY'
import json, statistics, sys, time

runs_path, summary_path = sys.argv[1], sys.argv[2]
nodes, conns, chans, rate, dur = sys.argv[3:8]
runs = [json.loads(l) for l in open(runs_path) if l.startswith("{")]
by = {"redis": [r for r in runs if r["label"] == "redis"], "memory": [r for r in runs if r["label"] == "memory"]}


def pub_node(r):
    return next(n for n in r["nodes"] if n["publish"])


def other_nodes(r):
    return [n for n in r["nodes"] if not n["publish"]]


# (row label, function of one run, unit divisor, format)
METRICS = [
    ("deliveries/s", lambda r: r["deliveries_per_s"], 1, "%.0f"),
    ("latency p50 (ms)", lambda r: r["p50_us"], 1e3, "%.2f"),
    ("latency p90 (ms)", lambda r: r["p90_us"], 1e3, "%.2f"),
    ("latency p99 (ms)", lambda r: r["p99_us"], 1e3, "%.2f"),
    ("latency max (ms)", lambda r: r["max_us"], 1e3, "%.1f"),
    ("server CPU µs/delivery, all nodes", lambda r: r["us_per_delivery"], 1, "%.2f"),
    ("publishing node: CPU µs per delivery of its own subscribers",
     lambda r: pub_node(r)["us_per_delivery"], 1, "%.2f"),
    ("publishing node: CPU µs per delivery, all nodes' deliveries",
     lambda r: pub_node(r)["server_cpu_s"] * 1e6 / r["received"] if r["received"] else None, 1, "%.2f"),
    ("other nodes: CPU µs per delivery of their own (mean)",
     lambda r: statistics.mean(n["us_per_delivery"] for n in other_nodes(r)) if other_nodes(r) else None, 1, "%.2f"),
    ("server CPU (cores, all nodes)", lambda r: r["server_cpu_s"] / r["window_s"], 1, "%.2f"),
    ("redis-server CPU (cores)", lambda r: r["broker_cpu_s"] / r["window_s"] if r.get("broker_cpu_s") is not None else None, 1, "%.3f"),
    ("redis-server CPU µs/delivery", lambda r: r["broker_cpu_s"] * 1e6 / r["received"] if r.get("broker_cpu_s") is not None and r["received"] else None, 1, "%.2f"),
    ("server threads waiting for a core (s per s, all nodes)", lambda r: r["server_wait_s"] / r["window_s"], 1, "%.2f"),
    ("redis-server waiting for a core (s per s)", lambda r: r["broker_wait_s"] / r["window_s"] if r.get("broker_wait_s") is not None else None, 1, "%.3f"),
    ("client CPU (cores)", lambda r: r["client_cpu_s"] / r["window_s"], 1, "%.2f"),
    ("client waiting for a core (s per s)", lambda r: r["client_wait_s"] / r["window_s"], 1, "%.2f"),
    ("other processes (cores)", lambda r: r["others_cpu_s"] / r["window_s"], 1, "%.2f"),
    ("load average", lambda r: r["load1"], 1, "%.1f"),
]


def vals(mode, f, div):
    out = []
    for r in by[mode]:
        v = f(r)
        if v is not None:
            out.append(v / div)
    return out


def cell(v, fmt):
    if not v:
        return "-"
    m = statistics.median(v)
    if len(v) == 1:
        return fmt % m
    return "%s (%s–%s)" % (fmt % m, fmt % min(v), fmt % max(v))


lines = ["# bench/multinode.sh summary (%s)" % time.strftime("%Y-%m-%d %H:%M"), "",
         "%s Redis nodes (--threads 1) vs 1 memory-broker node (--threads 2); %s subscribers over %s channels "
         "(spread over every node), REST publishes on node 0 at %s/s for %s s; %d + %d runs, interleaved." %
         (nodes, conns, chans, rate, dur, len(by["redis"]), len(by["memory"])),
         "Medians (range).", "",
         "| metric | Redis, %s nodes | memory, 1 node | Redis/memory |" % nodes, "|---|---|---|---|"]
med = {}
for name, f, div, fmt in METRICS:
    rv, mv = vals("redis", f, div), vals("memory", f, div)
    med[name] = (statistics.median(rv) if rv else None, statistics.median(mv) if mv else None)
    a, b = med[name]
    ratio = "%.2f" % (a / b) if a is not None and b else "-"
    lines.append("| %s | %s | %s | %s |" % (name, cell(rv, fmt), cell(mv, fmt), ratio))

tot = lambda mode, k: sum(r.get(k) or 0 for r in by[mode])
lines.append("| received / expected (sum) | %d / %d | %d / %d | |" % (
    tot("redis", "received"), tot("redis", "expected"), tot("memory", "received"), tot("memory", "expected")))
KEYS = ("loss", "gaps", "out_of_order", "pub_errors", "pub_reconnects", "closed_by_server")
lines.append("| loss, seq gaps, out of order, publish errors, publisher reconnects, subscribers closed (sum) | "
             "%d, %d, %d, %d, %d, %d | %d, %d, %d, %d, %d, %d | |" % (
                 tuple(tot("redis", k) for k in KEYS) + tuple(tot("memory", k) for k in KEYS)))

# Paired by repetition (run i of each set-up were back to back).
pairs = list(zip(by["redis"], by["memory"]))
d50 = [(a["p50_us"] - b["p50_us"]) / 1e3 for a, b in pairs]
mem_us = med["server CPU µs/delivery, all nodes"][1]
pub_own = med["publishing node: CPU µs per delivery of its own subscribers"][0]
pub_all = med["publishing node: CPU µs per delivery, all nodes' deliveries"][0]
lines += ["", "Goals (issue 4):", ""]
if d50:
    lines.append("- Redis hop at p50: %+.2f ms (median of the paired differences %s ms) — goal < 1 ms: %s" % (
        statistics.median(d50), ", ".join("%+.2f" % d for d in d50), "met" if statistics.median(d50) < 1 else "NOT met"))
if mem_us and pub_own is not None:
    lines.append("- publishing node CPU per delivery of its own subscribers: %.2f µs = %.2fx the memory node's %.2f µs "
                 "— goal ≤ 2x: %s" % (pub_own, pub_own / mem_us, mem_us, "met" if pub_own / mem_us <= 2 else "NOT met"))
    lines.append("- (the publishing node's CPU divided by every delivery of the cluster: %.2f µs = %.2fx)" % (
        pub_all, pub_all / mem_us))

lines += ["", "Per run:", "",
          "| run | deliveries/s | p50 / p99 / max (ms) | µs/delivery all | per node µs/own delivery (pub first) | "
          "server wait s/s | redis cores | others cores | loss / gaps |", "|---|---|---|---|---|---|---|---|---|"]
for r in runs:
    per_node = " / ".join("%.2f" % n["us_per_delivery"] for n in sorted(r["nodes"], key=lambda n: not n["publish"]))
    lines.append("| %s | %.0f | %.2f / %.2f / %.1f | %.2f | %s | %.2f | %s | %.2f | %d / %s |" % (
        r["label"], r["deliveries_per_s"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["max_us"] / 1e3,
        r["us_per_delivery"], per_node, r["server_wait_s"] / r["window_s"],
        "%.3f" % (r["broker_cpu_s"] / r["window_s"]) if r.get("broker_cpu_s") is not None else "-",
        r["others_cpu_s"] / r["window_s"], r["loss"], r["gaps"]))
text = "\n".join(lines) + "\n"
open(summary_path, "w").write(text)
print(text)
PY
