"""Fan-out across connections, per-subscription seq numbering, ordering, channel isolation."""

import asyncio
import random
import threading
import time

import requests

from conftest import API_KEY, Client, async_test, chan, make_token, rest_ok, server_fixture


@async_test()
async def test_broadcast_reaches_every_subscriber_and_only_them(server):
    ch, other = chan(), chan()
    tok = make_token(authorizedChannels=[ch, other])
    subs = [await Client.connect(server, tok) for _ in range(6)]
    for s in subs:
        await s.subscribe(ch)
    outsider = await Client.connect(server, tok)
    await outsider.subscribe(other)
    unsubscribed = await Client.connect(server, tok)
    res = await subs[0].publish(ch, {"hello": "all"})
    for s in subs:
        b = await s.next_broadcast()
        assert b["id"] == res["id"] and b["seq"] == 1 and b["payload"] == {"hello": "all"}
        await s.quiet()
    await outsider.quiet()
    await unsubscribed.quiet()
    for c in subs + [outsider, unsubscribed]:
        await c.close()


@async_test()
async def test_channels_are_exact_no_prefix_or_wildcard_matching(server):
    root = chan()
    child = root + ":child"
    c = await Client.connect(server, make_token(authorizedChannels=[root, child]))
    await c.subscribe(root)
    await asyncio.to_thread(rest_ok, server, child, "e", "child")
    await c.quiet()
    await asyncio.to_thread(rest_ok, server, root, "e", "root")
    assert (await c.next_broadcast())["payload"] == "root"
    await c.close()


@async_test()
async def test_seq_per_subscription_across_publishers(server):
    a, b = chan(), chan()
    tok = make_token(authorizedChannels=[a, b])
    c = await Client.connect(server, tok)
    pub = await Client.connect(server, tok)
    await c.subscribe(a)
    await c.subscribe(b)
    # interleave WS publisher, REST publisher and the subscriber itself, on two channels
    await pub.publish(a, "a1")
    await asyncio.to_thread(rest_ok, server, a, "e", "a2")
    await c.publish(b, "b1")
    await c.publish(a, "a3")
    await asyncio.to_thread(rest_ok, server, b, "e", "b2")
    got = {a: [], b: []}
    for _ in range(5):
        m = await c.next_broadcast()
        got[m["channel"]].append((m["seq"], m["payload"]))
    assert got[a] == [(1, "a1"), (2, "a2"), (3, "a3")], got
    assert got[b] == [(1, "b1"), (2, "b2")], got
    await c.quiet()
    await c.close()
    await pub.close()


@async_test()
async def test_late_subscriber_starts_at_one(server):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    early = await Client.connect(server, tok)
    await early.subscribe(ch)
    for i in range(3):
        await early.publish(ch, i)
    seqs = [(await early.next_broadcast())["seq"] for _ in range(3)]
    late = await Client.connect(server, tok)
    await late.subscribe(ch)
    await early.publish(ch, 3)
    seqs.append((await early.next_broadcast())["seq"])
    assert seqs == [1, 2, 3, 4]
    m = await late.next_broadcast()
    assert m["seq"] == 1 and m["payload"] == 3, m
    await early.close()
    await late.close()


