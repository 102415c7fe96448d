"""Channel positions, history and recovery on one node (PROTOCOL "(ext) Channel positions, history and recovery")."""

import asyncio
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import (API_KEY, Client, async_test, chan, check_error, check_rest_error, make_token, rest_ok,
                      start_server)

RULES = """
[[channels]]
pattern = "big*"
history_size = 5000

[[channels]]
pattern = "small:*"
history_size = 3

[[channels]]
pattern = "none:*"
history_size = 0

[[channels]]
pattern = "short:*"
history_ttl = 1
"""


@pytest.fixture(scope="module")
def hist():
    """History on (50 messages, 300 s) with rules: big* keeps 5000, small:* keeps 3, none:* keeps none, short:* keeps
    1 s."""
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "broadcaster.toml"
        cfg.write_text(RULES)
        srv = start_server("--threads", "2", "--history-size", "50", "--config", str(cfg))
        yield srv
        crashed = not srv.alive()
        srv.stop()
        if crashed:
            pytest.fail(f"server died during the module:\n{srv.output()}")


def publish_n(srv, ch, n, start=0):
    return [rest_ok(srv, ch, "ev", {"n": start + i}) for i in range(n)]


def history_rest(srv, key=API_KEY, **params):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(srv.url("/history"), params=params, headers=h, timeout=5)


async def sub_client(srv, ch, **subscribe_params):
    c = await Client.connect(srv, make_token(authorizedChannels=[ch]))
    res = await c.ok("subscribe", {"channel": ch, **subscribe_params})
    return c, res


# ---- positions ------------------------------------------------------------------------------------------------

@async_test()
async def test_every_subscriber_sees_the_same_offsets_and_epoch(hist):
    ch = chan()
    a, ra = await sub_client(hist, ch)
    b, rb = await sub_client(hist, ch)
    assert ra["offset"] == rb["offset"] == 0 and ra["epoch"] == rb["epoch"], (ra, rb)
    sent = publish_n(hist, ch, 5)
    for c in (a, b):
        got = [await c.next_broadcast() for _ in range(5)]
        assert [g["offset"] for g in got] == [1, 2, 3, 4, 5], got
        assert {g["epoch"] for g in got} == {ra["epoch"]}, got
        assert [g["id"] for g in got] == [s["id"] for s in sent]
        assert [g["seq"] for g in got] == [1, 2, 3, 4, 5]
    c, rc = await sub_client(hist, ch)
    assert rc["offset"] == 5 and rc["epoch"] == ra["epoch"] and "recovered" not in rc, rc
    for x in (a, b, c):
        await x.quiet()
        await x.close()


@async_test()
async def test_offsets_are_per_channel_and_start_at_one(hist):
    ch1, ch2 = chan(), chan()
    c = await Client.connect(hist, make_token(authorizedChannels=[ch1, ch2]))
    await c.subscribe(ch1)
    await c.subscribe(ch2)
    rest_ok(hist, ch1)
    rest_ok(hist, ch1)
    rest_ok(hist, ch2)
    got = [await c.next_broadcast() for _ in range(3)]
    assert sorted((g["channel"], g["offset"]) for g in got) == sorted([(ch1, 1), (ch1, 2), (ch2, 1)])
    await c.close()


# ---- recovery -------------------------------------------------------------------------------------------------

@async_test()
async def test_subscribe_since_replays_what_was_missed_then_goes_live(hist):
    ch = chan()
    a, res = await sub_client(hist, ch)
    publish_n(hist, ch, 3)
    seen = [await a.next_broadcast() for _ in range(3)]
    await a.close()
    missed = publish_n(hist, ch, 5, start=3)
    since = {"epoch": seen[-1]["epoch"], "offset": seen[-1]["offset"]}
    b, res = await sub_client(hist, ch, since=since)
    assert res["recovered"] is True and res["epoch"] == since["epoch"] and res["offset"] == 8, res
    replay = [await b.next_broadcast() for _ in range(5)]
    assert [r["offset"] for r in replay] == [4, 5, 6, 7, 8]
    assert [r["seq"] for r in replay] == [1, 2, 3, 4, 5]
    assert [r["id"] for r in replay] == [m["id"] for m in missed]
    assert [r["payload"] for r in replay] == [{"n": i} for i in range(3, 8)]
    assert [r["createTime"] for r in replay] == [m["createTime"] for m in missed]
    live = rest_ok(hist, ch, "ev", {"n": 8})
    nxt = await b.next_broadcast()
    assert (nxt["offset"], nxt["seq"], nxt["id"]) == (9, 6, live["id"]), nxt
    await b.quiet()
    await b.close()


