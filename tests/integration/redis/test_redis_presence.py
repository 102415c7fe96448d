"""Presence, join/leave and the server API across nodes with the Redis broker (PROTOCOL "(ext) Presence",
"(ext) Server API", issue 18): two real nodes on one real redis-server.

Reads across nodes poll with a deadline: a member is in presence on its own node once its subscribe is
answered, and on the others once its node's add reached Redis, a moment later. No fixed sleeps: a join/leave
notification, a close frame or a metric is the event waited for.
"""

import asyncio
import signal
import time
from types import SimpleNamespace

import pytest
import requests

from conftest import API_KEY, Client, async_test, chan, check_rest_error, make_token, rest_ok
from redis_helpers import RedisServer, redis_metrics, start_node, stop_all, wait_health

CAP = 3


def _finish(nodes, redis_servers, killed=()):
    crashed = [n for n in nodes if n is not None and n not in killed and not n.alive()]
    stop_all(*nodes, *redis_servers)
    if crashed:
        pytest.fail("a node died during the test:\n" + "\n".join(n.output() for n in crashed))


def presence_nodes(redis, ttl=60, n=2, extra=()):
    return [start_node(redis.url, "--presence", "--presence-ttl", str(ttl), "--presence-max-clients", str(CAP),
                       *extra)
            for _ in range(n)]


@pytest.fixture(scope="module")
def cluster():
    """One Redis, nodes A and B: presence on every channel, answers capped at 3."""
    redis = RedisServer()
    nodes = []
    try:
        nodes = presence_nodes(redis)
    except BaseException:
        stop_all(*nodes, redis)
        raise
    yield SimpleNamespace(redis=redis, a=nodes[0], b=nodes[1])
    _finish(nodes, [redis])


@pytest.fixture
def own():
    """A Redis and nodes of the test's own (it kills them): call own(ttl) for A and B."""
    made = SimpleNamespace(redis=None, nodes=[])

    def make(ttl=60, extra=()):
        made.redis = RedisServer()
        made.nodes = presence_nodes(made.redis, ttl, extra=extra)
        return made.redis, made.nodes[0], made.nodes[1]

    make.killed = []  # nodes the test killed on purpose: not a crash
    yield make
    _finish(made.nodes, [made.redis] if made.redis else [], make.killed)


def headers():
    return {"Authorization": f"Bearer {API_KEY}"}


def rest_get(node, path, ch):
    return requests.get(node.url(path), params={"channel": ch}, headers=headers(), timeout=5)


def rest_post(node, path, body):
    return requests.post(node.url(path), json=body, headers=headers(), timeout=5)


async def member(node, ch, user, info=None, **subscribe):
    claims = {"sub": user, "authorizedChannels": [ch]}
    if info is not None:
        claims["info"] = info
    c = await Client.connect(node, make_token(**claims))
    await c.subscribe(ch, **subscribe)
    return c


async def stats(c, ch):
    return await c.ok("presenceStats", {"channel": ch})


async def wait_stats(c, ch, want, timeout=10.0):
    """Polls presenceStats over `c` until it is `want` (another node's change reaches Redis a moment later)."""
    deadline = time.monotonic() + timeout
    while (got := await stats(c, ch)) != want:
        assert time.monotonic() < deadline, f"presenceStats {got}, expected {want}"
        await asyncio.sleep(0.02)


async def wait_rest_stats(node, ch, want, timeout=10.0):
    """wait_stats over REST: for a watcher whose socket may get join/leave at any moment (a request's reply
    must be the next frame on it)."""
    deadline = time.monotonic() + timeout
    while (got := (await asyncio.to_thread(rest_get, node, "/presence-stats", ch)).json()) != want:
        assert time.monotonic() < deadline, f"presenceStats {got}, expected {want}"
        await asyncio.sleep(0.02)


async def next_event(c, timeout=10.0):
    msg = await c.recv(timeout)
    assert msg.get("method") in ("join", "leave"), f"expected join/leave, got {msg}"
    return msg["method"], msg["params"]


def users_of(clients):
    return sorted((v["user"], repr(v.get("info"))) for v in clients.values())


# ---- membership and counts ---------------------------------------------------------------------------------

