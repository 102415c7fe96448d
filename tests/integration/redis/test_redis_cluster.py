"""Several Broadcaster nodes sharing Redis (--broker redis): cross-node delivery, seq, ordering, node-level
interest, sharding over two Redis instances, and Redis going away (at start and while running).

Everything runs on 127.0.0.1 with real redis-server processes on free ports; every test is bounded in time
(async_test) and tears down every process it started.
"""

import asyncio
import json
import select
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest

from conftest import (API_KEY, BASE, BINARY, Client, RawWS, async_test, chan, check_rest_error, clean_env,
                      make_token, read_http_response, rest_ok, rest_publish)
from redis_helpers import (PREFIX, RedisServer, free_port, health, redis_metrics, resp, shard_of, start_node,
                           stop_all, wait_health, wait_redis_metric)


def _finish(nodes, redis_servers):
    crashed = [n for n in nodes if n is not None and not n.alive()]
    stop_all(*nodes, *redis_servers)
    if crashed:
        pytest.fail("a node died during the test:\n" + "\n".join(n.output() for n in crashed))


@pytest.fixture(scope="module")
def cluster():
    """One Redis, three nodes A, B, C."""
    redis = RedisServer()
    nodes = []
    try:
        nodes = [start_node(redis.url) for _ in range(3)]
    except BaseException:
        stop_all(*nodes, redis)
        raise
    yield SimpleNamespace(redis=redis, a=nodes[0], b=nodes[1], c=nodes[2])
    _finish(nodes, [redis])


@pytest.fixture
def pair():
    """A Redis of its own (the test kills it) and two nodes A, B."""
    redis = RedisServer()
    nodes = []
    try:
        nodes = [start_node(redis.url) for _ in range(2)]
    except BaseException:
        stop_all(*nodes, redis)
        raise
    yield SimpleNamespace(redis=redis, a=nodes[0], b=nodes[1])
    _finish(nodes, [redis])


# ---------------------------------------------------------------------------------------------------------------
# Cross-node delivery


@async_test(40)
async def test_publish_on_a_over_rest_and_websocket_reaches_b_and_c_with_seq(cluster):
    a, b, c = cluster.a, cluster.b, cluster.c
    ch = chan("cl")
    tok = make_token(authorizedChannels=[ch])
    subs = [await Client.connect(n, tok) for n in (b, c, c, a)]  # two on C: seq is per subscription
    for s in subs:
        await s.subscribe(ch)
    await asyncio.to_thread(cluster.redis.wait_numsub, ch, 3)  # one Redis subscription per node, not per client
    publisher = await Client.connect(a, tok)
    before = [await asyncio.to_thread(redis_metrics, n) for n in (a, b, c)]

    sent = []
    for i in range(30):
        if i % 2:
            res = await asyncio.to_thread(rest_ok, a, ch, "rest", {"i": i})
        else:
            res = await publisher.publish(ch, {"i": i}, event="ws")
        sent.append((res, i))

    for s in subs:
        for seq, (res, i) in enumerate(sent, 1):
            m = await s.next_broadcast()
            assert m["seq"] == seq, m
            assert m["id"] == res["id"] and m["createTime"] == res["createTime"], (m, res)
            assert m["channel"] == ch and m["payload"] == {"i": i}, m
            assert m["event"] == ("rest" if i % 2 else "ws"), m
        await s.quiet()
    await publisher.quiet()
    after = [await asyncio.to_thread(redis_metrics, n) for n in (a, b, c)]
    growth = [{k: after[i][k] - before[i][k] for k in ("broadcaster_redis_published_total",
                                                        "broadcaster_redis_received_total")} for i in range(3)]
    # Every node is subscribed, A included: each receives each message once, however many local subscribers.
    assert growth == [{"broadcaster_redis_published_total": 30, "broadcaster_redis_received_total": 30},
                      {"broadcaster_redis_published_total": 0, "broadcaster_redis_received_total": 30},
                      {"broadcaster_redis_published_total": 0, "broadcaster_redis_received_total": 30}], growth
    for cl in subs + [publisher]:
        await cl.close()