@async_test()
async def test_since_at_the_current_position_recovers_nothing_to_replay(hist):
    ch = chan()
    a, res0 = await sub_client(hist, ch)
    publish_n(hist, ch, 2)
    await a.close()
    b, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 2})
    assert res["recovered"] is True and res["offset"] == 2, res
    await b.quiet()
    await b.close()


@async_test()
async def test_since_without_history_is_not_recovered_unless_nothing_was_missed(hist):
    ch = chan("none:x")
    a, res0 = await sub_client(hist, ch)
    publish_n(hist, ch, 3)
    got = [await a.next_broadcast() for _ in range(3)]
    assert [g["offset"] for g in got] == [1, 2, 3]  # offsets are assigned with history off too
    await a.close()
    b, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 1})
    assert res["recovered"] is False and res["offset"] == 3, res
    await b.quiet()  # nothing replayed
    rest_ok(hist, ch)
    nxt = await b.next_broadcast()
    assert (nxt["seq"], nxt["offset"]) == (1, 4), nxt
    c, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 4})
    assert res["recovered"] is True, res
    for x in (b, c):
        await x.quiet()
        await x.close()


@async_test()
async def test_trimmed_history_is_not_recovered(hist):
    ch = chan("small:x")  # keeps 3
    a, res0 = await sub_client(hist, ch)
    await a.close()
    publish_n(hist, ch, 5)
    b, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 0})
    assert res["recovered"] is False and res["offset"] == 5, res
    await b.quiet()
    # Within what is kept, recovery works.
    c, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 2})
    assert res["recovered"] is True, res
    assert [(await c.next_broadcast())["offset"] for _ in range(3)] == [3, 4, 5]
    for x in (b, c):
        await x.quiet()
        await x.close()


@async_test()
async def test_another_epoch_is_not_recovered(hist):
    ch = chan()
    publish_n(hist, ch, 2)
    b, res = await sub_client(hist, ch, since={"epoch": "not-this-one", "offset": 1})
    assert res["recovered"] is False and res["offset"] == 2 and res["epoch"] != "not-this-one", res
    await b.quiet()
    await b.close()


@async_test(timeout=30)
async def test_expired_history_is_not_recovered(hist):
    ch = chan("short:x")  # history_ttl 1 s
    a, res0 = await sub_client(hist, ch)
    await a.close()
    publish_n(hist, ch, 2)
    b, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 0})
    assert res["recovered"] is True, res
    await b.close()
    await asyncio.sleep(1.3)  # the age limit itself is what is tested
    c, res = await sub_client(hist, ch, since={"epoch": res0["epoch"], "offset": 0})
    assert res["recovered"] is False, res
    await c.quiet()
    await c.close()


@async_test()
async def test_a_notification_subscribe_with_since_replays_too(hist):
    ch = chan()
    a, res0 = await sub_client(hist, ch)
    await a.close()
    publish_n(hist, ch, 2)
    b = await Client.connect(hist, make_token(authorizedChannels=[ch]))
    await b.send({"method": "subscribe", "params": {"channel": ch, "since": {"epoch": res0["epoch"], "offset": 0}}})
    got = [await b.next_broadcast() for _ in range(2)]
    assert [(g["seq"], g["offset"]) for g in got] == [(1, 1), (2, 2)]
    await b.quiet()
    await b.close()


@pytest.mark.parametrize("since", [5, "x", [], {"offset": 1}, {"epoch": "e"}, {"epoch": "", "offset": 1},
                                   {"epoch": 7, "offset": 1}, {"epoch": "e", "offset": -1},
                                   {"epoch": "e", "offset": 1.5}, {"epoch": "e", "offset": "1"},
                                   {"epoch": "e" * 65, "offset": 1}])
@async_test()
async def test_malformed_since_is_invalid_argument(hist, since):
    ch = chan()
    c = await Client.connect(hist, make_token(authorizedChannels=[ch]))
    await c.err("subscribe", {"channel": ch, "since": since}, code="InvalidArgument")
    await c.subscribe(ch)  # the failed subscribe left nothing behind
    await c.close()


