#!/usr/bin/env python3
"""bench/redis_cluster_throughput.py: publish throughput of one node over a 3-primary Redis Cluster against the same
node over one Redis instance, in one run (docs/redis.md "Redis Cluster", BENCHMARKS.md "Redis Cluster (issue 21)").

Each repetition starts fresh processes for both set-ups, interleaved (the order alternates): either one
redis-server, or three `redis-server --cluster-enabled yes` joined by `redis-cli --cluster create` (primaries only,
no replicas, so both set-ups spend the same CPU on Redis's side of a publish); then one node
`broadcaster --threads 2 --broker redis` (redis:// or redis+cluster://) and `broadcaster-bench` publishing over
REST as fast as it can (`--rate 0`, `--inflight` keep-alive connections) to `--channels` channels (spread over
every primary's slots), one subscriber per channel on the same node, for `--duration` seconds.

usage: bench/redis_cluster_throughput.py [--reps 3] [--duration 8] [--channels 100] [--inflight 64] [--out DIR]
Output: DIR/runs.jsonl (the tool's JSON lines, label single|cluster), DIR/summary.md. Needs build/broadcaster,
build/bench/broadcaster-bench (BUILD=dir for another build), redis-server and redis-cli. 127.0.0.1 only; every
process it starts is stopped when it ends.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_capacity import KEY, ROOT, SECRET, SERVER, TOOL, free_port, log, start_redis, stop  # noqa: E402


def resp(port, *args):
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload)
        return s.recv(65536)


def cpu_s(pids):
    """utime + stime of these processes, in seconds (/proc)."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def start_cluster(out, procs, primaries=3):
    ports = []
    while len(ports) < primaries:
        port = free_port()
        if port + 10000 > 65535:
            continue
        ports.append(port)
        logf = open(os.path.join(out, f"cluster-{port}.log"), "w")
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(out, f"nodes-{port}.conf"),
             "--dir", out], stdout=logf, stderr=subprocess.STDOUT))
    for port in ports:
        deadline = time.monotonic() + 10
        while True:
            try:
                if resp(port, "PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
                   check=True, timeout=60, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not all(b"cluster_state:ok" in resp(p, "CLUSTER", "INFO") for p in ports):
        if time.monotonic() > deadline:
            raise RuntimeError("cluster not ok")
        time.sleep(0.05)
    return ports


def start_node(out, name, url, procs):
    logf = os.path.join(out, name + ".log")
    p = subprocess.Popen([SERVER, "--port", "0", "--host", "127.0.0.1", "--jwt-secret", SECRET, "--api-keys", KEY,
                          "--threads", "2", "--broker", "redis", "--redis-url", url, "--log-level", "info"],
                         stdout=open(logf, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and p.poll() is None:
        m = re.search(r"listening on [0-9.]+:(\d+)", open(logf).read())
        if m:
            port = int(m.group(1))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/broadcaster/health", timeout=1) as r:
                    if r.status == 200:
                        return p, port
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"node {name} did not become healthy (see {logf})")


def run(args, out, setup, rep):
    procs = []
    try:
        if setup == "single":
            redis, port = start_redis(out, procs)
            url = f"redis://127.0.0.1:{port}"
        else:
            ports = start_cluster(out, procs)
            url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
        redis_pids = [p.pid for p in procs]
        node, node_port = start_node(out, f"{setup}-r{rep}", url, procs)
        cmd = [TOOL, "--port", str(node_port), "--jwt-secret", SECRET, "--api-key", KEY,
               "--connections", str(args.channels), "--channels", str(args.channels), "--idle", "1",
               "--rate", "0", "--duration", str(args.duration), "--inflight", str(args.inflight), "--drain", "10",
               "--server-pid", str(node.pid), "--label", setup, "--no-progress",
               "--json-out", os.path.join(out, "runs.jsonl")]
        log("$ " + " ".join(cmd))
        before = cpu_s(redis_pids)
        subprocess.run(cmd, check=True, timeout=120 + args.duration, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "redis_cpu.jsonl"), "a") as f:
            f.write(json.dumps({"label": setup, "rep": rep, "redis_cpu_s": cpu_s(redis_pids) - before}) + "\n")
    finally:
        stop(procs)


def summarize(out, duration):
    rows = {}
    for line in open(os.path.join(out, "runs.jsonl")):
        r = json.loads(line)
        rows.setdefault(r["label"], []).append(r)
    redis_cpu = {}
    for line in open(os.path.join(out, "redis_cpu.jsonl")):
        r = json.loads(line)
        redis_cpu.setdefault(r["label"], []).append(r["redis_cpu_s"])
    lines = ["| set-up | runs | publishes/s acknowledged (median, range) | node CPU µs per publish | Redis CPU µs per "
             "publish (all its processes) | loss | publish errors |", "|---|---|---|---|---|---|---|"]
    for label in ("single", "cluster"):
        rs = rows.get(label, [])
        if not rs:
            continue
        rates = [r["pub_acked"] / duration for r in rs]
        node_us = [r["server_cpu_s"] * 1e6 / r["pub_acked"] for r in rs]
        redis_us = [c * 1e6 / r["pub_acked"] for c, r in zip(redis_cpu.get(label, []), rs)]
        lines.append(f"| {label} | {len(rs)} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) | "
                     f"{statistics.median(node_us):.1f} | {statistics.median(redis_us):.1f} | "
                     f"{sum(r.get('loss', 0) for r in rs)} | {sum(r.get('pub_errors', 0) for r in rs)} |")
    text = "\n".join(lines) + "\n"
    open(os.path.join(out, "summary.md"), "w").write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  time.strftime("redis-cluster-%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for rep in range(args.reps):
        for setup in (("single", "cluster") if rep % 2 == 0 else ("cluster", "single")):
            run(args, args.out, setup, rep)
    summarize(args.out, args.duration)


if __name__ == "__main__":
    main()
