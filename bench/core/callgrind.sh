#!/usr/bin/env bash
# Instructions per delivery in the fan-out core (hub -> outbound_queue -> gather/consume), from callgrind:
# two runs of build/bench/fanout-bench --fixed that differ only in the number of fan-outs, so that set-up
# cancels out. Usage: bench/core/callgrind.sh [subscribers=10000] [build dir=build]
set -euo pipefail
n=${1:-10000}
build=${2:-build}
bin="$build/bench/fanout-bench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total() {  # total instructions (Ir) of one run with $1 fan-outs
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out.$1" "$bin" --fixed "$n" "$1" >/dev/null 2>"$tmp/log.$1"
  callgrind_annotate "$tmp/out.$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
a=$(total 2)
b=$(total 12)
echo "subscribers $n: $(( (b - a) / (10 * n) )) instructions per delivery (hub deliver + queue push + gather + consume)"
echo "top functions of the 12-round run:"
callgrind_annotate "$tmp/out.12" 2>/dev/null | grep -E "bc::|std::" | head -12