@async_test(30)
async def test_presence_and_stats_count_the_members_of_both_nodes(cluster):
    a, b = cluster.a, cluster.b
    ch = chan("pres")
    alice_a = await member(a, ch, "alice", info={"name": "Alice"})
    alice_b = await member(b, ch, "alice", info={"name": "Alice"})
    bob_b = await member(b, ch, "bob")
    for c in (alice_a, bob_b):
        await wait_stats(c, ch, {"numClients": 3, "numUsers": 2})
    want = [("alice", "{'name': 'Alice'}"), ("alice", "{'name': 'Alice'}"), ("bob", "None")]
    from_a = (await alice_a.ok("presence", {"channel": ch}))["clients"]
    from_b = (await bob_b.ok("presence", {"channel": ch}))["clients"]
    assert users_of(from_a) == want and from_a == from_b, (from_a, from_b)
    for node in (a, b):
        r = await asyncio.to_thread(rest_get, node, "/presence", ch)
        assert r.status_code == 200 and r.json() == {"clients": from_a}, r.text
        r = await asyncio.to_thread(rest_get, node, "/presence-stats", ch)
        assert r.status_code == 200 and r.json() == {"numClients": 3, "numUsers": 2}, r.text

    await alice_b.ok("unsubscribe", {"channel": ch})
    await wait_stats(alice_a, ch, {"numClients": 2, "numUsers": 2})
    await bob_b.close()  # a disconnect leaves as well
    await wait_stats(alice_a, ch, {"numClients": 1, "numUsers": 1})
    assert list((await alice_a.ok("presence", {"channel": ch}))["clients"].values()) == [
        {"user": "alice", "info": {"name": "Alice"}}]
    for c in (alice_a, alice_b):
        await c.close()


@async_test(30)
async def test_a_presence_answer_is_capped_and_says_so(cluster):
    ch = chan("cap")
    cs = [await member(n, ch, f"u{i}") for i, n in enumerate((cluster.a, cluster.b, cluster.a))]
    await wait_stats(cs[0], ch, {"numClients": CAP, "numUsers": CAP})
    res = await cs[1].ok("presence", {"channel": ch})
    assert len(res["clients"]) == CAP and "truncated" not in res, res
    cs.append(await member(cluster.b, ch, "u-last"))
    await wait_stats(cs[0], ch, {"numClients": CAP + 1, "numUsers": CAP + 1})
    for c in (cs[0], cs[3]):
        res = await c.ok("presence", {"channel": ch})
        assert len(res["clients"]) == CAP and res["truncated"] is True, res
    r = await asyncio.to_thread(rest_get, cluster.a, "/presence", ch)
    assert len(r.json()["clients"]) == CAP and r.json()["truncated"] is True, r.text
    for c in cs:
        await c.close()


@async_test(20)
async def test_metrics_count_the_node_s_members_and_refreshes(cluster):
    ch = chan("met")
    cs = [await member(cluster.a, ch, f"m{i}") for i in range(2)]
    m = await asyncio.to_thread(redis_metrics, cluster.a)
    assert m["broadcaster_redis_presence_members"] >= 2, m
    assert m["broadcaster_redis_presence_errors_total"] == 0, m
    assert "broadcaster_redis_presence_refreshed_total" in m and "broadcaster_redis_controls_total" in m, m
    for c in cs:
        await c.close()


# ---- join / leave ------------------------------------------------------------------------------------------

@async_test(30)
async def test_join_and_leave_reach_watchers_on_every_node(cluster):
    a, b = cluster.a, cluster.b
    ch = chan("jl")
    wa = await member(a, ch, "watcher-a", joinLeave=True)
    wb = await member(b, ch, "watcher-b", joinLeave=True)
    kind, p = await next_event(wa)
    assert (kind, p["user"]) == ("join", "watcher-b"), p  # wb joined after wa
    alice = await member(b, ch, "alice", info=[1, "x"])
    for w in (wa, wb):
        kind, p = await next_event(w)
        assert kind == "join" and p["channel"] == ch and p["user"] == "alice" and p["info"] == [1, "x"], p
    joined = p
    assert joined["clientId"] in (await wa.ok("presence", {"channel": ch}))["clients"]
    await alice.ok("unsubscribe", {"channel": ch})
    for w in (wa, wb):
        kind, p = await next_event(w)
        assert kind == "leave" and p == joined, p
    await wb.close()
    kind, p = await next_event(wa)
    assert (kind, p["user"]) == ("leave", "watcher-b"), p
    await wa.quiet()
    for c in (wa, alice):
        await c.close()


