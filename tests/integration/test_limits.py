"""Configured limits: connections, subscriptions, message size, and the slow-consumer policies."""

import asyncio
import json
import socket
import time

import requests
import websockets

from conftest import (API_KEY, Client, RawWS, Closed, async_test, chan, check_error, make_token,
                      rest_publish, server_fixture)

origins = server_fixture("--allowed-origins", "https://good.example,https://also.example", "--threads", "2")
unlimited = server_fixture("--max-connections", "0", "--threads", "2")
conn_limited = server_fixture("--max-connections", "3", "--threads", "2")
small = server_fixture("--max-subscriptions", "3", "--max-message-size", "1024", "--threads", "2")
slow_disconnect = server_fixture("--outbound-buffer", "65536", "--slow-consumer-policy", "disconnect",
                                 "--threads", "2")
slow_drop = server_fixture("--outbound-buffer", "65536", "--slow-consumer-policy", "drop", "--threads", "2")
# One thread: every subscriber is written in the same batched submission (io_uring), the slow one included.
slow_batched = server_fixture("--outbound-buffer", "65536", "--slow-consumer-policy", "disconnect",
                              "--threads", "1")


# ---------------------------------------------------------------------------------------------------------------
# max-connections


@async_test(timeout=30)
async def test_max_connections_refuses_upgrade_with_429(conn_limited):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    clients = [await Client.connect(conn_limited, tok) for _ in range(3)]
    for c in clients:
        await c.subscribe(ch)
    refused = RawWS(conn_limited.port, handshake=False)
    status = refused.handshake(expect=None)
    assert status == 429, f"expected HTTP 429 at the connection limit, got {status}"
    body = json.loads(refused.body)
    check_error(body.get("error"), "ResourceExhausted")
    refused.close()
    # the same through the library
    try:
        extra = await Client.connect(conn_limited)
        raise AssertionError("a fourth connection was accepted")
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == 429
    # the existing connections are unaffected
    res = await clients[0].publish(ch, "still")
    for c in clients:
        b = await c.next_broadcast()
        assert b["id"] == res["id"]
    # closing one frees a slot (the server may need a moment to notice)
    await clients.pop().close()
    deadline = time.monotonic() + 5
    while True:
        try:
            extra = await Client.connect(conn_limited, tok)
            break
        except websockets.exceptions.InvalidStatusCode as e:
            assert e.status_code == 429
            assert time.monotonic() < deadline, "the slot of a closed connection was never freed"
            await asyncio.sleep(0.05)
    await extra.alive()
    for c in clients + [extra]:
        await c.close()


@async_test(timeout=30)
async def test_abruptly_dropped_connections_free_their_slots(conn_limited):
    for _ in range(3):
        r = RawWS(conn_limited.port)
        r.request("heartbeat")
        r.close()  # no close handshake
    deadline = time.monotonic() + 5
    opened = []
    while len(opened) < 3:
        try:
            opened.append(await Client.connect(conn_limited))
        except websockets.exceptions.InvalidStatusCode:
            assert time.monotonic() < deadline, "slots of dropped connections were never freed"
            await asyncio.sleep(0.05)
    for c in opened:
        await c.close()


@async_test()
async def test_max_connections_zero_is_unlimited(unlimited):
    clients = await asyncio.gather(*(Client.connect(unlimited) for _ in range(20)))
    await asyncio.gather(*(c.alive() for c in clients))
    await asyncio.gather(*(c.close() for c in clients))


# ---------------------------------------------------------------------------------------------------------------
# max-subscriptions


@async_test(timeout=30)
async def test_default_max_subscriptions_is_1000(server):
    prefix = chan("m")
    chans = [f"{prefix}:{i}" for i in range(1001)]
    c = await Client.connect(server, make_token(authorizedChannels=chans))
    for ch in chans[:1000]:  # pipelined notifications: success is silent
        await c.send({"method": "subscribe", "params": {"channel": ch}})
    await c.quiet(timeout=15)
    await c.err("subscribe", {"channel": chans[1000]}, code="ResourceExhausted")
    await c.close()


