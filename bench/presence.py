#!/usr/bin/env python3
"""bench/presence.py: what presence costs (issue 18), measured on loopback with real servers and broadcaster-bench.

Two parts, each repeated --reps times with the variants interleaved so that their ratio is read within one run:

members  --members subscribers (distinct users) of one channel, spread over the nodes (memory: one node; redis:
         two nodes on one redis-server). Variants: presence off / on. While the subscribers are held idle:
         server RSS per member (on minus off), presenceStats and presence latency over REST (p50/p99 of
         sequential keep-alive requests), and with Redis the traffic each node sends to Redis per second to keep
         its members alive (bytes in and commands, from redis-server's INFO, over a whole refresh period).
storm    --storm subscribers of one channel connect at once (connect concurrency = all) and, after the last is
         subscribed, disconnect at once: a reconnect storm. Variants: presence on with joinLeave / presence on
         without joinLeave. Server CPU for the whole storm (connect + subscribe + joins + leaves, until presence
         is empty again) and the join/leave notifications received.

usage: bench/presence.py [--broker memory|redis] [--members N] [--storm N] [--reps R] [--presence-ttl S]
                         [--parts members,storm] [--out FILE] [--flags 'SERVER FLAGS']
Prints a summary; --out appends one JSON line per run. Bounded: every tool run has a timeout.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
TOOL = os.path.join(BUILD, "bench", "broadcaster-bench")
SERVER = os.path.join(BUILD, "broadcaster")
SECRET, API_KEY = "bench-secret-bench-secret-bench-secret", "bench-key-bench-key"
CHANNEL = "c0"  # broadcaster-bench's name of channel 0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited at start-up" % what)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (what, port))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class proc:
    def __init__(self, cmd, logpath):
        self.log = open(logpath, "w")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        except ProcessLookupError:
            pass
        self.log.close()


class cluster:
    """The nodes under test: one embedded-broker node, or two nodes on one fresh redis-server."""

    def __init__(self, broker, flags, workdir, ttl):
        self.redis = None
        self.redis_port = None
        self.nodes = []
        urls = []
        if broker == "redis":
            self.redis_port = free_port()
            self.redis = proc(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], os.path.join(workdir, "redis.log"))
            wait_listening(self.redis_port, self.redis.p, "redis-server")
            urls = ["--broker", "redis", "--redis-url", "redis://127.0.0.1:%d" % self.redis_port]
        count = 2 if broker == "redis" else 1
        threads = "1" if broker == "redis" else "2"  # the same two cores either way
        for i in range(count):
            port = free_port()
            cmd = [SERVER, "--port", str(port), "--host", "127.0.0.1", "--jwt-secret", SECRET, "--api-keys", API_KEY,
                   "--threads", threads, "--log-level", "warn", "--presence-ttl", str(ttl)] + urls + flags
            n = proc(cmd, os.path.join(workdir, "node%d-%d.log" % (i, port)))
            n.port = port
            wait_listening(port, n.p, "node %d" % i)
            self.nodes.append(n)

    def stop(self):
        for n in self.nodes:
            n.stop()
        if self.redis:
            self.redis.stop()

    def redis_info(self):
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "info", "stats"], capture_output=True,
                             text=True, timeout=5).stdout
        vals = {}
        for line in out.splitlines():
            if ":" in line:
                k, v = line.strip().split(":", 1)
                vals[k] = v
        return int(vals["total_net_input_bytes"]), int(vals["total_commands_processed"])


def rest_get(conn, path):
    conn.request("GET", "/broadcaster" + path, headers={"Authorization": "Bearer " + API_KEY})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, r.status, body[:200]))
    return json.loads(body)


def wait_clients(port, want, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = rest_get(conn, "/presence-stats?channel=" + CHANNEL)["numClients"]
        if last == want:
            return
        time.sleep(0.1)
    raise RuntimeError("presence shows %s clients, want %d" % (last, want))


def latency(port, path, count):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rest_get(conn, path)  # connect and warm up outside the samples
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        rest_get(conn, path)
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return {"p50_us": samples[len(samples) // 2], "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))]}


def tool_cmd(c, extra):
    cmd = [TOOL, "--port", str(c.nodes[0].port), "--jwt-secret", SECRET, "--api-key", API_KEY, "--channels", "1",
           "--threads", "1", "--no-progress", "--sub-ports", ",".join(str(n.port) for n in c.nodes)]
    for n in c.nodes:
        cmd += ["--server-pid", str(n.pid)]
    if c.redis:
        cmd += ["--broker-pid", str(c.redis.pid)]
    return cmd + extra


def tool_json(out):
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("no JSON from broadcaster-bench:\n" + out[-2000:])
    return json.loads(lines[-1])


def members_run(args, variant, workdir):
    presence = variant == "on"
    c = cluster(args.broker, (["--presence"] if presence else []) + args.flags.split(), workdir, args.presence_ttl)
    try:
        rss0 = [rss_kib(n.pid) for n in c.nodes]
        hold = 3 * args.presence_ttl + 20
        tool = subprocess.Popen(tool_cmd(c, ["--connections", str(args.members), "--distinct-users",
                                             "--connect-concurrency", "512", "--idle", str(hold), "--drain", "0"]),
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        res = {"part": "members", "broker": args.broker, "variant": variant, "members": args.members}
        try:
            if presence:
                for n in c.nodes:
                    wait_clients(n.port, args.members, 120)
            else:
                # No presence to ask: the nodes' connection counts from the metrics instead.
                deadline = time.time() + 120
                while sum(connections(n.port) for n in c.nodes) < args.members and time.time() < deadline:
                    time.sleep(0.2)
            time.sleep(1)  # let allocations from the connect phase settle before the memory sample
            res["rss_kib"] = [rss_kib(n.pid) - r for n, r in zip(c.nodes, rss0)]
            if presence:
                for i, n in enumerate(c.nodes):
                    res["stats_node%d" % i] = latency(n.port, "/presence-stats?channel=" + CHANNEL, 300)
                    res["presence_node%d" % i] = latency(n.port, "/presence?channel=" + CHANNEL, 50)
            if c.redis:
                # A whole refresh period (a third of the TTL, the refresh interval) and then some.
                window = args.presence_ttl
                b0, k0 = c.redis_info()
                cpu0 = [cpu_seconds(n.pid) for n in c.nodes]
                time.sleep(window)
                b1, k1 = c.redis_info()
                cpu1 = [cpu_seconds(n.pid) for n in c.nodes]
                res["redis_in_bytes_per_s"] = (b1 - b0) / window
                res["redis_commands_per_s"] = (k1 - k0) / window
                res["node_cpu_per_s"] = [(b - a) / window for a, b in zip(cpu0, cpu1)]
        finally:
            os.killpg(tool.pid, signal.SIGTERM)
            tool.communicate(timeout=60)
        return res
    finally:
        c.stop()


def connections(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/broadcaster/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("broadcaster_connections "):
            return float(line.split()[1])
    return 0


def storm_run(args, variant, workdir):
    c = cluster(args.broker, ["--presence"] + args.flags.split(), workdir, args.presence_ttl)
    try:
        extra = ["--connections", str(args.storm), "--distinct-users", "--connect-concurrency", str(args.storm),
                 "--idle", "1", "--drain", "0"]
        if variant == "joinleave":
            extra.append("--join-leave")
        cpu0 = [cpu_seconds(n.pid) for n in c.nodes]
        rcpu0 = cpu_seconds(c.redis.pid) if c.redis else 0
        t0 = time.time()
        out = subprocess.run(tool_cmd(c, extra), stdout=subprocess.PIPE, text=True, timeout=300).stdout
        j = tool_json(out)
        for n in c.nodes:  # the leaves: done when presence is empty everywhere
            wait_clients(n.port, 0, 120)
        wall = time.time() - t0
        cpu = [cpu_seconds(n.pid) - a for n, a in zip(c.nodes, cpu0)]
        return {"part": "storm", "broker": args.broker, "variant": variant, "members": args.storm,
                "subscribed": j["subscribed"], "connect_s": j["connect_s"], "connect_cpu_s": j["connect_cpu_s"],
                "notifications": j["notifications"], "server_cpu_s": sum(cpu),
                "broker_cpu_s": (cpu_seconds(c.redis.pid) - rcpu0) if c.redis else None, "wall_s": wall}
    finally:
        c.stop()


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=["memory", "redis"], default="memory")
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--storm", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--presence-ttl", type=int, default=6)
    ap.add_argument("--parts", default="members,storm")
    ap.add_argument("--out")
    ap.add_argument("--flags", default="", help="extra server flags, e.g. '--join-leave-limit 0'")
    args = ap.parse_args()
    workdir = os.path.join(ROOT, "bench", "results", "presence-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(workdir, exist_ok=True)
    parts = args.parts.split(",")
    runs = []
    for rep in range(args.reps):
        plan = []
        if "members" in parts:
            plan += [("members", v) for v in (["off", "on"] if rep % 2 == 0 else ["on", "off"])]
        if "storm" in parts:
            plan += [("storm", v) for v in (["nojoinleave", "joinleave"] if rep % 2 == 0 else
                                             ["joinleave", "nojoinleave"])]
        for part, variant in plan:
            log("rep %d: %s %s (%s)" % (rep, part, variant, args.broker))
            r = (members_run if part == "members" else storm_run)(args, variant, workdir)
            r["rep"] = rep
            log(json.dumps(r))
            runs.append(r)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print("broker %s, %d reps, medians" % (args.broker, args.reps))
    m = [r for r in runs if r["part"] == "members"]
    if m:
        on = [r for r in m if r["variant"] == "on"]
        off = [r for r in m if r["variant"] == "off"]
        nodes = len(on[0]["rss_kib"])
        for i in range(nodes):
            d = statistics.median(a["rss_kib"][i] for a in on) - statistics.median(b["rss_kib"][i] for b in off)
            per = args.members / nodes
            print("  node %d: RSS with presence minus without %.0f KiB for %.0f members: %.0f bytes/member" %
                  (i, d, per, d * 1024 / per))
            print("  node %d: presenceStats p50 %.0f us p99 %.0f us; presence (cap 1000) p50 %.0f us p99 %.0f us" % (
                i, statistics.median(r["stats_node%d" % i]["p50_us"] for r in on),
                statistics.median(r["stats_node%d" % i]["p99_us"] for r in on),
                statistics.median(r["presence_node%d" % i]["p50_us"] for r in on),
                statistics.median(r["presence_node%d" % i]["p99_us"] for r in on)))
        if on[0].get("redis_in_bytes_per_s") is not None:
            for v, rs in (("on", on), ("off", off)):
                print("  presence %s: to Redis %.0f bytes/s, %.1f commands/s (all nodes), node CPU %s s/s" % (
                    v, med(rs, "redis_in_bytes_per_s"), med(rs, "redis_commands_per_s"),
                    [round(statistics.median(r["node_cpu_per_s"][i] for r in rs), 4) for i in range(nodes)]))
    s = [r for r in runs if r["part"] == "storm"]
    if s:
        for v in ("nojoinleave", "joinleave"):
            rs = [r for r in s if r["variant"] == v]
            print("  storm %s: %d members, server CPU %.3f s (connect phase %.3f s), %s notifications, "
                  "connect %.2f s, wall %.2f s%s" % (
                      v, args.storm, med(rs, "server_cpu_s"), med(rs, "connect_cpu_s"), med(rs, "notifications"),
                      med(rs, "connect_s"), med(rs, "wall_s"),
                      (", redis CPU %.3f s" % med(rs, "broker_cpu_s")) if med(rs, "broker_cpu_s") is not None else ""))
        a = med([r for r in s if r["variant"] == "joinleave"], "server_cpu_s")
        b = med([r for r in s if r["variant"] == "nojoinleave"], "server_cpu_s")
        if a and b:
            print("  storm CPU joinLeave on / off: %.2f" % (a / b))


if __name__ == "__main__":
    main()
