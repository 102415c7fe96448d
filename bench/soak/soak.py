#!/usr/bin/env python3
"""bench/soak/soak.py: a bounded soak of Broadcaster (issue 7). Normally started through bench/soak/run.sh.

It starts build/broadcaster on a free loopback port with its default limits (--threads 2) and drives:

- keepers:   long-lived subscribers (default 1000, 2 channels each; the first 50 also on the firehose) that read
             everything for the whole phase;
- churners:  a pool of connections (default 2000 open at any time) that connect, authenticate, subscribe to 1-2
             channels, read for a random 2-20 s and go away (clean close, unsubscribe + close, or abort), over and
             over: thousands of connections a minute;
- sloths:    a few subscribers to every channel and the firehose that never read (4 KiB receive buffer) but send a
             heartbeat notification every 20 s, for --sloth-life (60 s); then they drain what they got. The
             slow-consumer policy (disconnect) must cut them, and what they got must be a gap-free prefix;
- publishers: 3 REST keep-alive clients and 1 WebSocket client, one request in flight each, together --rate
             publishes/s over --channels channels, plus one REST client sending --firehose-rate big messages/s to
             the firehose channel; each channel has one publisher, and each message carries the channel's counter.

Checks on every broadcast a reading client receives: the subscription's seq is exactly the previous + 1 (starting at
1) and the channel counter is the previous + 1 (no loss, no reordering). At the end of a phase every keeper must
have the last acknowledged counter of each of its channels.

Keepers, publishers and the sampler run in the main process; churners and sloths in a child process (their
handshakes cost the most client CPU, and must not slow the publishers down).

Two phases with the same load: a warm-up (--warmup seconds), after which every client leaves and the server's RSS
and open descriptors are the baseline; then the soak proper (--minutes), after which every client leaves again and
RSS must be back within the slack of the baseline, descriptors back to the baseline, and the connection and
subscription gauges at 0. Prints a summary; exit status 0 only if every check passed.

About RSS: glibc keeps freed heap memory, so RSS after a load is close to the load's high-water mark, not to what
is still allocated. The high-water mark moves with how the sloths' backlogs happen to coincide (each may hold up to
the 1 MiB outbound buffer), so the default slack is 2 MiB + 1 MiB per sloth (or 10 % of the baseline, whichever is
larger). A leak shows differently: as RSS that keeps climbing under steady load ("RSS under load" in the summary,
per connection opened) and past the slack over a long run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[2]
SECRET = "soak-secret-" + os.urandom(8).hex()
API_KEY = "soak-key-" + os.urandom(8).hex()
BASE = "/broadcaster"


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Tokens, frames, HTTP


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub: str, channels: list, ttl: int, scope=("subscribe",)) -> str:
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "aud": "broadcaster", "iat": now, "exp": now + ttl,
                              "authorizedChannels": channels, "scope": list(scope)}).encode())
    sig = b64url(hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    k = (key * (n // 4 + 1))[:n]
    return head + key + (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def parse_frames(buf: bytearray) -> list:
    """Complete server frames at the front of buf (removed from it): [(opcode, payload)]."""
    out = []
    while len(buf) >= 2:
        n, off = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < off + n:
            break
        out.append((buf[0] & 0x0F, bytes(buf[off:off + n])))
        del buf[:off + n]
    return out


async def http(port: int, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
    """One request on its own connection (Connection: close)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        data = await asyncio.wait_for(r.read(), 20)
    finally:
        w.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


async def metrics(port: int) -> dict:
    status, body = await http(port, "GET", f"{BASE}/metrics")
    assert status == 200, status
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The server process


