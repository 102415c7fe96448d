#!/usr/bin/env python3
"""bench/redis_capacity.py: what one Redis instance (one core: Redis runs commands on one thread) costs per
publish of our envelope, so that docs/redis.md can say how many instances a load needs.

For each shape — N nodes subscribed to every channel, history off or on — it starts a fresh redis-server and
N nodes (`--threads 1 --broker redis`), subscribes one connection per channel on every node, publishes over
REST on node 0 at a fixed rate, and reads redis-server's CPU (`broadcaster-bench --broker-pid`). Redis's CPU
per publish is the script (offset, envelope, optional XADD) plus one PUBLISH delivery per subscribed node, so
the shapes give both terms: cost(N) = script + N x per-node. A fixed rate below saturation is the
conservative measure (a saturated Redis pipelines more and spends less per command). Shapes run interleaved,
the order rotating every repetition.

usage: bench/redis_capacity.py [--reps 3] [--nodes 1,4] [--history 0,100] [--rate 3000] [--duration 6]
                               [--channels 101] [--out DIR]
Output: DIR/runs.jsonl (the tool's JSON lines, label "n<N>-h<H>"), DIR/summary.md. Needs build/broadcaster,
build/bench/broadcaster-bench (BUILD=dir for another build) and redis-server. 127.0.0.1 only; every process it
starts is stopped when it ends.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
SERVER = os.path.join(BUILD, "broadcaster")
TOOL = os.path.join(BUILD, "bench", "broadcaster-bench")
SECRET, KEY = "bench-secret", "bench-key"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs):
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 10
    for p in reversed(procs):
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_redis(out, procs):
    port = free_port()
    logf = open(os.path.join(out, f"redis-{port}.log"), "w")
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], stdout=logf, stderr=subprocess.STDOUT)
    procs.append(p)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return p, port
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_node(out, name, redis_port, history, procs):
    logf = os.path.join(out, name + ".log")
    p = subprocess.Popen([SERVER, "--port", "0", "--host", "127.0.0.1", "--jwt-secret", SECRET, "--api-keys", KEY,
                          "--threads", "1", "--broker", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}",
                          "--history-size", str(history), "--log-level", "info"],
                         stdout=open(logf, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    deadline = time.monotonic() + 20
    port = None
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


def run_shape(args, out, nodes, history, rep):
    procs = []
    label = f"n{nodes}-h{history}"
    try:
        redis, redis_port = start_redis(out, procs)
        started = [start_node(out, f"{label}-r{rep}-node{i}", redis_port, history, procs) for i in range(nodes)]
        ports = ",".join(str(port) for _, port in started)
        # channels coprime with the node count: connection i (channel i % C, node i % N) puts every channel on
        # every node.
        cmd = [TOOL, "--port", str(started[0][1]), "--sub-ports", ports, "--jwt-secret", SECRET, "--api-key", KEY,
               "--connections", str(args.channels * nodes), "--channels", str(args.channels), "--idle", "1",
               "--rate", str(args.rate), "--duration", str(args.duration), "--inflight", "16", "--drain", "10",
               "--broker-pid", str(redis.pid), "--label", label, "--no-progress",
               "--json-out", os.path.join(out, "runs.jsonl")]
        for p, _ in started:
            cmd += ["--server-pid", str(p.pid)]
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True, timeout=120 + args.duration, stdout=subprocess.DEVNULL)
    finally:
        stop(procs)


def summarize(out, shapes):
    rows = {}
    for line in open(os.path.join(out, "runs.jsonl")):
        r = json.loads(line)
        if r.get("broker_cpu_s") is None or not r.get("pub_acked"):
            continue
        rows.setdefault(r["label"], []).append(r)
    lines = ["| shape | runs | publishes acked | Redis CPU per publish (µs, median, range) | publishes/s per Redis core | loss |",
             "|---|---|---|---|---|---|"]
    medians = {}
    for nodes, history in shapes:
        label = f"n{nodes}-h{history}"
        rs = rows.get(label, [])
        if not rs:
            continue
        us = [r["broker_cpu_s"] * 1e6 / r["pub_acked"] for r in rs]
        med = statistics.median(us)
        medians[(nodes, history)] = med
        lines.append(f"| {nodes} node(s), history {history} | {len(rs)} | {sum(r['pub_acked'] for r in rs)} | "
                     f"{med:.1f} ({min(us):.1f}–{max(us):.1f}) | {1e6 / med:,.0f} | "
                     f"{sum(r['loss'] for r in rs)} |")
    ns = sorted({n for n, _ in shapes})
    if len(ns) >= 2:
        lines.append("")
        for history in sorted({h for _, h in shapes}):
            a, b = ns[0], ns[-1]
            if (a, history) in medians and (b, history) in medians:
                per_node = (medians[(b, history)] - medians[(a, history)]) / (b - a)
                script = medians[(a, history)] - a * per_node
                lines.append(f"- history {history}: cost(N) ≈ {script:.1f} + {per_node:.2f} × N µs per publish "
                             f"(N = nodes subscribed to the channel)")
    text = "\n".join(lines) + "\n"
    open(os.path.join(out, "summary.md"), "w").write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--nodes", default="1,4")
    ap.add_argument("--history", default="0,100")
    ap.add_argument("--rate", type=int, default=3000)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--channels", type=int, default=101)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  "redis-capacity-" + time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    for f in (SERVER, TOOL):
        if not os.access(f, os.X_OK):
            sys.exit(f"missing {f}: build first (ninja -C build broadcaster broadcaster-bench)")
    os.makedirs(args.out, exist_ok=True)
    shapes = [(int(n), int(h)) for n in args.nodes.split(",") for h in args.history.split(",")]
    with open(os.path.join(args.out, "machine.txt"), "w") as m:
        m.write(subprocess.run("uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; cat /proc/loadavg; "
                               "redis-server --version", shell=True, capture_output=True, text=True).stdout)
    for rep in range(args.reps):
        order = shapes[rep % len(shapes):] + shapes[:rep % len(shapes)]
        for nodes, history in order:
            run_shape(args, args.out, nodes, history, rep)
    summarize(args.out, shapes)
    log(f"results in {args.out}")


if __name__ == "__main__":
    main()