@async_test(30)
async def test_join_and_leave_stop_above_the_limit_counted_across_nodes(own):
    """--join-leave-limit 3: a join or leave is announced only while the channel has at most 3 members on all
    nodes together, counting the one joining or leaving."""
    _, a, b = own(extra=("--join-leave-limit", "3"))
    ch = chan("jlcap")
    w = await member(a, ch, "watcher", joinLeave=True)
    alice = await member(b, ch, "alice")
    bob = await member(a, ch, "bob")
    assert [(await next_event(w))[1]["user"] for _ in range(2)] == ["alice", "bob"]
    carol = await member(b, ch, "carol")  # the 4th: not announced
    await wait_stats(w, ch, {"numClients": 4, "numUsers": 4})
    await carol.ok("unsubscribe", {"channel": ch})  # leaves from 4: not announced either
    await wait_stats(w, ch, {"numClients": 3, "numUsers": 3})
    await bob.ok("unsubscribe", {"channel": ch})  # leaves from 3: announced
    # Carol's join or leave, had either been published, came through Redis before bob's leave.
    kind, p = await next_event(w)
    assert (kind, p["user"]) == ("leave", "bob"), p
    await w.quiet()
    for c in (w, alice, bob, carol):
        await c.close()


@async_test(30)
async def test_join_and_leave_consume_no_seq_or_offset(cluster):
    a, b = cluster.a, cluster.b
    ch = chan("seq")
    w = await member(a, ch, "watcher", joinLeave=True)
    got = []
    for i in range(3):
        sent = await asyncio.to_thread(rest_ok, b, ch, "e", i)
        m = await w.next_broadcast()
        got.append((m["seq"], m["offset"], m["id"] == sent["id"]))
        if i == 0:
            joiner = await member(b, ch, "joiner")
            assert (await next_event(w))[0] == "join"
        if i == 1:
            await joiner.close()
            assert (await next_event(w))[0] == "leave"
    assert got == [(1, 1, True), (2, 2, True), (3, 3, True)], got
    assert (await asyncio.to_thread(redis_metrics, a))["broadcaster_redis_gaps_total"] == 0
    await w.quiet()
    await w.close()


# ---- a node that dies, Redis that restarts -------------------------------------------------------------------

@async_test(40)
async def test_a_killed_node_leaves_presence_within_the_ttl(own):
    ttl = 2
    redis, a, b = own(ttl)
    ch = chan("kill")
    w = await member(a, ch, "watcher", joinLeave=True)
    victims = [await member(b, ch, "victim") for _ in range(2)]
    for _ in victims:
        assert (await next_event(w))[1]["user"] == "victim"
    await wait_stats(w, ch, {"numClients": 3, "numUsers": 2})

    own.killed.append(b)
    b.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    b.proc.wait(5)
    # The victims' leaves may reach the watcher while this polls: not over its socket.
    await wait_rest_stats(a, ch, {"numClients": 1, "numUsers": 1}, timeout=ttl + 5)
    assert time.monotonic() - killed_at < ttl + 1.0, "gone within PRESENCE_TTL (and a read)"
    r = await asyncio.to_thread(rest_get, a, "/presence", ch)
    assert [v["user"] for v in r.json()["clients"].values()] == ["watcher"], r.text
    # Their leaves, announced by whichever node's script found them expired (nice-to-have, done).
    left = [await next_event(w) for _ in victims]
    assert all(kind == "leave" and p["user"] == "victim" for kind, p in left), left
    await w.close()


@async_test(30)
async def test_a_node_that_shuts_down_removes_its_members_at_once(own):
    redis, a, b = own(60)
    ch = chan("term")
    w = await member(a, ch, "watcher", joinLeave=True)
    leaving = [await member(b, ch, "leaving") for _ in range(2)]
    for _ in leaving:
        assert (await next_event(w))[0] == "join"
    own.killed.append(b)  # stopped on purpose
    await asyncio.to_thread(b.stop)  # SIGTERM: connections close before the broker stops
    # Far sooner than the 60 s expiry: removed, with their leaves.
    assert [(await next_event(w, 5))[0] for _ in leaving] == ["leave", "leave"]
    await wait_stats(w, ch, {"numClients": 1, "numUsers": 1}, timeout=5)
    await w.close()