class Server:
    def __init__(self, binary: str, threads: int, extra: list, workdir: str):
        self.log_path = os.path.join(workdir, "broadcaster.log")
        self.log = open(self.log_path, "w")
        env = {k: v for k, v in os.environ.items()}
        env.update(JWT_SECRET=SECRET, API_KEYS=API_KEY)
        argv = [binary, "--port", "0", "--host", "127.0.0.1", "--threads", str(threads), "--log-level", "warn"]
        self.proc = subprocess.Popen(argv + extra, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start-up: {open(self.log_path).read()}")
            m = re.search(r"listening on [0-9.]+:(\d+)", open(self.log_path).read())
            if m:
                self.port = int(m.group(1))
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not report its port")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def warnings(self) -> dict:
        counts = {}
        for line in open(self.log_path):
            if any(f" {level} " in line for level in ("warn", "warning", "error", "critical")):
                key = re.sub(r"[0-9]+", "N", line.split(" ", 2)[2].strip())[:70]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------------------------
# Load


class Phase:
    """Shared state and counters of one load phase."""

    def __init__(self, name: str, args, port: int):
        self.name, self.args, self.port = name, args, port
        self.channels = [f"soak-{name}:{i}" for i in range(args.channels)]
        self.firehose = f"soak-{name}:firehose"  # big messages: sloths fall behind on it, some keepers keep up
        self.acked = {c: 0 for c in self.channels + [self.firehose]}  # last acknowledged counter per channel
        self.next_counter = dict(self.acked)
        self.stop = asyncio.Event()
        self.sources = itertools.cycle([f"127.0.0.{i}" for i in range(2, 2 + args.sources)])
        self.c = dict(connects=0, connect_errors=0, closes_clean=0, closes_unsub=0, aborts=0, deliveries=0,
                      gaps=0, lost_or_reordered=0, publishes=0, publish_errors=0, publisher_behind=0,
                      keeper_dropped=0, keeper_incomplete=0, sloths=0, sloths_cut=0, sloths_not_cut=0,
                      request_errors=0)
        self.samples = []  # buffered problem descriptions (first few)
        self.ttl = int(args.minutes * 60 + args.warmup + 3600)

    def problem(self, what: str):
        if len(self.samples) < 10:
            self.samples.append(what)


class Tracker:
    """Per-subscription checks: seq +1 from 1, channel counter +1."""

    def __init__(self, phase: Phase):
        self.phase = phase
        self.seq = {}
        self.counter = {}

    def start(self, ch: str):
        self.seq[ch] = 0
        self.counter[ch] = None

    def on_broadcast(self, p: dict, who: str):
        ph = self.phase
        ch, seq, counter = p["channel"], p["seq"], p["payload"]["c"]
        ph.c["deliveries"] += 1
        if ch not in self.seq:
            return  # after an unsubscribe: not ours any more
        if seq != self.seq[ch] + 1:
            ph.c["gaps"] += 1
            ph.problem(f"{who}: {ch} seq {seq} after {self.seq[ch]}")
        if self.counter[ch] is not None and counter != self.counter[ch] + 1:
            ph.c["lost_or_reordered"] += 1
            ph.problem(f"{who}: {ch} counter {counter} after {self.counter[ch]}")
        self.seq[ch], self.counter[ch] = seq, counter


class WsClient:
    """A websockets connection with one reader task that checks broadcasts and routes replies."""

    def __init__(self, phase: Phase, who: str):
        self.phase, self.who = phase, who
        self.track = Tracker(phase)
        self.pending = {}
        self.ids = itertools.count(1)
        self.ws = None
        self.reader = None

    async def open(self, token: str):
        ph = self.phase
        self.ws = await websockets.connect(f"ws://127.0.0.1:{ph.port}{BASE}/websocket", open_timeout=20,
                                           close_timeout=3, ping_interval=None, max_size=None, max_queue=None,
                                           compression=None, local_addr=(next(ph.sources), 0))
        self.reader = asyncio.create_task(self._read())
        await self.request("auth", {"token": token})

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg.get("method") == "broadcast":
                    self.track.on_broadcast(msg["params"], self.who)
                else:
                    fut = self.pending.pop(msg.get("requestId"), None)
                    if fut and not fut.done():
                        fut.set_result(msg)
                    elif "error" in msg:
                        self.phase.c["request_errors"] += 1
                        self.phase.problem(f"{self.who}: unsolicited error {msg}")
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))

    async def request(self, method: str, params: dict) -> dict:
        id = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[id] = fut
        await self.ws.send(json.dumps({"id": id, "method": method, "params": params}))
        msg = await asyncio.wait_for(fut, 20)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg["result"]

    async def subscribe(self, ch: str):
        self.track.start(ch)  # before the request: a broadcast may arrive before the reply
        await self.request("subscribe", {"channel": ch})

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed


async def keeper(ph: Phase, i: int, out: list):
    chans = random.sample(ph.channels, 2) + ([ph.firehose] if i < ph.args.firehose_keepers else [])
    c = WsClient(ph, f"keeper{i}")
    try:
        await c.open(make_token(f"keeper{i}", chans, ph.ttl))
        for ch in chans:
            await c.subscribe(ch)
        ph.c["connects"] += 1
        out.append(c)
    except Exception as e:  # noqa: BLE001 - counted and reported
        ph.c["connect_errors"] += 1
        ph.problem(f"keeper{i} open: {e!r}")
        if c.ws:
            c.ws.transport.abort()


async def churner(ph: Phase, i: int, delay: float):
    await asyncio.sleep(delay)  # ramp-up
    lo, hi = ph.args.churn_life
    n = 0
    while not ph.stop.is_set():
        n += 1
        chans = random.sample(ph.channels, random.choice((1, 1, 2)))
        c = WsClient(ph, f"churner{i}.{n}")
        try:
            await c.open(make_token(f"churner{i}", chans, ph.ttl))
            for ch in chans:
                await c.subscribe(ch)
            ph.c["connects"] += 1
        except Exception as e:  # noqa: BLE001
            ph.c["connect_errors"] += 1
            ph.problem(f"churner{i} open: {e!r}")
            if c.ws:
                c.ws.transport.abort()
            await asyncio.sleep(1)
            continue
        try:
            await asyncio.wait_for(ph.stop.wait(), random.uniform(lo, hi))
        except asyncio.TimeoutError:
            pass
        way = random.choice(("close", "close", "unsubscribe", "abort"))
        try:
            if way == "abort":
                c.ws.transport.abort()
                ph.c["aborts"] += 1
            else:
                if way == "unsubscribe":
                    for ch in chans:
                        await c.request("unsubscribe", {"channel": ch})
                        c.track.seq.pop(ch, None)
                    ph.c["closes_unsub"] += 1
                else:
                    ph.c["closes_clean"] += 1
                await c.ws.close()
        except Exception as e:  # noqa: BLE001
            ph.problem(f"churner{i} close ({way}): {e!r}")
            c.ws.transport.abort()
        await c.reader


