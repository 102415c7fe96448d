#!/usr/bin/env python3
"""Memory per idle subscribed connection, plain vs TLS, on one server binary.

Starts build/broadcaster twice on loopback (plain, then with a self-signed certificate made here), opens N
WebSocket connections to each (auth + subscribe, then idle), and prints the server's RSS growth per connection.
The client is Python `websockets` over asyncio (one process), so N stays modest; the server's share is what is
measured (VmRSS of its process, before connecting and after the connections have idled for a few seconds).

usage: bench/design/tls_memory.py [--connections 2000] [--binary build/broadcaster]
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET, KEY = "tls-memory-secret", "tls-memory-key"


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


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_listening(port: int, deadline: float):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


async def hold(url: str, n: int, ctx, idle: float) -> int:
    conns = []
    sem = asyncio.Semaphore(64)

    async def one(i: int):
        async with sem:
            ws = await websockets.connect(url, ssl=ctx, max_size=None, ping_interval=None, open_timeout=30)
            ch = "m%d" % (i % 100)
            await ws.send(json.dumps({"id": 1, "method": "auth", "params": {"token": token(ch)}}))
            assert "result" in json.loads(await ws.recv())
            await ws.send(json.dumps({"id": 2, "method": "subscribe", "params": {"channel": ch}}))
            assert "result" in json.loads(await ws.recv())
            conns.append(ws)

    await asyncio.gather(*(one(i) for i in range(n)))
    await asyncio.sleep(idle)  # the idle hold is what is measured
    return len(conns), conns


def measure(binary: str, n: int, tls: bool, certdir: str) -> dict:
    port = free_port()
    cmd = [binary, "--port", str(port), "--host", "127.0.0.1", "--jwt-secret", SECRET, "--api-keys", KEY,
           "--threads", "2", "--log-level", "warn"]
    ctx = None
    if tls:
        cmd += ["--tls-cert", os.path.join(certdir, "cert.pem"), "--tls-key", os.path.join(certdir, "key.pem")]
        ctx = ssl.create_default_context(cafile=os.path.join(certdir, "cert.pem"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, time.monotonic() + 10)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/broadcaster/websocket"

        async def run():
            held, conns = await hold(url, n, ctx, 3.0)
            after = rss_kib(proc.pid)
            for ws in conns:
                await ws.close()
            return held, after

        held, after = asyncio.run(run())
        return {"tls": tls, "connections": held, "rss_before_kib": before, "rss_idle_kib": after,
                "kib_per_conn": (after - before) / held}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "broadcaster"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        for tls in (False, True):
            r = measure(a.binary, a.connections, tls, d)
            print(json.dumps(r))
            print("%-5s %d connections: RSS %d -> %d KiB, %.2f KiB per idle subscribed connection" %
                  ("tls" if tls else "plain", r["connections"], r["rss_before_kib"], r["rss_idle_kib"],
                   r["kib_per_conn"]), file=sys.stderr)


if __name__ == "__main__":
    main()