@async_test()
async def test_max_subscriptions_per_connection(small):
    chans = [chan("s") for _ in range(5)]
    tok = make_token(authorizedChannels=chans)
    c = await Client.connect(small, tok)
    for ch in chans[:3]:
        await c.subscribe(ch)
    await c.err("subscribe", {"channel": chans[3]}, code="ResourceExhausted")
    await c.err("subscribe", {"channel": chans[0]}, code=("AlreadyExists", "ResourceExhausted"))
    # the refused subscription does not exist
    r = rest_publish(small, chans[3], "e", 1)
    assert r.status_code == 200
    await c.quiet()
    # the limit is per connection
    other = await Client.connect(small, tok)
    for ch in chans[2:5]:
        await other.subscribe(ch)
    # unsubscribing frees room
    await c.ok("unsubscribe", {"channel": chans[0]})
    await c.subscribe(chans[3])
    await c.err("subscribe", {"channel": chans[4]}, code="ResourceExhausted")
    await c.close()
    await other.close()


# ---------------------------------------------------------------------------------------------------------------
# max-message-size


def _sized(n: int) -> str:
    base = json.dumps({"id": 1, "method": "heartbeat", "params": {"pad": ""}})
    msg = json.dumps({"id": 1, "method": "heartbeat", "params": {"pad": "x" * (n - len(base))}})
    assert len(msg) == n
    return msg


@async_test()
async def test_ws_message_size_limit_boundary(small):
    c = await Client.connect(small)
    await c.send(_sized(1024))
    assert "result" in await c.reply(1)
    await c.send(_sized(1025))
    code, _ = await c.wait_closed()
    assert code == 1009, f"expected close 1009, got {code}"
    c2 = await Client.connect(small)
    await c2.alive()
    await c2.close()


def test_rest_body_size_limit_boundary(small):
    def body(n):
        base = json.dumps({"channel": "news", "event": "e", "payload": ""})
        b = json.dumps({"channel": "news", "event": "e", "payload": "x" * (n - len(base))})
        assert len(b) == n
        return b

    assert rest_publish(small, None, body=body(1024)).status_code == 200
    r = rest_publish(small, None, body=body(1025))
    assert r.status_code == 413, r.status_code
    assert rest_publish(small, None, body=body(5000)).status_code == 413
    assert requests.get(small.url("/health"), timeout=5).status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# slow consumers

N_SLOW = 400
PAYLOAD_50K = "y" * 50_000


def _publish_many(srv, ch, n):
    with requests.Session() as s:
        for i in range(n):
            r = s.post(srv.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                       data=json.dumps({"channel": ch, "event": "big", "payload": {"i": i, "data": PAYLOAD_50K}}),
                       timeout=10)
            assert r.status_code == 200, (r.status_code, r.text[:200])


def _raw_subscriber(srv, ch) -> RawWS:
    raw = RawWS(srv.port, rcvbuf=8192, timeout=10)
    assert "result" in raw.request("auth", {"token": make_token(authorizedChannels=[ch])})
    assert "result" in raw.request("subscribe", {"channel": ch})
    return raw


async def _reader(client: Client, n: int, out: list):
    while len(out) < n:
        out.append(await client.next_broadcast(timeout=20))


@async_test(timeout=60)
async def test_slow_consumer_disconnected_others_get_everything(slow_disconnect):
    srv = slow_disconnect
    ch = chan()
    raw = _raw_subscriber(srv, ch)
    good = await Client.connect(srv, make_token(authorizedChannels=[ch]), max_queue=None)
    await good.subscribe(ch)
    got: list = []
    reader = asyncio.create_task(_reader(good, N_SLOW, got))
    await asyncio.to_thread(_publish_many, srv, ch, N_SLOW)
    await asyncio.wait_for(reader, 30)
    assert [m["seq"] for m in got] == list(range(1, N_SLOW + 1)), "the reading subscriber missed messages"
    assert [m["payload"]["i"] for m in got] == list(range(N_SLOW))

    # the non-reading client was cut off: reading now yields a contiguous prefix, then the end of the connection
    def drain():
        seqs, end = [], None
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                try:
                    fin, op, data = raw.recv_frame(max(0.05, deadline - time.monotonic()))
                except socket.timeout:
                    break
                if op == 8:
                    end = "close"
                    break
                if op == 1:
                    seqs.append(json.loads(data)["params"]["seq"])
        except Closed:
            end = "eof"
        return seqs, end

    seqs, end = await asyncio.to_thread(drain)
    assert end is not None, f"slow consumer was not disconnected (received {len(seqs)} messages)"
    assert len(seqs) < N_SLOW, "the slow consumer received everything: it was not slow"
    assert seqs == list(range(1, len(seqs) + 1)), "a disconnected consumer must not see gaps before the end"
    raw.close()
    await good.alive()
    await good.close()
    assert requests.get(srv.url("/health"), timeout=5).status_code == 200