async def sloth(ph: Phase, i: int):
    """Subscribes to every channel, then does not read for sloth_life seconds; then drains and checks."""
    loop = asyncio.get_running_loop()
    n = 0
    while not ph.stop.is_set():
        n += 1
        who = f"sloth{i}.{n}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((next(ph.sources), 0))
        sock.setblocking(False)
        buf = bytearray()
        track = Tracker(ph)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", ph.port))
            key = base64.b64encode(os.urandom(16)).decode()
            await loop.sock_sendall(sock, (f"GET {BASE}/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            while b"\r\n\r\n" not in buf:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 20)
                if not chunk:
                    raise ConnectionError("closed during handshake")
                buf += chunk
            head, _, rest = bytes(buf).partition(b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n")[0] + b" ":
                raise ConnectionError(head[:60])
            buf = bytearray(rest)
            chans = ph.channels + [ph.firehose]
            reqs = [ws_frame(json.dumps({"id": 1, "method": "auth", "params": {
                "token": make_token(f"sloth{i}", chans, ph.ttl)}}).encode())]
            for k, ch in enumerate(chans):
                track.start(ch)
                reqs.append(ws_frame(json.dumps({"id": k + 2, "method": "subscribe",
                                                 "params": {"channel": ch}}).encode()))
            await loop.sock_sendall(sock, b"".join(reqs))
            replies = 0
            while replies < len(reqs):
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 20)
                if not chunk:
                    raise ConnectionError("closed while subscribing")
                buf += chunk
                for op, data in parse_frames(buf):
                    if op != 1:
                        continue
                    msg = json.loads(data)
                    if msg.get("method") == "broadcast":
                        track.on_broadcast(msg["params"], who)
                    elif "error" in msg:
                        raise RuntimeError(f"request failed: {msg}")
                    else:
                        replies += 1
            ph.c["sloths"] += 1
        except Exception as e:  # noqa: BLE001
            ph.c["connect_errors"] += 1
            ph.problem(f"{who} open: {e!r}")
            sock.close()
            await asyncio.sleep(1)
            continue
        # ... and now it does not read, but it does talk (a heartbeat notification every 20 s, no reply), so that
        # it is the slow-consumer policy that ends it and not the idle timeout
        cut = False
        until = time.monotonic() + ph.args.sloth_life
        while not ph.stop.is_set() and time.monotonic() < until:
            try:
                await asyncio.wait_for(ph.stop.wait(), min(20.0, until - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, ws_frame(b'{"method":"heartbeat"}')), 5)
            except (OSError, asyncio.TimeoutError):
                cut = True
                break
        # drain: a gap-free prefix, then the end of the connection if the server cut it off; a connection still
        # open after 10 s of reading was never cut
        drain_end = time.monotonic() + 10
        try:
            while time.monotonic() < drain_end:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 262144), max(0.01, drain_end - time.monotonic()))
                if not chunk:
                    cut = True
                    break
                buf += chunk
                for op, data in parse_frames(buf):
                    if op == 1:
                        msg = json.loads(data)
                        if msg.get("method") == "broadcast":
                            track.on_broadcast(msg["params"], who)
                    elif op == 8:
                        cut = True
        except ConnectionResetError:
            cut = True
        except asyncio.TimeoutError:
            pass  # still open: it was never cut off
        sock.close()
        ph.c["sloths_cut" if cut else "sloths_not_cut"] += 1


