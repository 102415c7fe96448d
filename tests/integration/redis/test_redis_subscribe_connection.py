"""A node's own SUBSCRIBE connection to Redis lost while the node and Redis run (--broker redis).

While it is down, or back but not yet re-subscribed, a message published on the node could not reach the node's
own subscribers: the node answers 503 Unavailable and /health is 503; every publish answered 200 reaches them.
Redis is made to refuse new connections (maxclients 1) while the connection is killed, so that the outage lasts
until the test ends it and can be observed without racing the reconnect. (Not an ACL refusing SUBSCRIBE: the
subscribe connection's ping is a SUBSCRIBE of a private channel, so that would drop the connection itself.)
"""

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from conftest import Client, async_test, chan, check_rest_error, make_token, rest_publish
from redis_helpers import (RedisConnection, RedisServer, health, redis_metrics, start_node, stop_all, wait_health,
                           wait_redis_metric)


@pytest.fixture
def solo():
    """A Redis of its own (the test limits its clients and kills some) and one node."""
    redis = RedisServer()
    node = None
    try:
        node = start_node(redis.url)
        yield SimpleNamespace(redis=redis, node=node)
        assert node.alive(), node.output()
    finally:
        stop_all(node, redis)


def kill_subscribe_connection(admin: RedisConnection):
    """The node's subscribe connection is the only pub/sub client of this Redis: Redis closes it."""
    assert admin("CLIENT", "KILL", "TYPE", "pubsub") == 1


class Publisher(threading.Thread):
    """Publishes to one channel over REST, one request after another, until stopped; records every answer."""

    def __init__(self, node, channel):
        super().__init__(daemon=True)
        self.node, self.channel = node, channel
        self.answers = []  # (status, id or None), in order
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self):
        i = 0
        while not self.halt.is_set():
            r = rest_publish(self.node, self.channel, "e", i)
            with self.lock:
                self.answers.append((r.status_code, r.json().get("id") if r.status_code == 200 else None))
            i += 1

    def count(self, status) -> int:
        with self.lock:
            return sum(1 for s, _ in self.answers if s == status)

    def wait_count(self, status, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.count(status) < n:
            assert self.is_alive() and time.monotonic() < deadline, f"{self.count(status)} answers {status}"
            time.sleep(0.01)

    def stop(self):
        self.halt.set()
        self.join(10)
        assert not self.is_alive()


@async_test(60)
async def test_publishes_are_refused_until_the_node_has_resubscribed_and_none_answered_200_is_lost(solo):
    node, redis = solo.node, solo.redis
    ch = chan("subconn")
    sub = await Client.connect(node, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    await asyncio.to_thread(redis.wait_numsub, ch, 1)
    received = []

    async def read():
        while True:
            received.append((await sub.next_broadcast(timeout=60))["id"])

    reader = asyncio.create_task(read())
    publisher = Publisher(node, ch)
    publisher.start()
    try:
        await asyncio.to_thread(publisher.wait_count, 200, 20)
        before = await asyncio.to_thread(redis_metrics, node)

        admin = RedisConnection(redis.port)
        maxclients = admin("CONFIG", "GET", "maxclients")[1]
        assert admin("CONFIG", "SET", "maxclients", "1") == "OK"  # connections already open stay
        await asyncio.to_thread(kill_subscribe_connection, admin)
        await asyncio.to_thread(wait_health, node, 503, 5)
        # The node keeps trying to reconnect and Redis keeps refusing: the outage is still on.
        m = await asyncio.to_thread(wait_redis_metric, node, "broadcaster_redis_connect_failures_total",
                                    lambda v: v >= before["broadcaster_redis_connect_failures_total"] + 2)
        assert m["broadcaster_redis_shard_up"] == 0, m
        check_rest_error(await asyncio.to_thread(rest_publish, node, ch, "e", "refused"), 503, "Unavailable")
        assert await asyncio.to_thread(health, node) == 503
        await asyncio.to_thread(publisher.wait_count, 503, 1)

        assert admin("CONFIG", "SET", "maxclients", maxclients) == "OK"
        admin.close()
        await asyncio.to_thread(wait_health, node, 200, 10)
        assert redis.numsub(ch) == 1, "healthy again means re-subscribed"
        resumed = publisher.count(200)
        await asyncio.to_thread(publisher.wait_count, 200, resumed + 20)
    finally:
        await asyncio.to_thread(publisher.stop)

    statuses = {s for s, _ in publisher.answers}
    assert statuses <= {200, 503}, statuses
    acknowledged = [i for s, i in publisher.answers if s == 200]
    deadline = time.monotonic() + 10
    while not set(acknowledged) <= set(received):
        assert time.monotonic() < deadline, f"{len(set(acknowledged) - set(received))} of {len(acknowledged)} " \
                                            f"publishes answered 200 never reached the subscriber on the node"
        await asyncio.sleep(0.02)
    reader.cancel()
    position = {id: n for n, id in enumerate(received)}
    assert [position[i] for i in acknowledged] == sorted(position[i] for i in acknowledged), "order kept"
    m = await asyncio.to_thread(redis_metrics, node)
    assert m["broadcaster_redis_shard_up"] == 1 and m["broadcaster_redis_reconnects_total"] == 1, m
    await sub.close()


@async_test(30)
async def test_a_lost_subscribe_connection_is_logged_as_lost_and_not_counted_as_a_failed_attempt(solo):
    node, redis = solo.node, solo.redis
    ch = chan("lost")
    sub = await Client.connect(node, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    await asyncio.to_thread(redis.wait_numsub, ch, 1)
    admin = RedisConnection(redis.port)
    await asyncio.to_thread(kill_subscribe_connection, admin)
    admin.close()

    m = await asyncio.to_thread(wait_redis_metric, node, "broadcaster_redis_reconnects_total", lambda v: v == 1)
    assert m["broadcaster_redis_connect_failures_total"] == 0, m
    await asyncio.to_thread(wait_health, node, 200, 5)
    await asyncio.to_thread(redis.wait_numsub, ch, 1)
    out = node.output()
    lost = [l for l in out.splitlines()
            if f"redis shard 0 subscribe (127.0.0.1:{redis.port}): connection lost (" in l]
    assert len(lost) == 1 and "Server closed the connection" in lost[0], out
    assert "cannot connect" not in out, out
    await sub.close()