@async_test()
async def test_seq_restarts_after_resubscribe(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    first = await c.subscribe(ch)
    for i in range(3):
        await c.publish(ch, i)
    assert [(await c.next_broadcast())["seq"] for _ in range(3)] == [1, 2, 3]
    await c.ok("unsubscribe", {"channel": ch})
    await c.publish(ch, "while away")
    second = await c.subscribe(ch)
    assert second["subscriptionId"] != first["subscriptionId"]
    await c.publish(ch, "back")
    m = await c.next_broadcast()
    assert (m["seq"], m["payload"]) == (1, "back"), m
    await c.quiet()
    await c.close()


@async_test(timeout=40)
async def test_rest_publish_order_preserved(server):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    subs = [await Client.connect(server, tok) for _ in range(3)]
    for s in subs:
        await s.subscribe(ch)
    n = 200

    def publish_all():
        with requests.Session() as sess:
            ids = []
            for i in range(n):
                r = sess.post(server.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                              json={"channel": ch, "event": "seq", "payload": i}, timeout=5)
                assert r.status_code == 200, r.text
                ids.append(r.json()["id"])
            return ids

    ids = await asyncio.to_thread(publish_all)
    assert len(set(map(str, ids))) == n
    for s in subs:
        got = [await s.next_broadcast() for _ in range(n)]
        assert [m["payload"] for m in got] == list(range(n)), "publish order not preserved"
        assert [m["seq"] for m in got] == list(range(1, n + 1)), "seq not 1..N"
        assert [m["id"] for m in got] == ids
        await s.quiet()
    for s in subs:
        await s.close()


@async_test(timeout=30)
async def test_ws_pipelined_publish_order_preserved(server):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    pub = await Client.connect(server, tok)
    sub = await Client.connect(server, tok)
    await sub.subscribe(ch)
    n = 300
    for i in range(n):  # notifications, sent back to back without waiting
        await pub.send({"method": "publish", "params": {"channel": ch, "event": "p", "payload": i}})
    got = [await sub.next_broadcast() for _ in range(n)]
    assert [m["payload"] for m in got] == list(range(n))
    assert [m["seq"] for m in got] == list(range(1, n + 1))
    await pub.quiet()
    await sub.quiet()
    await pub.close()
    await sub.close()


@async_test(timeout=30)
async def test_concurrent_publishers_each_in_order(server):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    pubs = [await Client.connect(server, tok) for _ in range(4)]
    sub = await Client.connect(server, tok)
    await sub.subscribe(ch)
    n = 100

    async def run(k, p):
        for i in range(n):
            await p.send({"method": "publish", "params": {"channel": ch, "event": "p", "payload": [k, i]}})

    await asyncio.gather(*(run(k, p) for k, p in enumerate(pubs)))
    got = [await sub.next_broadcast() for _ in range(4 * n)]
    assert [m["seq"] for m in got] == list(range(1, 4 * n + 1))
    for k in range(4):
        assert [m["payload"][1] for m in got if m["payload"][0] == k] == list(range(n)), f"publisher {k} reordered"
    await sub.quiet()
    for c in pubs + [sub]:
        await c.close()


@async_test()
async def test_closed_subscriber_does_not_disturb_others(server):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    a = await Client.connect(server, tok)
    b = await Client.connect(server, tok)
    await a.subscribe(ch)
    await b.subscribe(ch)
    await b.close()
    for i in range(3):
        await asyncio.to_thread(rest_ok, server, ch, "e", i)
    assert [(await a.next_broadcast())["seq"] for _ in range(3)] == [1, 2, 3]
    await a.close()


@async_test(timeout=40)
async def test_fanout_to_many_connections(server):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    clients = await asyncio.gather(*(Client.connect(server, tok) for _ in range(200)))
    await asyncio.gather(*(c.subscribe(ch) for c in clients))
    res = await asyncio.to_thread(rest_ok, server, ch, "e", "to all")
    got = await asyncio.gather(*(c.next_broadcast() for c in clients))
    assert all(b["id"] == res["id"] and b["seq"] == 1 for b in got)
    await asyncio.gather(*(c.close() for c in clients))


@async_test()
async def test_compression_offer_is_handled(server):
    """A browser offers permessage-deflate; whether the server accepts it or not, traffic must work."""
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]), compression="deflate")
    await c.subscribe(ch)
    res = await c.publish(ch, {"text": "z" * 5000})
    b = await c.next_broadcast()
    assert b["id"] == res["id"] and b["payload"] == {"text": "z" * 5000}
    await c.close()


