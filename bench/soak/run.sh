#!/usr/bin/env bash
# Bounded soak of Broadcaster (issue 7); not part of CI. Starts build/broadcaster on a free loopback port and runs
# bench/soak/soak.py against it: thousands of connections churning while messages flow, then checks that RSS and
# open descriptors return to the post-warm-up baseline and that every consumer that kept up saw gap-free
# sequences. Prints a summary; exits 0 only if every check passed.
#
# usage: bench/soak/run.sh [--minutes N] [any soak.py option]   (default 10 minutes; --help lists the options)
# e.g.   bench/soak/run.sh --minutes 3
# The server binary is build/broadcaster (BUILD=dir or --binary path to change it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary="${BUILD:-$root/build}/broadcaster"
[ -x "$binary" ] || { echo "no server binary at $binary (build it: ninja -C build broadcaster)" >&2; exit 2; }
# thousands of sockets on the client side too
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 "$here/soak.py" --binary "$binary" "$@"
