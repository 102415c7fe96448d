#!/usr/bin/env python3
"""bench/redis_pipeline_ab.py: the Redis connection layer alone, old against new, plain against TLS (issue 21).

Runs bench/design/redis_pipeline.cpp built twice — against the old layer (hiredis async) and the new one
(redis_link) — on one redis-server listening on a plain and a TLS port, interleaved (the order rotates every
repetition): old redis://, new redis://, new rediss://; each without and with a local subscriber (--subscribe:
every message also comes back on the subscribe connection before its `ok`). Prints every line and the medians.

usage: bench/redis_pipeline_ab.py --old BIN --new BIN [--reps 5] [--count 200000] [--window 2000]
Build BIN from a source tree (any commit's src/, the old one with -DNO_TLS_OPTIONS):
  g++ -std=c++20 -O2 -g -DNDEBUG -DBOOST_ASIO_NO_DEPRECATED -I SRC bench/design/redis_pipeline.cpp \\
      SRC/broker/*.cpp SRC/core/*.cpp -lhiredis -lspdlog -lfmt -lssl -lcrypto -lpthread
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_tls import make_certs, start_redis  # noqa: E402

LINE = re.compile(r"= (\d+) /s, ([\d.]+) us CPU/publish \(process\), p50 (\d+) us, p99 (\d+) us, (\d+) failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--count", default="200000")
    ap.add_argument("--window", default="2000")
    a = ap.parse_args()
    certs = tempfile.mkdtemp(prefix="bc-pipeline-")
    make_certs(certs)
    redis, plain, tls = start_redis(certs)
    env = dict(os.environ, REDIS_TLS_CA_FILE=os.path.join(certs, "ca.crt"))
    targets = [("old redis://", a.old, "redis://127.0.0.1:%d" % plain),
               ("new redis://", a.new, "redis://127.0.0.1:%d" % plain),
               ("new rediss://", a.new, "rediss://127.0.0.1:%d" % tls)]
    results = {}
    try:
        time.sleep(0.5)
        for rep in range(a.reps):
            for sub in ("0", "1"):
                order = targets[rep % 3:] + targets[:rep % 3]
                for name, binary, url in order:
                    out = subprocess.run([binary, url, a.count, a.window, "100", sub, "1"], env=env, text=True,
                                         capture_output=True, timeout=300).stdout
                    line = next((l for l in out.splitlines() if l.startswith("round")), "(no result) " + out[-300:])
                    print("rep %d sub %s %-14s %s" % (rep, sub, name, line), flush=True)
                    m = LINE.search(line)
                    if m:
                        results.setdefault((sub, name), []).append(tuple(float(x) for x in m.groups()))
    finally:
        redis.terminate()
        redis.wait(10)
    print("\n| subscriber | layer | publishes/s | µs CPU/publish | p50 µs | p99 µs | failed |")
    print("|---|---|---|---|---|---|---|")
    for (sub, name), rows in sorted(results.items()):
        cols = list(zip(*rows))
        med = [statistics.median(c) for c in cols]
        rng = ["%.0f–%.0f" % (min(c), max(c)) for c in cols]
        print("| %s | %s | %.0f (%s) | %.2f | %.0f | %.0f | %d |" % (
            "yes" if sub == "1" else "no", name, med[0], rng[0], med[1], med[2], med[3], sum(cols[4])))


if __name__ == "__main__":
    main()