@async_test(timeout=40)
async def test_churn_keeps_seq_invariants(server):
    """30 connections subscribe, unsubscribe, publish and heartbeat at random on 4 channels while a REST client
    publishes continuously. For every connection and channel: no broadcast outside a subscription (after the
    unsubscribe reply, before the subscribe reply), and each subscription's seq runs 1, 2, 3... without gaps."""
    chans = [chan("churn") for _ in range(4)]
    tok = make_token(authorizedChannels=chans)
    violations = []
    stop = threading.Event()

    def rest_loop():
        with requests.Session() as s:
            i = 0
            while not stop.is_set():
                r = s.post(server.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                           json={"channel": chans[i % 4], "event": "r", "payload": i}, timeout=5)
                assert r.status_code == 200
                i += 1

    async def worker(k):
        c = await Client.connect(server, tok)
        state = {ch: ["none", 0] for ch in chans}
        rnd = random.Random(k)
        end = time.monotonic() + 3
        n = 0
        while time.monotonic() < end:
            n += 1
            ch = rnd.choice(chans)
            op = rnd.random()
            if op < 0.3:
                method = "unsubscribe" if state[ch][0] == "sub" else "subscribe"
                params = {"channel": ch}
                state[ch][0] = "pending_unsub" if method == "unsubscribe" else "pending_sub"
            elif op < 0.8:
                method, params = "publish", {"channel": ch, "event": "w", "payload": [k, n]}
            else:
                method, params = "heartbeat", None
            await c.send({"id": n, "method": method, "params": params})
            while True:
                m = await c.recv(10)
                if m.get("method") != "broadcast":
                    assert m.get("requestId") == n and "result" in m, m
                    break
                p = m["params"]
                st = state[p["channel"]]
                if st[0] in ("none", "pending_sub"):
                    violations.append(f"conn {k}: seq {p['seq']} on {p['channel']} while {st[0]}")
                elif p["seq"] != st[1] + 1:
                    violations.append(f"conn {k}: seq {p['seq']} on {p['channel']} after {st[1]}")
                st[1] = p["seq"]
            if method == "subscribe":
                state[ch] = ["sub", 0]
            elif method == "unsubscribe":
                state[ch] = ["none", 0]
        await c.close()

    th = threading.Thread(target=rest_loop, daemon=True)
    th.start()
    try:
        await asyncio.gather(*(worker(k) for k in range(30)))
    finally:
        stop.set()
        await asyncio.to_thread(th.join, 10)
    assert not violations, violations[:20]
    assert server.alive()


one_thread = server_fixture("--threads", "1")
one_thread_no_uring = server_fixture("--threads", "1", "--io-uring", "false")


def _batched_sends(srv) -> int:
    text = requests.get(srv.url("/metrics"), timeout=5).text
    return int(next(line.split()[1] for line in text.splitlines()
                    if line.startswith("broadcaster_batched_sends_total ")))


async def _fanout_in_order(srv, subscribers: int, publishes: int):
    """Every subscriber gets every publish, in order, with seq 1..n and the right payload."""
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    clients = await asyncio.gather(*(Client.connect(srv, tok) for _ in range(subscribers)))
    await asyncio.gather(*(c.subscribe(ch) for c in clients))

    def publish_all():
        for i in range(publishes):
            rest_ok(srv, ch, "e", i)

    await asyncio.to_thread(publish_all)
    for c in clients:
        got = [await c.next_broadcast() for _ in range(publishes)]
        assert [b["seq"] for b in got] == list(range(1, publishes + 1))
        assert [b["payload"] for b in got] == list(range(publishes))
    await asyncio.gather(*(c.close() for c in clients))


@async_test(timeout=40)
async def test_fanout_to_many_connections_of_one_thread_goes_out_in_batches(one_thread):
    before = _batched_sends(one_thread)
    await _fanout_in_order(one_thread, 40, 20)
    # 40 connections per publish on one thread: above the batching threshold (16)
    assert _batched_sends(one_thread) - before >= 40


@async_test(timeout=40)
async def test_fanout_without_io_uring_writes_each_connection_itself(one_thread_no_uring):
    await _fanout_in_order(one_thread_no_uring, 40, 20)
    assert _batched_sends(one_thread_no_uring) == 0