@async_test(timeout=60)
async def test_reconnects_mid_stream_lose_nothing_and_duplicate_nothing(hist):
    """A publisher at about 1000/s; a subscriber that reconnects with `since` every few dozen messages ends with
    every offset exactly once, and within each subscription seq runs 1, 2, 3... without a hole. The channel keeps
    all 3000 (rule big*): a reconnect that takes long on a loaded machine must still find what it missed."""
    ch = chan("big")
    total = 3000
    pub = await Client.connect(hist, make_token(authorizedChannels=[ch], scope=["publish"]))
    c, res = await sub_client(hist, ch)
    epoch = res["epoch"]
    done = asyncio.Event()

    async def publisher():
        for i in range(total):
            await pub.send({"method": "publish", "params": {"channel": ch, "event": "ev", "payload": i}})
            if i % 10 == 9:
                await asyncio.sleep(0.01)  # about 1000/s
        done.set()

    task = asyncio.create_task(publisher())
    seen = []
    last = 0
    reconnects = 0
    rng = random.Random(7)
    while last < total:
        expected_seq = 1
        for _ in range(rng.randint(20, 80)):
            b = await c.next_broadcast(timeout=10)
            assert b["seq"] == expected_seq, (b, expected_seq)
            assert b["epoch"] == epoch and b["offset"] == last + 1, (b, last)
            expected_seq += 1
            last = b["offset"]
            seen.append(b["payload"])
            if last == total:
                break
        if last == total:
            break
        await c.conn.close()
        c, res = await sub_client(hist, ch, since={"epoch": epoch, "offset": last})
        assert res["recovered"] is True, res
        reconnects += 1
    await task
    assert seen == list(range(total))
    assert reconnects >= 20
    await c.close()
    await pub.close()


# ---- history method -------------------------------------------------------------------------------------------

@async_test()
async def test_history_method_latest_since_and_limits(hist):
    ch, fresh = chan(), chan()
    sent = publish_n(hist, ch, 10)
    c = await Client.connect(hist, make_token(authorizedChannels=[ch, fresh]))
    res = await c.ok("history", {"channel": ch, "limit": 3})
    assert [p["offset"] for p in res["publications"]] == [8, 9, 10] and res["offset"] == 10, res
    p = res["publications"][0]
    assert p["id"] == sent[7]["id"] and p["createTime"] == sent[7]["createTime"] and p["channel"] == ch
    assert p["event"] == "ev" and p["payload"] == {"n": 7}
    epoch = res["epoch"]
    res = await c.ok("history", {"channel": ch, "since": {"epoch": epoch, "offset": 4}, "limit": 2})
    assert [p["offset"] for p in res["publications"]] == [5, 6], res
    res = await c.ok("history", {"channel": ch})  # no limit: everything kept
    assert [p["offset"] for p in res["publications"]] == list(range(1, 11)), res
    res = await c.ok("history", {"channel": ch, "limit": 0})
    assert res["publications"] == [] and res["offset"] == 10 and res["epoch"] == epoch
    res = await c.ok("history", {"channel": ch, "since": {"epoch": "other", "offset": 4}})
    assert res["publications"] == [] and res["epoch"] == epoch and res["offset"] == 10, res
    res = await c.ok("history", {"channel": fresh})  # never published to: a position all the same
    assert res["publications"] == [] and res["offset"] == 0 and res["epoch"], res
    await c.close()


@async_test()
async def test_history_is_capped_by_the_channel_history_size(hist):
    ch = chan("small:x")
    publish_n(hist, ch, 6)
    c = await Client.connect(hist, make_token(authorizedChannels=[ch]))
    res = await c.ok("history", {"channel": ch, "limit": 100})
    assert [p["offset"] for p in res["publications"]] == [4, 5, 6], res
    await c.close()


@async_test()
async def test_history_needs_the_permission_to_subscribe(hist):
    ch, other = chan(), chan()
    c = await Client.connect(hist)
    await c.err("history", {"channel": ch}, code="Unauthenticated")
    await c.auth(make_token(authorizedChannels=[ch]))
    await c.err("history", {"channel": other}, code="PermissionDenied")
    await c.err("history", {"channel": "bad channel"}, code="InvalidArgument")
    await c.err("history", {"channel": ch, "limit": -1}, code="InvalidArgument")
    await c.err("history", {"channel": ch, "limit": "5"}, code="InvalidArgument")
    await c.err("history", {"channel": ch, "since": {"epoch": "e"}}, code="InvalidArgument")
    p = await Client.connect(hist, make_token(authorizedChannels=[ch], scope=["publish"]))
    await p.err("history", {"channel": ch}, code="PermissionDenied")
    await c.close()
    await p.close()