class RestPublisher:
    def __init__(self, ph: Phase):
        self.ph = ph
        self.r = self.w = None

    async def connect(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.ph.port)

    async def publish(self, ch: str, counter: int, pad: str) -> bool:
        body = json.dumps({"channel": ch, "event": "soak", "payload": {"c": counter, "pad": pad}}).encode()
        self.w.write(f"POST {BASE}/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await asyncio.wait_for(self.r.readuntil(b"\r\n\r\n"), 20)
        n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        await asyncio.wait_for(self.r.readexactly(n), 20)
        return head.split()[1] == b"200"


class WsPublisher:
    def __init__(self, ph: Phase, chans: list):
        self.ph, self.chans = ph, chans
        self.c = None

    async def connect(self):
        self.c = WsClient(self.ph, "ws-publisher")
        await self.c.open(make_token("publisher", self.chans, self.ph.ttl, scope=("publish",)))

    async def publish(self, ch: str, counter: int, pad: str) -> bool:
        try:
            await self.c.request("publish", {"channel": ch, "event": "soak", "payload": {"c": counter, "pad": pad}})
            return True
        except RuntimeError:
            return False


async def publisher(ph: Phase, k: int, chans: list, rate: float, pad_bytes: int, ws: bool):
    """One request in flight, `rate` publishes/s round-robin over `chans` (each channel has one publisher, which
    keeps per-channel order)."""
    pub = WsPublisher(ph, chans) if ws else RestPublisher(ph)
    await pub.connect()
    pad = "p" * pad_bytes
    interval = 1 / rate
    start = time.monotonic()
    for n in itertools.count():
        if ph.stop.is_set():
            break
        due = start + n * interval
        now = time.monotonic()
        if due > now:
            try:
                await asyncio.wait_for(ph.stop.wait(), due - now)
                break
            except asyncio.TimeoutError:
                pass
        elif now - due > 1.0:
            ph.c["publisher_behind"] += 1
            start, n = now, 0  # do not try to catch up with a burst
        ch = chans[n % len(chans)]
        counter = ph.next_counter[ch] + 1
        ph.next_counter[ch] = counter
        try:
            ok = await pub.publish(ch, counter, pad)
        except Exception as e:  # noqa: BLE001
            ok = False
            ph.problem(f"publisher {k}: {e!r}")
            await pub.connect()
        if ok:
            ph.acked[ch] = counter
            ph.c["publishes"] += 1
        else:
            ph.c["publish_errors"] += 1
    if isinstance(pub, WsPublisher):
        await pub.c.ws.close()
    else:
        pub.w.close()


def churn_process(name: str, args, port: int, secret: str, stop, results):
    """Child process: churners and sloths until `stop` is set; puts (counters, problems) on `results`."""
    global SECRET
    SECRET = secret

    async def run():
        ph = Phase(name, args, port)
        tasks = [asyncio.create_task(churner(ph, i, random.uniform(0, 10))) for i in range(args.churners)]
        tasks += [asyncio.create_task(sloth(ph, i)) for i in range(args.sloths)]
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        ph.stop.set()
        await asyncio.gather(*tasks)
        return ph.c, ph.samples

    results.put(asyncio.run(run()))


# ---------------------------------------------------------------------------------------------------------------
# Phases


async def sampler(srv: Server, ph: Phase, peaks: dict, every: float = 5.0, report: float = 30.0):
    last_report = time.monotonic()
    while not ph.stop.is_set():
        try:
            m = await metrics(srv.port)
        except Exception:  # noqa: BLE001 - the next sample will tell
            m = {}
        rss, fds = srv.rss_kib(), srv.fds()
        conns = int(m.get("broadcaster_connections", 0))
        peaks.setdefault("samples", []).append((time.monotonic(), rss, int(m.get(
            "broadcaster_connections_accepted_total", 0))))
        peaks["rss"] = max(peaks.get("rss", 0), rss)
        peaks["fds"] = max(peaks.get("fds", 0), fds)
        peaks["connections"] = max(peaks.get("connections", 0), conns)
        if time.monotonic() - last_report >= report:
            last_report = time.monotonic()
            log(f"{ph.name}: {conns} connections open, {int(m.get('broadcaster_connections_accepted_total', 0))} "
                f"accepted since start, {ph.c['publishes']} publishes, keeper gaps {ph.c['gaps']}, RSS {rss} KiB, "
                f"fds {fds}, server cpu {srv.cpu_s():.0f}s")
        try:
            await asyncio.wait_for(ph.stop.wait(), every)
        except asyncio.TimeoutError:
            pass


async def run_phase(srv: Server, name: str, seconds: float, args) -> dict:
    ph = Phase(name, args, srv.port)
    m0 = await metrics(srv.port)
    cpu0 = srv.cpu_s()
    t0 = time.monotonic()
    log(f"{name}: opening {args.keepers} keepers")
    keepers: list = []
    sem = asyncio.Semaphore(200)

    async def bounded(i):
        async with sem:
            await keeper(ph, i, keepers)

    await asyncio.gather(*(bounded(i) for i in range(args.keepers)))
    log(f"{name}: {len(keepers)} keepers up; starting {args.churners} churners, {args.sloths} sloths, "
        f"{args.rate}/s publishes for {seconds:.0f}s")
    peaks: dict = {}
    mp = multiprocessing.get_context("spawn")
    stop, results = mp.Event(), mp.Queue()
    child = mp.Process(target=churn_process, args=(name, args, srv.port, SECRET, stop, results), daemon=True)
    child.start()
    pubs = [asyncio.create_task(publisher(ph, k, ph.channels[k::4], args.rate / 4, args.payload_bytes, k == 3))
            for k in range(4)]
    if args.firehose_rate > 0:
        pubs.append(asyncio.create_task(publisher(ph, 4, [ph.firehose], args.firehose_rate, args.firehose_bytes,
                                                  False)))
    samp = asyncio.create_task(sampler(srv, ph, peaks))
    await asyncio.sleep(seconds)
    ph.stop.set()
    await asyncio.gather(*pubs)
    log(f"{name}: publishing stopped; draining and closing churners and sloths")
    stop.set()
    loop = asyncio.get_running_loop()
    counters, samples = await loop.run_in_executor(None, results.get, True, 120)
    await loop.run_in_executor(None, child.join, 30)
    for k, v in counters.items():
        ph.c[k] += v
    for what in samples:
        ph.problem(what)
    await samp
    # every keeper must reach the last acknowledged counter of each of its channels
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        behind = [c for c in keepers if not c.closed and any(
            c.track.counter[ch] != ph.acked[ch] and ph.acked[ch] > 0 for ch in c.track.seq)]
        if not behind:
            break
        await asyncio.sleep(0.2)
    for c in keepers:
        if c.closed:
            ph.c["keeper_dropped"] += 1
            ph.problem(f"{c.who} was disconnected: {c.ws.close_code} {c.ws.close_reason}")
        elif any(c.track.counter[ch] != ph.acked[ch] and ph.acked[ch] > 0 for ch in c.track.seq):
            ph.c["keeper_incomplete"] += 1
            ph.problem(f"{c.who} incomplete: " + ", ".join(
                f"{ch} {c.track.counter[ch]}/{ph.acked[ch]}" for ch in c.track.seq))
    await asyncio.gather(*(c.ws.close() for c in keepers if not c.closed), return_exceptions=True)
    await asyncio.gather(*(c.reader for c in keepers), return_exceptions=True)
    elapsed = time.monotonic() - t0
    m1 = await metrics(srv.port)
    d = lambda k: int(m1.get(k, 0) - m0.get(k, 0))
    return dict(name=name, seconds=seconds, elapsed=elapsed, offered=args.rate + args.firehose_rate, counters=ph.c, problems=ph.samples, peaks=peaks,
                server_cpu=srv.cpu_s() - cpu0, keepers=len(keepers),
                accepted=d("broadcaster_connections_accepted_total"),
                deliveries=d("broadcaster_deliveries_total"),
                dropped=d("broadcaster_deliveries_dropped_total"),
                slow_closed=d('broadcaster_connections_closed_total{reason="slow_consumer"}'),
                rate_limited=d("broadcaster_rate_limited_total"),
                closes={k.split('"')[1]: d(k) for k in m1 if k.startswith("broadcaster_connections_closed_total")
                        and d(k)})


async def settle(srv: Server, target_fds: int | None, timeout: float = 30.0) -> dict:
    """Wait for the server to notice every client left; returns gauges, fds and RSS."""
    deadline = time.monotonic() + timeout
    while True:
        m = await metrics(srv.port)
        fds = srv.fds()
        done = m["broadcaster_connections"] == 0 and m["broadcaster_subscriptions"] == 0
        if target_fds is not None:
            done = done and fds <= target_fds
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # let the allocator give back what it gives back on its own
    m = await metrics(srv.port)
    return dict(connections=int(m["broadcaster_connections"]), subscriptions=int(m["broadcaster_subscriptions"]),
                channels=int(m["broadcaster_channels"]), fds=srv.fds(), rss=srv.rss_kib())


def rss_trend(p: dict) -> str:
    """RSS under load from 30 s into the phase to its end: flat while connections keep churning means no
    per-connection growth (the comparison with the baseline, after everyone left, includes allocator retention)."""
    samples = p["peaks"].get("samples", [])
    if len(samples) < 2:
        return "    RSS under load: too few samples"
    t0 = samples[0][0]
    first = next((x for x in samples if x[0] - t0 >= 30), samples[0])
    last = samples[-1]
    conns = max(1, last[2] - first[2])
    return (f"    RSS under load: {first[1]} KiB at {first[0] - t0:.0f} s, {last[1]} KiB at {last[0] - t0:.0f} s "
            f"({last[1] - first[1]:+d} KiB over {last[2] - first[2]} more connections, "
            f"{(last[1] - first[1]) * 1024 / conns:+.0f} B/connection)")


def phase_lines(p: dict) -> list:
    c = p["counters"]
    opened = c["connects"] + c["sloths"]
    return [
        f"  {p['name']}: {p['seconds']:.0f} s of load ({p['elapsed']:.0f} s with ramp and drain)",
        f"    connections opened {opened} ({opened / p['seconds']:.0f}/s; server accepted {p['accepted']}), "
        f"peak open {p['peaks'].get('connections', 0)}, connect errors {c['connect_errors']}",
        f"    churn closes: clean {c['closes_clean']}, unsubscribe+close {c['closes_unsub']}, abort {c['aborts']}",
        f"    publishes acknowledged {c['publishes']} ({c['publishes'] / p['seconds']:.0f}/s of "
        f"{p['offered']:g}/s offered), errors "
        f"{c['publish_errors']}, publisher fell behind {c['publisher_behind']}x",
        f"    deliveries: server queued {p['deliveries']}, readers checked {c['deliveries']}; seq gaps {c['gaps']}, "
        f"lost/reordered {c['lost_or_reordered']}",
        f"    keepers {p['keepers']}: disconnected {c['keeper_dropped']}, incomplete {c['keeper_incomplete']}",
        f"    sloths {c['sloths']}: cut off {c['sloths_cut']}, not cut {c['sloths_not_cut']}; server slow-consumer "
        f"closes {p['slow_closed']}, dropped deliveries {p['dropped']}",
        "    server closes by reason: " + ", ".join(f"{k} {v}" for k, v in p["closes"].items()),
        rss_trend(p),
        f"    server CPU {p['server_cpu']:.1f} s ({100 * p['server_cpu'] / p['elapsed']:.0f}% of a core), "
        f"peak RSS {p['peaks'].get('rss', 0)} KiB, peak fds {p['peaks'].get('fds', 0)}, "
        f"rate-limited {p['rate_limited']}",
    ]


async def main_async(args) -> int:
    binary = args.binary or str(ROOT / "build" / "broadcaster")
    workdir = tempfile.mkdtemp(prefix="broadcaster-soak-")
    srv = Server(binary, args.threads, args.server_arg, workdir)
    log(f"server pid {srv.pid} on 127.0.0.1:{srv.port}, log {srv.log_path}")
    t_start = time.monotonic()
    try:
        fresh = await settle(srv, None, 5)
        warm = await run_phase(srv, "warmup", args.warmup, args)
        base = await settle(srv, None)
        log(f"baseline after warm-up: RSS {base['rss']} KiB, fds {base['fds']}")
        soak = await run_phase(srv, "soak", args.minutes * 60, args)
        final = await settle(srv, base["fds"])
        alive = srv.alive()
        status, _ = await http(srv.port, "GET", f"{BASE}/health")
    finally:
        warnings = srv.warnings()
        srv.stop()

    slack_kib = args.rss_slack_kib if args.rss_slack_kib is not None else 2048 + 1024 * args.sloths
    rss_bound = base["rss"] + max(slack_kib, base["rss"] * args.rss_slack_pct / 100)
    checks = []
    for p in (warm, soak):
        c = p["counters"]
        checks += [
            (f"{p['name']}: no seq gap", c["gaps"] == 0),
            (f"{p['name']}: nothing lost or reordered", c["lost_or_reordered"] == 0),
            (f"{p['name']}: every keeper connected and complete", c["keeper_dropped"] == 0
             and c["keeper_incomplete"] == 0 and p["keepers"] == args.keepers),
            (f"{p['name']}: no publish error", c["publish_errors"] == 0),
            (f"{p['name']}: connect errors <= 0.1%", c["connect_errors"] <= 0.001 * max(1, c["connects"])),
            (f"{p['name']}: no unexpected error reply", c["request_errors"] == 0),
        ]
    if args.sloths and args.sloth_life < soak["seconds"]:
        checks.append(("soak: the slow-consumer policy cut the sloths (server counted slow_consumer closes)",
                       soak["counters"]["sloths_cut"] > 0 and soak["slow_closed"] > 0))
    checks += [
        ("gauges back to 0 (connections, subscriptions, channels)",
         final["connections"] == final["subscriptions"] == final["channels"] == 0),
        (f"fds back to baseline ({final['fds']} <= {base['fds']})", final["fds"] <= base["fds"]),
        (f"RSS back to baseline ({final['rss']} <= {rss_bound:.0f} KiB)", final["rss"] <= rss_bound),
        ("server alive and healthy", alive and status == 200),
    ]
    ok = all(passed for _, passed in checks)
    lines = [
        "",
        "Broadcaster soak: "
        f"{args.minutes:g} min (+{args.warmup:g} s warm-up), {args.keepers} keepers, {args.churners} churners "
        f"(life {args.churn_life[0]:g}-{args.churn_life[1]:g} s), {args.sloths} sloths, {args.rate:g} publishes/s "
        f"over {args.channels} channels, payload +{args.payload_bytes} B, firehose {args.firehose_rate:g}/s x "
        f"{args.firehose_bytes} B to {args.firehose_keepers} keepers and the sloths, server --threads {args.threads}",
        *phase_lines(warm),
        *phase_lines(soak),
        f"  memory/fds: fresh RSS {fresh['rss']} KiB fds {fresh['fds']} | after warm-up (baseline) RSS "
        f"{base['rss']} KiB fds {base['fds']} | soak peak RSS {soak['peaks'].get('rss', 0)} KiB | after soak RSS "
        f"{final['rss']} KiB ({final['rss'] - base['rss']:+d} KiB) fds {final['fds']}",
        f"  gauges after soak: connections {final['connections']}, subscriptions {final['subscriptions']}, "
        f"channels {final['channels']}",
        "  server warnings/errors in its log: " + (", ".join(f"{v}x '{k}'" for k, v in warnings.items()) or "none"),
        f"  total wall time {time.monotonic() - t_start:.0f} s",
        "",
        *(f"  [{'ok' if passed else 'FAIL'}] {what}" for what, passed in checks),
    ]
    problems = warm["problems"] + soak["problems"]
    if problems:
        lines += ["", "  first problems:", *(f"    {p}" for p in problems[:20])]
    lines += ["", "RESULT: " + ("PASS" if ok else "FAIL")]
    print("\n".join(lines), flush=True)
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10, help="soak duration after the warm-up (default 10)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default max(60, 10%% of soak))")
    ap.add_argument("--keepers", type=int, default=1000)
    ap.add_argument("--churners", type=int, default=2000, help="churning connections open at any time")
    ap.add_argument("--churn-life", type=float, nargs=2, default=(2.0, 20.0), metavar=("MIN", "MAX"))
    ap.add_argument("--sloths", type=int, default=4)
    ap.add_argument("--sloth-life", type=float, default=60.0)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--rate", type=float, default=100.0, help="publishes/s in total")
    ap.add_argument("--payload-bytes", type=int, default=256)
    ap.add_argument("--firehose-rate", type=float, default=20.0, help="publishes/s of big messages to one channel")
    ap.add_argument("--firehose-bytes", type=int, default=8192)
    ap.add_argument("--firehose-keepers", type=int, default=50, help="keepers also subscribed to the firehose")
    ap.add_argument("--threads", type=int, default=2, help="server worker threads")
    ap.add_argument("--sources", type=int, default=16, help="client source addresses 127.0.0.2..")
    ap.add_argument("--rss-slack-kib", type=int, default=None,
                    help="allowed RSS growth over the baseline (default 2048 + 1024 per sloth)")
    ap.add_argument("--rss-slack-pct", type=float, default=10.0)
    ap.add_argument("--binary", default=None, help="server binary (default build/broadcaster)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra server flag (repeatable)")
    args = ap.parse_args()
    if args.warmup is None:
        args.warmup = max(60.0, args.minutes * 6)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
