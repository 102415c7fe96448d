"""Publishes waiting on the broker are answered honestly: never cut off by the HTTP head deadline, and on SIGTERM
every publish in flight gets its answer before its connection closes.

A publish is "in flight" while Redis holds its reply: the tests freeze redis-server with SIGSTOP, so that the
PUBLISH is sent and unanswered, and observe the node's `broadcaster_redis_in_flight` to know it is.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path

import requests

from conftest import API_KEY, Client, Server, async_test, chan, make_token

sys.path.insert(0, str(Path(__file__).resolve().parent / "redis"))
from redis_helpers import RedisServer, start_node, stop_all, wait_redis_metric  # noqa: E402


class Frozen:
    """redis-server stopped with SIGSTOP until thaw() (or the end of the block)."""

    def __init__(self, redis: RedisServer):
        self.redis = redis

    def __enter__(self):
        self.redis.proc.send_signal(signal.SIGSTOP)
        return self

    def thaw(self):
        self.redis.proc.send_signal(signal.SIGCONT)

    def __exit__(self, *exc):
        self.thaw()


def one_thread_node(redis: RedisServer) -> Server:
    """One worker thread: once /health says the node is draining, every connection's thread knows it too."""
    return Server("--broker", "redis", "--redis-url", redis.url, "--threads", "1").wait_listening(timeout=15)


def wait_draining(session: requests.Session, node: Server, timeout: float = 5.0):
    """Polls /health over a keep-alive connection opened before SIGTERM (the listener is closed by then)."""
    deadline = time.monotonic() + timeout
    while (status := session.get(node.url("/health"), timeout=2).status_code) != 503:
        assert time.monotonic() < deadline, f"/health stayed {status} after SIGTERM"
        time.sleep(0.01)


def rest_publish_in_thread(node, channel: str, payload, out: dict) -> threading.Thread:
    def run():
        try:
            r = requests.post(node.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                              json={"channel": channel, "event": "rest", "payload": payload}, timeout=20)
            out["status"], out["body"] = r.status_code, r.json()
        except requests.RequestException as e:
            out["error"] = repr(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@async_test(timeout=40)
async def test_rest_publish_waiting_on_the_broker_outlives_the_head_deadline():
    """--handshake-timeout bounds reading the request, not the broker's answer: a publish that Redis does not
    answer gets 503 Unavailable from the broker's own timeout (2 s), not a connection cut at 1 s."""
    redis = RedisServer()
    node = None
    try:
        node = start_node(redis.url, "--handshake-timeout", "1")
        with Frozen(redis):
            out: dict = {}
            t0 = time.monotonic()
            t = rest_publish_in_thread(node, chan("frozen"), 1, out)
            await asyncio.to_thread(t.join, 15)
            elapsed = time.monotonic() - t0
        assert "error" not in out, f"the connection was cut instead of answered: {out['error']}"
        assert out["status"] == 503, out
        assert out["body"]["error"]["code"] == "Unavailable", out
        assert elapsed > 1.0, elapsed  # answered after the head deadline had passed
        assert node.alive()
    finally:
        stop_all(node, redis)


@async_test(timeout=40)
async def test_sigterm_answers_every_publish_in_flight_before_closing():
    """SIGTERM while a WebSocket publish and a REST publish wait for Redis: the WebSocket client gets the answer
    to its publish before the close frame (1001), the REST client gets its HTTP answer, the node exits 0, and
    what was acknowledged reaches a subscriber on another node."""
    redis = RedisServer()
    node = other = None
    try:
        node = one_thread_node(redis)
        other = start_node(redis.url)
        ch = chan("drain")
        watcher = await Client.connect(other, make_token(authorizedChannels=[ch]))
        await watcher.subscribe(ch)
        redis.wait_numsub(ch, 1)
        publisher = await Client.connect(node, make_token(authorizedChannels=[ch]))
        with Frozen(redis) as frozen:
            await publisher.send({"id": 7, "method": "publish",
                                  "params": {"channel": ch, "event": "ws", "payload": "from-ws"}})
            out: dict = {}
            t = rest_publish_in_thread(node, ch, "from-rest", out)
            await asyncio.to_thread(wait_redis_metric, node, "broadcaster_redis_in_flight", lambda v: v == 2)
            probe = requests.Session()
            assert probe.get(node.url("/health"), timeout=5).status_code == 200
            node.signal(signal.SIGTERM)
            await asyncio.to_thread(wait_draining, probe, node)
            frozen.thaw()
            reply = await publisher.recv(timeout=5)
            assert reply.get("requestId") == 7 and "result" in reply, reply
            code, _ = await publisher.wait_closed(5)
            assert code == 1001, code
            await asyncio.to_thread(t.join, 10)
        assert out.get("status") == 200, out
        rc = await asyncio.to_thread(node.proc.wait, 10)
        assert rc == 0, node.output()
        got = {(await watcher.next_broadcast())["payload"] for _ in range(2)}
        assert got == {"from-ws", "from-rest"}, got
        await watcher.close()
    finally:
        stop_all(node, other, redis)


@async_test(timeout=40)
async def test_publishes_during_shutdown_are_refused_with_unavailable():
    """Once draining, a new publish on a connection that is still open is answered Unavailable (it would never
    be delivered by this node), and REST publishes answer 503 with Connection: close."""
    redis = RedisServer()
    node = None
    try:
        node = one_thread_node(redis)
        ch = chan("late")
        c = await Client.connect(node, make_token(authorizedChannels=[ch]))
        with Frozen(redis) as frozen:
            await c.send({"id": 1, "method": "publish", "params": {"channel": ch, "event": "e", "payload": 1}})
            await asyncio.to_thread(wait_redis_metric, node, "broadcaster_redis_in_flight", lambda v: v == 1)
            # A keep-alive REST connection opened before the signal.
            s = requests.Session()
            assert s.get(node.url("/health"), timeout=5).status_code == 200
            node.signal(signal.SIGTERM)
            await asyncio.to_thread(wait_draining, s, node)
            await c.send({"id": 2, "method": "publish", "params": {"channel": ch, "event": "e", "payload": 2}})
            refused = await c.recv(timeout=5)
            assert refused.get("requestId") == 2 and refused["error"]["code"] == "Unavailable", refused
            r = s.post(node.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                       data=json.dumps({"channel": ch, "event": "e", "payload": 3}), timeout=5)
            assert r.status_code == 503 and r.json()["error"]["code"] == "Unavailable", r.text
            assert r.headers.get("Connection", "").lower() == "close"
            frozen.thaw()
            first = await c.recv(timeout=5)
            assert first.get("requestId") == 1 and "result" in first, first
            code, _ = await c.wait_closed(5)
            assert code == 1001
    finally:
        stop_all(node, redis)
