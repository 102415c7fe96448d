"""Presence and join/leave on one node (PROTOCOL "(ext) Presence") and the server API ("(ext) Server API"):
the info claim, presence and presenceStats over WebSocket and REST, joinLeave, the cap, the rules that switch
presence or join/leave on and off, and POST {BASE}/disconnect and /unsubscribe.

No sleeps: a client knows it is in presence once its subscribe is answered, and a watcher's join/leave
notification is the moment another connection entered or left."""

import tempfile
from pathlib import Path

import pytest
import requests

from conftest import API_KEY, Client, async_test, chan, check_error, check_rest_error, make_token, start_server

RULES = """
[[channels]]
pattern = "capped*"
presence = true
join_leave_limit = 3

[[channels]]
pattern = "quiet*"
presence = true
join_leave = false

[[channels]]
pattern = "pres*"
presence = true
"""
CAP = 3


@pytest.fixture(scope="module")
def srv():
    """Presence off by default; on for pres*, on without join/leave for quiet*, on with join/leave up to 3 members
    for capped*; presence answers capped at 3."""
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "broadcaster.toml"
        cfg.write_text(RULES)
        s = start_server("--threads", "2", "--config", str(cfg), "--presence-max-clients", str(CAP))
        yield s
        crashed = not s.alive()
        s.stop()
        if crashed:
            pytest.fail(f"server died during the module:\n{s.output()}")