def test_rest_history_matches_the_method(hist):
    ch = chan()
    publish_n(hist, ch, 4)
    r = history_rest(hist, channel=ch, limit=2)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), r.text
    body = r.json()
    assert [p["offset"] for p in body["publications"]] == [3, 4] and body["offset"] == 4, body
    r = history_rest(hist, channel=ch, epoch=body["epoch"], offset=1)
    assert [p["offset"] for p in r.json()["publications"]] == [2, 3, 4], r.text


@pytest.mark.parametrize("params,status,code", [
    ({}, 400, "InvalidArgument"),
    ({"channel": "a b"}, 400, "InvalidArgument"),
    ({"channel": "ok", "limit": "x"}, 400, "InvalidArgument"),
    ({"channel": "ok", "limit": "-1"}, 400, "InvalidArgument"),
    ({"channel": "ok", "epoch": "e"}, 400, "InvalidArgument"),
    ({"channel": "ok", "offset": "1"}, 400, "InvalidArgument"),
    ({"channel": "ok", "epoch": "e", "offset": "1e3"}, 400, "InvalidArgument"),
    ({"channel": "ok", "epoch": "e", "offset": "99999999999999999999999"}, 400, "InvalidArgument"),
])
def test_rest_history_bad_parameters(hist, params, status, code):
    check_rest_error(history_rest(hist, **params), status, code)


def test_rest_history_needs_an_api_key_and_get(hist):
    check_rest_error(history_rest(hist, key=None, channel="ok"), 401, "Unauthenticated")
    check_rest_error(history_rest(hist, key="wrong", channel="ok"), 401, "Unauthenticated")
    r = requests.post(hist.url("/history"), params={"channel": "ok"}, headers={"Authorization": f"Bearer {API_KEY}"},
                      timeout=5)
    assert r.status_code == 405, r.text


def test_history_keeps_the_payload_bytes(hist):
    ch = chan()
    body = '{"channel":"%s","event":"ev","payload":{"big":123456789012345678901234567890,"f":1e400,"z":-0}}' % ch
    r = requests.post(hist.url("/publish"), data=body, timeout=5,
                      headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    raw = history_rest(hist, channel=ch).text
    assert '"payload":{"big":123456789012345678901234567890,"f":1e400,"z":-0}' in raw, raw


# ---- restarts, memory -----------------------------------------------------------------------------------------

@async_test(timeout=40)
async def test_a_restarted_node_has_a_new_epoch_and_recovers_nothing():
    srv = start_server("--history-size", "10")
    try:
        ch = chan()
        a, res0 = await sub_client(srv, ch)
        publish_n(srv, ch, 2)
        await a.close()
    finally:
        srv.stop()
    srv = start_server("--history-size", "10")
    try:
        publish_n(srv, ch, 1)
        b, res = await sub_client(srv, ch, since={"epoch": res0["epoch"], "offset": 2})
        assert res["recovered"] is False and res["epoch"] != res0["epoch"] and res["offset"] == 1, res
        await b.quiet()
        await b.close()
    finally:
        srv.stop()


def test_history_memory_is_bounded_by_the_limit():
    limit = 200_000
    srv = start_server("--history-size", "1000", "--history-memory-limit", str(limit))
    try:
        chans = [chan() for _ in range(4)]
        for i in range(100):
            for ch in chans:
                rest_ok(srv, ch, "ev", {"pad": "x" * 1000, "i": i})
        metrics = requests.get(srv.url("/metrics"), timeout=5).text
        held = int(next(l.split()[1] for l in metrics.splitlines() if l.startswith("broadcaster_history_bytes ")))
        trimmed = int(next(l.split()[1] for l in metrics.splitlines()
                           if l.startswith("broadcaster_history_trimmed_for_memory_total ")))
        assert 0 < held <= limit and trimmed > 0, (held, trimmed)
        r = history_rest(srv, channel=chans[-1])
        offsets = [p["offset"] for p in r.json()["publications"]]
        assert offsets and offsets[-1] == 100 and offsets == list(range(offsets[0], 101)), offsets
    finally:
        srv.stop()