@async_test(40)
async def test_pipelined_publishes_from_one_connection_arrive_in_order_on_every_node(cluster):
    a, b, c = cluster.a, cluster.b, cluster.c
    ch = chan("ord")
    tok = make_token(authorizedChannels=[ch])
    subs = [await Client.connect(n, tok) for n in (b, c)]
    for s in subs:
        await s.subscribe(ch)
    await asyncio.to_thread(cluster.redis.wait_numsub, ch, 2)

    n = 300
    publisher = await Client.connect(a, tok)
    for i in range(n):  # no waiting for replies between them
        await publisher.send({"id": 10_000 + i, "method": "publish",
                              "params": {"channel": ch, "event": "e", "payload": i}})
    ids = []
    for i in range(n):
        r = await publisher.recv()
        assert r["requestId"] == 10_000 + i and "result" in r, r
        ids.append(r["result"]["id"])

    for s in subs:
        got = [await s.next_broadcast() for _ in range(n)]
        assert [m["payload"] for m in got] == list(range(n))
        assert [m["seq"] for m in got] == list(range(1, n + 1))
        assert [m["id"] for m in got] == ids
        await s.quiet()
    for cl in subs + [publisher]:
        await cl.close()


def test_a_subscribe_reply_means_messages_published_on_other_nodes_arrive(cluster):
    # No waiting for Redis in between: the reply itself must be enough. The publish leaves as soon as the
    # reply's bytes reach the client (before parsing), tens of microseconds, about one Redis round trip: before
    # the reply waited for Redis's SUBSCRIBE confirmation, many of these publishes were lost.
    a, b = cluster.a, cluster.b
    channels = [chan("live") for _ in range(400)]
    sub = RawWS(b.port)
    assert "result" in sub.request("auth", {"token": make_token(authorizedChannels=channels)})
    pub = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    try:
        lost = []
        for i, ch in enumerate(channels):
            body = json.dumps({"channel": ch, "event": "e", "payload": i}).encode()
            post = (f"POST {BASE}/publish HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {API_KEY}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            sub.send_json({"id": i + 1, "method": "subscribe", "params": {"channel": ch}})
            select.select([sub.sock], [], [], 5)  # the reply is on its way in: publish before even reading it
            pub.sendall(post)
            reply = sub.recv_msg()
            assert reply.get("requestId") == i + 1 and "result" in reply, reply
            status, _, _ = read_http_response(pub)
            assert status == 200
            try:
                m = sub.recv_msg(timeout=1)
                assert m["method"] == "broadcast" and m["params"]["channel"] == ch, m
            except socket.timeout:
                lost.append(ch)
                if len(lost) == 3:
                    break
        assert not lost, f"lost {len(lost)} publishes made right after their subscribe reply (after {i + 1} channels)"
    finally:
        pub.close()
        sub.close()


@async_test(30)
async def test_a_node_holds_one_redis_subscription_while_it_has_local_subscribers(cluster):
    b = cluster.b
    ch = chan("int")
    tok = make_token(authorizedChannels=[ch])
    assert cluster.redis.numsub(ch) == 0
    x = await Client.connect(b, tok)
    y = await Client.connect(b, tok)
    await x.subscribe(ch)
    await y.subscribe(ch)
    await asyncio.to_thread(cluster.redis.wait_numsub, ch, 1)

    await x.ok("unsubscribe", {"channel": ch})
    res = await asyncio.to_thread(rest_ok, cluster.a, ch, "e", "still")
    m = await y.next_broadcast()
    assert m["id"] == res["id"] and m["seq"] == 1
    assert cluster.redis.numsub(ch) == 1, "one local subscriber left: the node stays subscribed"
    await x.quiet()

    await y.close()  # the last local subscriber leaves by disconnecting
    await asyncio.to_thread(cluster.redis.wait_numsub, ch, 0)
    await x.close()


@async_test(30)
async def test_foreign_messages_on_a_redis_channel_are_dropped_and_counted(cluster):
    b = cluster.b
    ch = chan("foreign")
    c = await Client.connect(b, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    await asyncio.to_thread(cluster.redis.wait_numsub, ch, 1)
    before = (await asyncio.to_thread(redis_metrics, b))["broadcaster_redis_invalid_total"]

    # Another program publishing under our prefix: not an envelope, an empty message, and a truncated one.
    for junk in (b"hello", b"", b"\x01\xff\xff"):
        assert await asyncio.to_thread(resp, cluster.redis.port, "PUBLISH", PREFIX + ch, junk) == 1
    await asyncio.to_thread(wait_redis_metric, b, "broadcaster_redis_invalid_total", lambda v: v == before + 3)

    res = await asyncio.to_thread(rest_ok, cluster.a, ch, "e", "real")
    m = await c.next_broadcast()  # the first broadcast is the real one, seq 1: nothing of the junk reached it
    assert (m["seq"], m["id"], m["payload"]) == (1, res["id"], "real"), m
    await c.quiet()
    await c.close()
    assert b.alive()


# ---------------------------------------------------------------------------------------------------------------
# Sharding


@async_test(40)
async def test_channels_are_sharded_over_two_redis_instances():
    r0, r1 = RedisServer(), RedisServer()
    nodes = []
    try:
        urls = f"{r0.url},{r1.url}"
        nodes = [start_node(urls), start_node(urls)]
        a, b = nodes
        channels = [chan("sh") for _ in range(16)]
        where = {ch: shard_of(ch, 2) for ch in channels}
        assert set(where.values()) == {0, 1}, "test channels must cover both shards"
        tok = make_token(authorizedChannels=channels)
        sub = await Client.connect(b, tok)
        for ch in channels:
            await sub.subscribe(ch)
        for ch, shard in where.items():
            mine, other = (r0, r1) if shard == 0 else (r1, r0)
            await asyncio.to_thread(mine.wait_numsub, ch, 1)
            assert other.numsub(ch) == 0, f"{ch} is subscribed on the wrong Redis"

        sent = {}
        for ch in channels:
            sent[ch] = (await asyncio.to_thread(rest_ok, a, ch, "e", {"ch": ch}))["id"]
        got = {}
        for _ in channels:
            m = await sub.next_broadcast()
            got[m["channel"]] = m
        assert {ch: m["id"] for ch, m in got.items()} == sent
        assert all(m["seq"] == 1 and m["payload"] == {"ch": ch} for ch, m in got.items())
        await sub.quiet()
        await sub.close()
    finally:
        _finish(nodes, [r0, r1])


# ---------------------------------------------------------------------------------------------------------------
# Redis going away


@async_test(60)
async def test_redis_killed_and_restarted_while_nodes_run(pair):
    a, b, redis = pair.a, pair.b, pair.redis
    ch = chan("kill")
    tok = make_token(authorizedChannels=[ch])
    subs = [await Client.connect(n, tok) for n in (b, b, a)]
    for s in subs:
        await s.subscribe(ch)
    await asyncio.to_thread(redis.wait_numsub, ch, 2)
    ws_pub = await Client.connect(a, tok)
    for i in range(3):
        await asyncio.to_thread(rest_ok, a, ch, "e", i)
    for s in subs:
        assert [(await s.next_broadcast())["seq"] for _ in range(3)] == [1, 2, 3]

    redis.kill()
    for node in (a, b):
        await asyncio.to_thread(wait_health, node, 503, 5)

    t0 = time.monotonic()
    r = await asyncio.to_thread(rest_publish, a, ch, "e", "lost")
    check_rest_error(r, 503, "Unavailable")
    assert time.monotonic() - t0 < 1.0, "a publish while Redis is down answers at once"
    await ws_pub.err("publish", {"channel": ch, "event": "e", "payload": "lost"}, code="Unavailable")
    for s in subs + [ws_pub]:
        await s.alive()  # connected clients stay connected

    for node in (a, b):  # reconnect attempts fail for a while, counted
        m = await asyncio.to_thread(wait_redis_metric, node, "broadcaster_redis_connect_failures_total",
                                    lambda v: v >= 4)
        assert m["broadcaster_redis_shard_up"] == 0 and m["broadcaster_redis_in_flight"] == 0, m
    await asyncio.to_thread(redis.start)
    for node in (a, b):
        await asyncio.to_thread(wait_health, node, 200, 10)
        m = await asyncio.to_thread(redis_metrics, node)
        assert m["broadcaster_redis_shard_up"] == 1, m
        assert m["broadcaster_redis_reconnects_total"] == 2, f"publish and subscribe connections, once each: {m}"
    assert redis.numsub(ch) == 2, "healthy again means every channel with local subscribers is re-subscribed"

    res = await asyncio.to_thread(rest_ok, a, ch, "e", "back")
    res2 = await ws_pub.publish(ch, "back-ws")
    for s in subs:
        m = await s.next_broadcast()
        assert (m["seq"], m["id"], m["payload"]) == (4, res["id"], "back"), "nothing from the outage was delivered"
        m = await s.next_broadcast()
        assert (m["seq"], m["id"], m["payload"]) == (5, res2["id"], "back-ws")
        await s.quiet()
    for cl in subs + [ws_pub]:
        await cl.close()
    assert a.alive() and b.alive()


@async_test(40)
async def test_redis_unreachable_at_start_then_appearing():
    port = free_port()
    redis = RedisServer(port, start=False)
    node = None
    try:
        node = start_node(f"redis://127.0.0.1:{port}", healthy=False)
        for _ in range(5):
            assert await asyncio.to_thread(health, node) == 503
            await asyncio.sleep(0.05)
        r = await asyncio.to_thread(rest_publish, node, "news", "e", 1)
        check_rest_error(r, 503, "Unavailable")

        ch = chan("late")
        c = await Client.connect(node, make_token(authorizedChannels=[ch]))
        await c.subscribe(ch)  # local interest recorded while Redis is away

        m = await asyncio.to_thread(wait_redis_metric, node, "broadcaster_redis_connect_failures_total",
                                    lambda v: v >= 2)
        assert m["broadcaster_redis_shard_up"] == 0 and m["broadcaster_redis_reconnects_total"] == 0, m
        assert m["broadcaster_redis_publish_failures_total"] == 1, m
        assert m["broadcaster_redis_channels"] == 1, f"the interest is kept for when Redis comes: {m}"

        await asyncio.to_thread(redis.start)
        await asyncio.to_thread(wait_health, node, 200, 10)
        assert redis.numsub(ch) == 1
        m = await asyncio.to_thread(redis_metrics, node)
        assert m["broadcaster_redis_shard_up"] == 1 and m["broadcaster_redis_reconnects_total"] == 0, m
        res = await asyncio.to_thread(rest_ok, node, ch, "e", "hello")
        m = await c.next_broadcast()
        assert (m["seq"], m["id"], m["payload"]) == (1, res["id"], "hello")
        await c.close()
    finally:
        _finish([node], [redis])


def test_bad_redis_url_stops_start_up_with_one_line():
    p = subprocess.run([str(BINARY), "--port", "0", "--host", "127.0.0.1", "--broker", "redis", "--redis-url",
                        "http://127.0.0.1:1"], env=clean_env(JWT_SECRET="x" * 32, API_KEYS=API_KEY),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode == 2, p
    err = [l for l in p.stderr.decode().splitlines() if l.strip()]
    assert any("REDIS_URL" in l for l in err), err