def metric(s, name):
    for line in requests.get(s.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def auth_headers(key=API_KEY):
    return {"Authorization": f"Bearer {key}"} if key else {}


def rest_presence(s, path="/presence", key=API_KEY, **params):
    return requests.get(s.url(path), params=params, headers=auth_headers(key), timeout=5)


def rest_post(s, path, body, key=API_KEY):
    return requests.post(s.url(path), json=body, headers=auth_headers(key), timeout=5)


ABSENT = object()


async def member(s, ch, user="user-1", info=ABSENT, channels=None, **subscribe):
    """A connection of `user` subscribed to `ch`; returns (client, its subscribe result)."""
    claims = {"sub": user, "authorizedChannels": channels or [ch]}
    if info is not ABSENT:
        claims["info"] = info
    c = await Client.connect(s, make_token(**claims))
    res = await c.subscribe(ch, **subscribe)
    return c, res


async def next_event(c, timeout=5.0):
    """The next join/leave notification (a broadcast before it fails the test)."""
    assert not c.broadcasts, f"unexpected broadcasts: {list(c.broadcasts)}"
    msg = await c.recv(timeout)
    assert msg.get("method") in ("join", "leave"), f"expected join/leave, got {msg}"
    return msg["method"], msg["params"]


async def clients_of(c, ch):
    return (await c.ok("presence", {"channel": ch}))["clients"]


# ---- presence and presenceStats ------------------------------------------------------------------------------

@async_test()
async def test_presence_lists_every_connection_with_user_and_info(srv):
    ch = chan("pres")
    a1, _ = await member(srv, ch, "alice", info={"name": "Alice", "tags": [1, 2]})
    a2, _ = await member(srv, ch, "alice", info={"name": "Alice", "tags": [1, 2]})
    b, _ = await member(srv, ch, "bob")
    clients = await clients_of(b, ch)
    assert len(clients) == 3, clients
    assert len(set(clients)) == 3 and all(isinstance(k, str) and k for k in clients)
    assert sorted(v["user"] for v in clients.values()) == ["alice", "alice", "bob"]
    for v in clients.values():
        if v["user"] == "alice":
            assert v["info"] == {"name": "Alice", "tags": [1, 2]}, v
        else:
            assert "info" not in v, v
    stats = await a1.ok("presenceStats", {"channel": ch})
    assert stats == {"numClients": 3, "numUsers": 2}, stats
    await a2.ok("unsubscribe", {"channel": ch})
    assert await a1.ok("presenceStats", {"channel": ch}) == {"numClients": 2, "numUsers": 2}
    await a1.ok("unsubscribe", {"channel": ch})
    assert await b.ok("presenceStats", {"channel": ch}) == {"numClients": 1, "numUsers": 1}
    assert [v["user"] for v in (await clients_of(b, ch)).values()] == ["bob"]
    for c in (a1, a2, b):
        await c.close()


@async_test()
async def test_a_channel_nobody_is_in_is_empty(srv):
    ch = chan("pres")
    c = await Client.connect(srv, make_token(authorizedChannels=[ch]))
    assert await c.ok("presence", {"channel": ch}) == {"clients": {}}
    assert await c.ok("presenceStats", {"channel": ch}) == {"numClients": 0, "numUsers": 0}
    await c.close()


@async_test()
async def test_string_and_scalar_info_claims_are_kept_as_json(srv):
    ch = chan("pres")
    cs = [(await member(srv, ch, f"u{i}", info=v))[0] for i, v in enumerate(["text", 42, None])]
    # `"info": null` is a value too: kept as null.
    got = {v["user"]: v.get("info", "absent") for v in (await clients_of(cs[0], ch)).values()}
    assert got == {"u0": "text", "u1": 42, "u2": None}, got
    for c in cs:
        await c.close()


@async_test()
async def test_info_over_1_kib_is_invalid_argument_and_changes_nothing(srv):
    c = await Client.connect(srv)
    big = make_token(info={"blob": "x" * 1100})
    check_error((await c.request("auth", {"token": big}))["error"], "InvalidArgument")
    await c.err("subscribe", {"channel": "news"}, "Unauthenticated")  # the failed auth left it as it was
    await c.auth(make_token(info={"blob": "x" * 900}))  # under the limit: fine
    await c.close()


@async_test()
async def test_presence_needs_the_permission_to_subscribe(srv):
    ch, other = chan("pres"), chan("pres")
    c = await Client.connect(srv)
    await c.err("presence", {"channel": ch}, "Unauthenticated")
    await c.auth(make_token(authorizedChannels=[ch]))
    await c.err("presence", {"channel": other}, "PermissionDenied")
    await c.err("presenceStats", {"channel": other}, "PermissionDenied")
    await c.err("presence", {"channel": "bad channel!"}, "InvalidArgument")
    await c.err("presence", {}, "InvalidArgument")
    publisher = await Client.connect(srv, make_token(authorizedChannels=[ch], scope=["publish"]))
    await publisher.err("presence", {"channel": ch}, "PermissionDenied")
    await publisher.err("presenceStats", {"channel": ch}, "PermissionDenied")
    await c.ok("presence", {"channel": ch})
    for x in (c, publisher):
        await x.close()


@async_test()
async def test_failed_precondition_where_presence_is_off(srv):
    ch = chan("t")
    c = await Client.connect(srv, make_token(authorizedChannels=[ch]))
    await c.err("presence", {"channel": ch}, "FailedPrecondition")
    await c.err("presenceStats", {"channel": ch}, "FailedPrecondition")
    await c.err("subscribe", {"channel": ch, "joinLeave": True}, "FailedPrecondition")
    await c.subscribe(ch, joinLeave=False)  # asking for nothing is fine
    await c.close()
    pch = chan("pres")
    c = await Client.connect(srv, make_token(authorizedChannels=[pch]))
    await c.err("subscribe", {"channel": pch, "joinLeave": "yes"}, "InvalidArgument")
    await c.close()


@async_test()
async def test_presence_answers_are_capped_and_say_so(srv):
    ch = chan("pres")
    cs = []
    for i in range(CAP):
        cs.append((await member(srv, ch, f"u{i}"))[0])
    res = await cs[0].ok("presence", {"channel": ch})
    assert len(res["clients"]) == CAP and "truncated" not in res, res
    cs.append((await member(srv, ch, "u-last"))[0])
    res = await cs[0].ok("presence", {"channel": ch})
    assert len(res["clients"]) == CAP and res["truncated"] is True, res
    # The counts are not capped.
    assert await cs[0].ok("presenceStats", {"channel": ch}) == {"numClients": CAP + 1, "numUsers": CAP + 1}
    for c in cs:
        await c.close()


# ---- joinLeave ------------------------------------------------------------------------------------------------

@async_test()
async def test_join_and_leave_on_unsubscribe(srv):
    ch = chan("pres")
    w, _ = await member(srv, ch, "watcher", joinLeave=True)
    a, _ = await member(srv, ch, "alice", info={"n": 1})
    kind, p = await next_event(w)
    assert kind == "join" and p["channel"] == ch and p["user"] == "alice" and p["info"] == {"n": 1}, p
    assert p["clientId"] in await clients_of(w, ch)
    await a.ok("unsubscribe", {"channel": ch})
    kind, q = await next_event(w)
    assert kind == "leave" and q == p, q
    assert p["clientId"] not in await clients_of(w, ch)
    await w.quiet()
    await a.quiet()  # the one that left hears nothing of itself
    for c in (w, a):
        await c.close()


@async_test()
async def test_leave_on_disconnect_and_no_events_without_join_leave(srv):
    ch = chan("pres")
    w, _ = await member(srv, ch, "watcher", joinLeave=True)
    plain, _ = await member(srv, ch, "plain")  # did not ask: gets none
    assert (await next_event(w))[1]["user"] == "plain"
    b, _ = await member(srv, ch, "bob")
    _, joined = await next_event(w)
    assert joined["user"] == "bob" and "info" not in joined
    await b.close()
    kind, left = await next_event(w)
    assert kind == "leave" and left["clientId"] == joined["clientId"]
    assert await w.ok("presenceStats", {"channel": ch}) == {"numClients": 2, "numUsers": 2}
    await plain.quiet()
    for c in (w, plain):
        await c.close()


@async_test()
async def test_leave_when_a_token_refresh_drops_the_channel(srv):
    ch, keep = chan("pres"), chan("pres")
    w, _ = await member(srv, ch, "watcher", joinLeave=True)
    a, _ = await member(srv, ch, "alice", channels=[ch, keep])
    _, joined = await next_event(w)
    await a.subscribe(keep)
    await a.auth(make_token(sub="alice", authorizedChannels=[keep]))
    kind, left = await next_event(w)
    assert kind == "leave" and left["clientId"] == joined["clientId"]
    assert await a.ok("presenceStats", {"channel": keep}) == {"numClients": 1, "numUsers": 1}
    for c in (w, a):
        await c.close()


@async_test()
async def test_join_leave_consume_no_seq_and_keep_their_place_among_broadcasts(srv):
    ch = chan("pres")
    w, _ = await member(srv, ch, "watcher", joinLeave=True, channels=[ch])
    pub = await Client.connect(srv, make_token(sub="pub", authorizedChannels=[ch]))
    await pub.publish(ch, {"n": 1})
    assert (await w.next_broadcast())["seq"] == 1
    a, _ = await member(srv, ch, "alice")
    assert (await next_event(w))[0] == "join"
    await pub.publish(ch, {"n": 2})
    got = await w.next_broadcast()
    assert got["seq"] == 2 and got["payload"] == {"n": 2}, got
    await a.close()
    assert (await next_event(w))[0] == "leave"
    await pub.publish(ch, {"n": 3})
    assert (await w.next_broadcast())["seq"] == 3
    await w.quiet()
    for c in (w, pub):
        await c.close()


@async_test()
async def test_join_leave_can_be_switched_off_by_rule(srv):
    ch = chan("quiet")
    c = await Client.connect(srv, make_token(authorizedChannels=[ch]))
    await c.err("subscribe", {"channel": ch, "joinLeave": True}, "FailedPrecondition")
    await c.subscribe(ch)
    other, _ = await member(srv, ch, "other")
    # Presence is still kept there.
    assert await c.ok("presenceStats", {"channel": ch}) == {"numClients": 2, "numUsers": 2}
    await c.quiet()
    for x in (c, other):
        await x.close()


@async_test()
async def test_join_leave_stop_above_the_channels_limit(srv):
    """Rule capped*: join_leave_limit = 3. A join or leave is announced only while the channel has at most 3
    members (counting the one joining or leaving), so a reconnect storm in a large channel is not N² frames."""
    suppressed = metric(srv, "broadcaster_join_leave_suppressed_total")
    ch = chan("capped")
    w, _ = await member(srv, ch, "watcher", joinLeave=True)
    a, _ = await member(srv, ch, "alice")
    b, _ = await member(srv, ch, "bob")
    assert [(await next_event(w))[1]["user"] for _ in range(2)] == ["alice", "bob"]
    c, _ = await member(srv, ch, "carol")  # the 4th: not announced
    assert await w.ok("presenceStats", {"channel": ch}) == {"numClients": 4, "numUsers": 4}
    await c.ok("unsubscribe", {"channel": ch})  # left from 4: not announced either
    await b.ok("unsubscribe", {"channel": ch})  # left from 3: announced
    # Had carol's join or leave been sent, it would come first: both were queued before bob's leave.
    kind, p = await next_event(w)
    assert kind == "leave" and p["user"] == "bob", p
    await w.quiet()
    assert metric(srv, "broadcaster_join_leave_suppressed_total") == suppressed + 2
    for x in (w, a, b, c):
        await x.close()


# ---- REST -----------------------------------------------------------------------------------------------------

@async_test()
async def test_rest_presence_and_stats(srv):
    ch = chan("pres")
    a, _ = await member(srv, ch, "alice", info=["x"])
    b, _ = await member(srv, ch, "bob")
    r = rest_presence(srv, channel=ch)
    assert r.status_code == 200, r.text
    clients = r.json()["clients"]
    assert sorted((v["user"], str(v.get("info"))) for v in clients.values()) == [("alice", "['x']"), ("bob", "None")]
    assert clients == await clients_of(a, ch)
    r = rest_presence(srv, "/presence-stats", channel=ch)
    assert r.status_code == 200 and r.json() == {"numClients": 2, "numUsers": 2}, r.text
    for c in (a, b):
        await c.close()


def test_rest_presence_errors(srv):
    ch = chan("pres")
    for path in ("/presence", "/presence-stats"):
        check_rest_error(rest_presence(srv, path, key=None, channel=ch), 401, "Unauthenticated")
        check_rest_error(rest_presence(srv, path, key="wrong", channel=ch), 401, "Unauthenticated")
        check_rest_error(rest_presence(srv, path), 400, "InvalidArgument")
        check_rest_error(rest_presence(srv, path, channel="bad channel"), 400, "InvalidArgument")
        check_rest_error(rest_presence(srv, path, channel=chan("t")), 400, "FailedPrecondition")
        r = requests.post(srv.url(path), params={"channel": ch}, headers=auth_headers(), timeout=5)
        assert r.status_code == 405, r.text
    r = requests.get(srv.url("/presence") + "?channel=%zz", headers=auth_headers(), timeout=5)
    check_rest_error(r, 400, "InvalidArgument")


def test_rest_presence_cap(srv):
    assert rest_presence(srv, channel=chan("pres")).json() == {"clients": {}}


# ---- server API -----------------------------------------------------------------------------------------------

@async_test()
async def test_disconnect_closes_every_connection_of_the_user_with_4003(srv):
    ch = chan("pres")
    w, _ = await member(srv, ch, "watcher", joinLeave=True)
    victims = [(await member(srv, ch, "victim"))[0] for _ in range(2)]
    idle = await Client.connect(srv, make_token(sub="victim"))  # subscribed to nothing: closed too
    bystander, _ = await member(srv, ch, "bystander")
    for _ in range(3):
        assert (await next_event(w))[0] == "join"
    r = rest_post(srv, "/disconnect", {"user": "victim"})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    for c in (*victims, idle):
        code, reason = await c.wait_closed()
        assert (code, reason) == (4003, "disconnected by server"), (code, reason)
    left = {(await next_event(w))[1]["user"] for _ in range(2)}
    assert left == {"victim"}
    assert await w.ok("presenceStats", {"channel": ch}) == {"numClients": 2, "numUsers": 2}
    await bystander.alive()
    # Nobody of that name: still a success.
    assert rest_post(srv, "/disconnect", {"user": "nobody"}).json() == {"success": True}
    for c in (w, bystander):
        await c.close()


@async_test()
async def test_unsubscribe_ends_the_users_subscriptions_to_the_channel(srv):
    ch, other = chan("pres"), chan("t")
    w, _ = await member(srv, ch, "watcher", joinLeave=True)
    a = await Client.connect(srv, make_token(sub="alice", authorizedChannels=[ch, other]))
    await a.subscribe(ch)
    await a.subscribe(other)
    assert (await next_event(w))[0] == "join"
    r = rest_post(srv, "/unsubscribe", {"user": "alice", "channel": ch})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    msg = await a.recv()
    assert msg == {"method": "unsubscribe", "params": {"channel": ch}}, msg
    kind, p = await next_event(w)
    assert kind == "leave" and p["user"] == "alice"
    # Still subscribed to the other channel, and may subscribe again.
    await rest_post_broadcast(srv, other)
    assert (await a.next_broadcast())["channel"] == other
    await a.subscribe(ch)
    for c in (w, a):
        await c.close()


async def rest_post_broadcast(s, ch):
    r = rest_post(s, "/publish", {"channel": ch, "event": "ev", "payload": 1})
    assert r.status_code == 200, r.text


def test_server_api_errors(srv):
    for path in ("/disconnect", "/unsubscribe"):
        check_rest_error(rest_post(srv, path, {"user": "u", "channel": "c"}, key=None), 401, "Unauthenticated")
        check_rest_error(rest_post(srv, path, {"user": "u", "channel": "c"}, key="nope"), 401, "Unauthenticated")
        check_rest_error(rest_post(srv, path, {"channel": "c"}), 400, "InvalidArgument")
        check_rest_error(rest_post(srv, path, {"user": 5, "channel": "c"}), 400, "InvalidArgument")
        check_rest_error(rest_post(srv, path, {"user": "", "channel": "c"}), 400, "InvalidArgument")
        check_rest_error(rest_post(srv, path, [1]), 400, "InvalidArgument")
        r = requests.get(srv.url(path), headers=auth_headers(), timeout=5)
        assert r.status_code == 405, r.text
    check_rest_error(rest_post(srv, "/unsubscribe", {"user": "u"}), 400, "InvalidArgument")
    check_rest_error(rest_post(srv, "/unsubscribe", {"user": "u", "channel": "bad channel"}), 400, "InvalidArgument")


# ---- PRESENCE for every channel --------------------------------------------------------------------------------

@async_test()
async def test_presence_setting_turns_it_on_everywhere():
    s = start_server("--presence")
    try:
        ch = chan("t")
        w, _ = await member(s, ch, "w", joinLeave=True)
        a, _ = await member(s, ch, "a")
        assert (await next_event(w))[1]["user"] == "a"
        assert await w.ok("presenceStats", {"channel": ch}) == {"numClients": 2, "numUsers": 2}
        for c in (w, a):
            await c.close()
    finally:
        s.stop()