@async_test(timeout=90)
async def test_slow_consumer_in_a_batched_fanout_is_cut_off_alone(slow_batched):
    """17 readers and one client that never reads, all on one worker thread, so each publish is written to
    all of them in one batch (16 or more): the full socket must come back from the batch as "wait", its queue
    must grow to the limit and end the connection, and every reader must still get every message in order.
    7.5 MB each: the kernel's socket buffers alone take about 4 MB before the queue grows."""
    srv = slow_batched
    ch = chan()
    n, payload = 150, PAYLOAD_50K
    raw = _raw_subscriber(srv, ch)
    tok = make_token(authorizedChannels=[ch])
    readers = await asyncio.gather(*(Client.connect(srv, tok, max_queue=None) for _ in range(17)))
    await asyncio.gather(*(c.subscribe(ch) for c in readers))

    def publish_all():
        with requests.Session() as s:
            for i in range(n):
                r = s.post(srv.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                           json={"channel": ch, "event": "e", "payload": {"i": i, "data": payload}}, timeout=10)
                assert r.status_code == 200

    got = [[] for _ in readers]
    tasks = [asyncio.create_task(_reader(c, n, out)) for c, out in zip(readers, got)]
    await asyncio.to_thread(publish_all)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for out in got:
        assert [m["seq"] for m in out] == list(range(1, n + 1))
        assert [m["payload"]["i"] for m in out] == list(range(n))

    def drain():
        count = 0
        try:
            while True:
                fin, op, data = raw.recv_frame(10)
                if op == 8:
                    return count, "close"
                if op == 1:
                    count += 1
        except Closed:
            return count, "eof"
        except socket.timeout:
            return count, None

    count, end = await asyncio.to_thread(drain)
    assert end is not None and count < n, f"the client that never read was not cut off ({count} messages)"
    raw.close()
    await asyncio.gather(*(c.close() for c in readers))
    assert requests.get(srv.url("/health"), timeout=5).status_code == 200


@async_test(timeout=60)
async def test_slow_consumer_drop_policy_shows_gap(slow_drop):
    srv = slow_drop
    ch = chan()
    raw = _raw_subscriber(srv, ch)
    good = await Client.connect(srv, make_token(authorizedChannels=[ch]), max_queue=None)
    await good.subscribe(ch)
    got: list = []
    reader = asyncio.create_task(_reader(good, N_SLOW, got))
    await asyncio.to_thread(_publish_many, srv, ch, N_SLOW)
    await asyncio.wait_for(reader, 30)
    assert [m["seq"] for m in got] == list(range(1, N_SLOW + 1)), "the reading subscriber missed messages"

    # one more message after the flood: its seq must be N+1 even though some were dropped
    r = await asyncio.to_thread(rest_publish, srv, ch, "final", "last")
    assert r.status_code == 200

    def drain():
        seqs = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = raw.recv_msg(max(0.05, deadline - time.monotonic()))
            if msg.get("method") == "broadcast":
                seqs.append(msg["params"]["seq"])
                if msg["params"]["event"] == "final":
                    return seqs
        raise AssertionError(f"never received the final message; got {len(seqs)} messages")

    seqs = await asyncio.to_thread(drain)
    assert seqs == sorted(set(seqs)), "seq must increase strictly"
    assert seqs[-1] == N_SLOW + 1, f"dropped messages must still consume seq numbers: last seq {seqs[-1]}"
    assert len(seqs) < N_SLOW + 1, "nothing was dropped: the consumer was not slow"
    assert seqs[0] == 1
    # still connected and working
    assert "result" in await asyncio.to_thread(raw.request, "heartbeat")
    raw.close()
    assert (await good.next_broadcast())["seq"] == N_SLOW + 1
    await good.close()
    assert requests.get(srv.url("/health"), timeout=5).status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# allowed origins


def test_allowed_origins(origins):
    for origin in ("https://good.example", "https://also.example"):
        raw = RawWS(origins.port, extra_headers=f"Origin: {origin}\r\n")
        assert "result" in raw.request("heartbeat")
        raw.close()
    for origin in ("https://evil.example", "https://good.example.evil", "http://good.example"):
        raw = RawWS(origins.port, handshake=False)
        status = raw.handshake(f"Origin: {origin}\r\n", expect=None)
        assert status != 101, f"Origin {origin} must be refused"
        assert 400 <= status < 500, status
        raw.close()
