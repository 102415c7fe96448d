"""Helpers for the Redis broker integration tests: real redis-server processes and a tiny RESP client.

Kept out of a conftest.py on purpose: the parent suite imports its helpers with `from conftest import ...`, and a
second conftest module here would shadow that name.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import BASE, Server

PREFIX = "broadcaster:"  # redis_options::channel_prefix


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    pytest.fail("no free port pair for a cluster node")


async def resume_on_the_other_node(a: Server, b: Server, ch: str):
    """Three messages published on b reach a subscriber on a, which then leaves; five more are published on a; a
    client resumes on b from the last one the first saw. Returns that subscribe's result, the resuming client and
    the position it resumed from."""
    from conftest import Client, make_token, rest_publish
    tok = make_token(authorizedChannels=[ch])
    first = await Client.connect(a, tok)
    await first.subscribe(ch)
    for i in range(3):
        assert rest_publish(b, ch, "e", i).status_code == 200
    seen = [await first.next_broadcast() for _ in range(3)]
    await first.conn.close()
    for i in range(3, 8):
        assert rest_publish(a, ch, "e", i).status_code == 200
    again = await Client.connect(b, tok)
    since = {"epoch": seen[-1]["epoch"], "offset": seen[-1]["offset"]}
    return await again.subscribe(ch, since=since), again, since


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        return [_read_reply(f) for _ in range(int(rest))]
    raise RuntimeError(f"bad RESP line {line!r}")


def resp(port: int, *args: str | bytes, timeout: float = 2.0):
    """One Redis command over a fresh connection (RESP2)."""
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        with s.makefile("rb") as f:
            return _read_reply(f)


class RedisConnection:
    """One kept-open RESP2 connection, for commands that must still work while Redis refuses new connections."""

    def __init__(self, port: int, timeout: float = 2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def __call__(self, *args: str | bytes):
        parts = [a.encode() if isinstance(a, str) else a for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return _read_reply(self.file)

    def close(self):
        self.file.close()
        self.sock.close()


class RedisServer:
    """redis-server on 127.0.0.1, no persistence. kill() is SIGKILL; start() again reuses the same port."""

    def __init__(self, port: int | None = None, start: bool = True, args: tuple[str, ...] = ()):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed (scripts/install-deps.sh installs Debian's redis-server)")
        self.port = port or free_port()
        self.args = args  # more redis-server options, e.g. ("--replicaof", "127.0.0.1", "6379")
        self.proc: subprocess.Popen | None = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if resp(self.port, "PING", timeout=0.5) == "PONG":
                    return
            except (OSError, RuntimeError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def numsub(self, channel: str) -> int:
        """How many connections (= nodes) are subscribed to a Broadcaster channel."""
        reply = resp(self.port, "PUBSUB", "NUMSUB", PREFIX + channel)
        return int(reply[1])

    def wait_numsub(self, channel: str, n: int, timeout: float = 5.0):
        """SUBSCRIBE in Redis is asynchronous to the client's subscribe reply: wait until every node's is in."""
        deadline = time.monotonic() + timeout
        while (got := self.numsub(channel)) != n:
            assert time.monotonic() < deadline, f"{channel}: {got} subscribed nodes in Redis, expected {n}"
            time.sleep(0.01)


class LaxServer(Server):
    """A node that may start while Redis is down: waits for the listening line, not for /health 200."""

    def _wait_health(self, deadline: float, base: str):
        return


def start_node(redis_url: str, *extra: str, healthy: bool = True) -> Server:
    args = ("--broker", "redis", "--redis-url", redis_url, "--threads", "2", *extra)
    return (Server if healthy else LaxServer)(*args).wait_listening(timeout=15)


def health(node: Server) -> int:
    return requests.get(node.url("/health"), timeout=2).status_code


def redis_metrics(node: Server) -> dict[str, float]:
    """The node's per-shard Redis series from /metrics, keyed by name without labels (one Redis shard)."""
    out = {}
    for line in requests.get(node.url("/metrics"), timeout=2).text.splitlines():
        if line.startswith("broadcaster_redis_"):
            series, _, value = line.rpartition(" ")
            name, _, labels = series.partition("{")
            assert 'shard="0"' in labels and name not in out, f"expected one Redis shard: {line}"
            out[name] = float(value)
    return out


def wait_redis_metric(node: Server, name: str, pred, timeout: float = 10.0) -> dict[str, float]:
    """Polls /metrics until pred(value of `name`) holds; there is no event for a counter. Returns every series."""
    deadline = time.monotonic() + timeout
    while not pred((m := redis_metrics(node)).get(name)):
        assert time.monotonic() < deadline, f"{name}: {m.get(name)} after {timeout}s\n{node.output()}"
        time.sleep(0.02)
    return m


def wait_health(node: Server, status: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while (got := health(node)) != status:
        assert time.monotonic() < deadline, f"/health stayed {got}, expected {status}\n{node.output()}"
        time.sleep(0.02)


def shard_of(channel: str, shards: int) -> int:
    """redis_broker::shard_of: FNV-1a 64 of the name, then Jump Consistent Hash. Other tools must agree on it."""
    if shards <= 1:
        return 0
    mask = (1 << 64) - 1
    key = 0xcbf29ce484222325
    for byte in channel.encode():
        key = ((key ^ byte) * 0x100000001b3) & mask
    b, j = -1, 0
    while j < shards:
        b = j
        key = (key * 2862933555777941757 + 1) & mask
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def stop_all(*procs):
    """Teardown: stop nodes (SIGTERM, then SIGKILL) and kill Redis, whatever state they are in."""
    for p in procs:
        try:
            if isinstance(p, RedisServer):
                p.kill()
            elif p is not None:
                p.stop()
        except Exception:  # keep tearing down the rest
            pass


__all__ = ["BASE", "PREFIX", "RedisConnection", "RedisServer", "LaxServer", "free_port", "health", "resp", "shard_of", "start_node",
           "stop_all", "wait_health"]
