#!/usr/bin/env python3
"""Memory per idle subscribed connection, plain vs TLS, against nginx+Nchan serving wss:// in the same run.

Targets (each started fresh on loopback, measured, stopped; the order rotates every repetition):
  plain          build/broadcaster, ws://
  tls            build/broadcaster with a self-signed P-256 certificate made here, wss://
  nchan-tls      nginx+Nchan (bench/peers/nchan/run.sh, two workers) with the same certificate, wss://
  baseline-tls   --baseline BINARY (another commit's build) with TLS, for an A/B within one run
  baseline-plain the same, ws://

Each opens N WebSocket connections (Broadcaster: auth + subscribe; Nchan: GET /sub/<channel>, which is the
subscription), lets them idle, and reads the server's memory from /proc: RSS and PSS summed over its process
tree (nginx: master and workers). Two figures per target:
  kib_per_conn   the slope between the first 20 % of the connections and all of them, so that what the first
                 connections pay once (library code paged in, per-thread buffers, caches) is not spread over N
  kib_naive      (idle - before) / N, as earlier versions of this script printed
The client is Python `websockets` over asyncio in this one process, so N stays modest (the 20000 open-file
limit counts the client's sockets too). Bounded: every connect has a timeout and every server is stopped.

usage: bench/design/tls_memory.py [--connections 2000] [--reps 1] [--targets plain,tls,nchan-tls]
                                  [--binary build/broadcaster] [--baseline OTHER_BUILD/broadcaster]
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET, KEY = "tls-memory-secret", "tls-memory-key"
WARM_SHARE = 0.2  # the first 20 % of the connections: the slope starts there
IDLE_S = 3.0


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(channel: str) -> str:
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": "m", "aud": "broadcaster", "iat": now - 5, "exp": now + 3600,
                              "authorizedChannels": [channel], "scope": ["subscribe"]}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_tree(root: int) -> list:
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, i = [root], 0
    while i < len(out):
        out += kids.get(out[i], [])
        i += 1
    return out


def memory_kib(root: int) -> dict:
    """RSS and PSS (KiB) summed over the process tree."""
    rss = pss = 0
    for pid in proc_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return {"rss": rss, "pss": pss}


def wait_listening(port: int, proc, deadline: float):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


async def open_connections(url_for, first: int, count: int, ctx, broadcaster: bool, conns: list):
    sem = asyncio.Semaphore(64)

    async def one(i: int):
        async with sem:
            ch = "m%d" % (i % 100)
            ws = await websockets.connect(url_for(ch), ssl=ctx, max_size=None, ping_interval=None,
                                          open_timeout=30, close_timeout=2)
            if broadcaster:
                await ws.send(json.dumps({"id": 1, "method": "auth", "params": {"token": token(ch)}}))
                assert "result" in json.loads(await asyncio.wait_for(ws.recv(), 30))
                await ws.send(json.dumps({"id": 2, "method": "subscribe", "params": {"channel": ch}}))
                assert "result" in json.loads(await asyncio.wait_for(ws.recv(), 30))
            conns.append(ws)

    await asyncio.gather(*(one(i) for i in range(first, first + count)))


def start(target: str, binary: str, certdir: str, workdir: str):
    port = free_port()
    tls = target.endswith("tls")
    cert, key = os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem")
    if target == "nchan-tls":
        env = dict(os.environ, NCHAN_TLS_CERT=cert, NCHAN_TLS_KEY=key)
        cmd = [os.path.join(ROOT, "bench/peers/nchan/run.sh"), str(port), os.path.join(workdir, "nchan-%d" % port)]
    else:
        env = None
        cmd = [binary, "--port", str(port), "--host", "127.0.0.1", "--jwt-secret", SECRET, "--api-keys", KEY,
               "--threads", "2", "--log-level", "warn"]
        if tls:
            cmd += ["--tls-cert", cert, "--tls-key", key]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    return proc, port, tls


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def measure(target: str, binary: str, n: int, certdir: str, workdir: str) -> dict:
    proc, port, tls = start(target, binary, certdir, workdir)
    try:
        wait_listening(port, proc, time.monotonic() + 20)
        time.sleep(0.5)  # nginx's workers settle
        ctx = ssl.create_default_context(cafile=os.path.join(certdir, "cert.pem")) if tls else None
        scheme = "wss" if tls else "ws"
        nchan = target.startswith("nchan")
        if nchan:
            url_for = lambda ch: f"{scheme}://127.0.0.1:{port}/sub/{ch}"
        else:
            url_for = lambda ch: f"{scheme}://127.0.0.1:{port}/broadcaster/websocket"
        warm = max(1, int(n * WARM_SHARE))
        before = memory_kib(proc.pid)

        async def run():
            conns = []
            await open_connections(url_for, 0, warm, ctx, not nchan, conns)
            await asyncio.sleep(IDLE_S)
            mid = memory_kib(proc.pid)
            t0 = time.monotonic()
            await open_connections(url_for, warm, n - warm, ctx, not nchan, conns)
            connect_s = time.monotonic() - t0
            await asyncio.sleep(IDLE_S)  # the idle hold is what is measured
            after = memory_kib(proc.pid)
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
            return len(conns), mid, after, connect_s

        held, mid, after, connect_s = asyncio.run(run())
        slope = held - warm
        return {"target": target, "connections": held, "before_kib": before, "warm_kib": mid, "idle_kib": after,
                "kib_per_conn": round((after["rss"] - mid["rss"]) / slope, 2),
                "pss_kib_per_conn": round((after["pss"] - mid["pss"]) / slope, 2),
                "kib_naive": round((after["rss"] - before["rss"]) / held, 2),
                "connect_per_s": round(slope / connect_s, 1)}
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--targets", default="plain,tls,nchan-tls")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "broadcaster"))
    ap.add_argument("--baseline", help="another build's broadcaster, for the baseline-* targets")
    a = ap.parse_args()
    targets = a.targets.split(",")
    if any(t.startswith("baseline") for t in targets) and not a.baseline:
        ap.error("baseline-* targets need --baseline")
    if a.connections > 8000:
        ap.error("at most 8000 connections: the client's sockets count against the same open-file limit")
    results = {t: [] for t in targets}
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        for rep in range(a.reps):
            for t in targets[rep % len(targets):] + targets[:rep % len(targets)]:
                binary = a.baseline if t.startswith("baseline") else a.binary
                r = measure(t, binary, a.connections, d, d)
                results[t].append(r)
                print(json.dumps(r), flush=True)
                print("%-14s %d connections: %.2f KiB per idle subscribed connection (PSS %.2f, naive %.2f), "
                      "%.0f connects/s" % (t, r["connections"], r["kib_per_conn"], r["pss_kib_per_conn"],
                                           r["kib_naive"], r["connect_per_s"]), file=sys.stderr, flush=True)
    print("\nsummary (KiB per idle connection, RSS slope; min-max over %d rep(s)):" % a.reps, file=sys.stderr)
    for t in targets:
        v = sorted(r["kib_per_conn"] for r in results[t])
        p = sorted(r["pss_kib_per_conn"] for r in results[t])
        print("  %-14s %6.2f  (%.2f-%.2f; PSS %.2f)" % (t, v[len(v) // 2], v[0], v[-1], p[len(p) // 2]),
              file=sys.stderr)


if __name__ == "__main__":
    main()