@async_test(60)
async def test_members_are_published_again_after_a_redis_restart(own):
    redis, a, b = own()
    ch = chan("restart")
    cs = [await member(a, ch, "alice"), await member(b, ch, "bob"), await member(b, ch, "carol")]
    await wait_stats(cs[0], ch, {"numClients": 3, "numUsers": 3})

    redis.kill()
    for node in (a, b):
        await asyncio.to_thread(wait_health, node, 503, 5)
    await cs[0].err("presenceStats", {"channel": ch}, "Unavailable")
    r = await asyncio.to_thread(rest_get, a, "/presence", ch)
    check_rest_error(r, 503, "Unavailable")
    await asyncio.to_thread(redis.start)  # empty: no persistence
    for node in (a, b):
        await asyncio.to_thread(wait_health, node, 200, 10)
    # Each node publishes its own members again as soon as it is connected.
    await wait_stats(cs[0], ch, {"numClients": 3, "numUsers": 3})
    r = await asyncio.to_thread(rest_get, b, "/presence", ch)
    assert sorted(v["user"] for v in r.json()["clients"].values()) == ["alice", "bob", "carol"], r.text
    readded = [(await asyncio.to_thread(redis_metrics, n))["broadcaster_redis_presence_readded_total"]
               for n in (a, b)]
    assert readded[0] >= 1 and readded[1] >= 2, readded
    for c in cs:
        await c.alive()
        await c.close()


# ---- the server API ------------------------------------------------------------------------------------------

@async_test(30)
async def test_disconnect_closes_the_user_s_connections_on_every_node(cluster):
    a, b = cluster.a, cluster.b
    ch = chan("disc")
    w = await member(a, ch, "watcher", joinLeave=True)
    victims = [await member(a, ch, "victim"), await member(b, ch, "victim"),
               await Client.connect(b, make_token(sub="victim"))]
    bystander = await member(b, ch, "bystander")
    for _ in range(3):
        assert (await next_event(w))[0] == "join"
    r = await asyncio.to_thread(rest_post, b, "/disconnect", {"user": "victim"})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    for c in victims:
        assert await c.wait_closed() == (4003, "disconnected by server")
    left = sorted([(await next_event(w))[1]["user"] for _ in range(2)])
    assert left == ["victim", "victim"], left
    await wait_stats(w, ch, {"numClients": 2, "numUsers": 2})
    await bystander.alive()
    for c in (w, bystander):
        await c.close()


@async_test(30)
async def test_unsubscribe_ends_the_user_s_subscriptions_on_every_node(cluster):
    a, b = cluster.a, cluster.b
    ch = chan("unsub")
    w = await member(a, ch, "watcher", joinLeave=True)
    on_a, on_b = await member(a, ch, "alice"), await member(b, ch, "alice")
    for _ in range(2):
        assert (await next_event(w))[0] == "join"
    r = await asyncio.to_thread(rest_post, a, "/unsubscribe", {"user": "alice", "channel": ch})
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    for c in (on_a, on_b):
        assert await c.recv() == {"method": "unsubscribe", "params": {"channel": ch}}
    assert [(await next_event(w))[0] for _ in range(2)] == ["leave", "leave"]
    await wait_stats(w, ch, {"numClients": 1, "numUsers": 1})
    # No longer subscribed: a publish reaches the watcher only.
    await asyncio.to_thread(rest_ok, b, ch, "e", "after")
    assert (await w.next_broadcast())["payload"] == "after"
    for c in (on_a, on_b):
        await c.quiet()
    for c in (w, on_a, on_b):
        await c.close()


@async_test(30)
async def test_server_api_is_unavailable_while_redis_is_down(own):
    redis, a, b = own()
    victim = await Client.connect(b, make_token(sub="victim"))
    redis.kill()
    await asyncio.to_thread(wait_health, a, 503, 5)
    r = await asyncio.to_thread(rest_post, a, "/disconnect", {"user": "victim"})
    check_rest_error(r, 503, "Unavailable")
    r = await asyncio.to_thread(rest_post, a, "/unsubscribe", {"user": "victim", "channel": "c"})
    check_rest_error(r, 503, "Unavailable")
    await victim.alive()
    await victim.close()
