#!/usr/bin/env bash
# Smoke run of the load generator (CTest label "smoke"): starts the server on a free loopback port, opens 300
# subscribers over 10 channels, publishes 100/s for 3 s over REST, and fails on any failed subscribe, loss,
# seq gap, out-of-order delivery or publish error (broadcaster-bench --check).
# Further arguments go to broadcaster-bench (the storm smoke test adds a reconnect storm).
# usage: bench/smoke.sh BROADCASTER_BIN BENCH_BIN [BENCH_ARGS...]
set -euo pipefail
server_bin=${1:?server binary}
bench_bin=${2:?bench binary}
log=$(mktemp)
"$server_bin" --port 0 --host 127.0.0.1 --jwt-secret smoke-secret --api-keys smoke-key --threads 2 >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 100); do
  port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | sed 's/.*://' || true)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "server exited:"; cat "$log"; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not report its port:"; cat "$log"; exit 1; }
timeout 40 "$bench_bin" --port "$port" --server-pid "$server_pid" --jwt-secret smoke-secret --api-key smoke-key \
  --connections 300 --channels 10 --rate 100 --duration 3 --inflight 4 --drain 5 --connect-timeout 15 \
  --no-progress --check --label smoke "${@:3}"
