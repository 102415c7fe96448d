"""Redis Cluster (issue 21): nodes given `redis+cluster://` seeds find the primaries and their slots, put every
channel on the primary owning its slot (sharded Pub/Sub: SPUBLISH from the publish script, SSUBSCRIBE), and follow
the slot map when a slot migrates or a primary fails over.

Real processes on free loopback ports: 3 primaries + 3 replicas (`redis-server --cluster-enabled yes`, joined by
`redis-cli --cluster create --cluster-replicas 1`, cluster-node-timeout 1000 ms). The URL lists a seed that is not
running first. Stream tests publish over REST on node A at about 200/s while a client on node B receives.

The interruption of a primary killed with SIGKILL (kill to the first message through the promoted replica) is
printed with `-s`; BENCHMARKS.md "Redis Cluster (issue 21)" records it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest

from conftest import Client, async_test, chan, make_token, rest_publish
from redis_helpers import (PREFIX, RedisServer, free_cluster_port, free_port, resp,
                           resume_on_the_other_node, start_node, stop_all)
from test_redis_positions import HISTORY_ON, Publisher, wait_ok


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XModem), the Redis Cluster key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def slot_of(channel: str) -> int:
    """A (valid) channel's slot: its keys `P{C}:...` and its sharded Pub/Sub channel `P{C}` all hash `C`."""
    return crc16(channel.encode()) % 16384


def wait_for(pred, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


def _fields(flat) -> dict:
    return {flat[i].decode() if isinstance(flat[i], bytes) else flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisCluster:
    """Three primaries and one replica each, no persistence, node timeout 1 s (a failover within ~2 s)."""

    def __init__(self, tmp, masters: int = 3):
        self.tmp = tmp
        if shutil.which("redis-cli") is None:
            pytest.fail("redis-cli is not installed (Debian's redis-tools, scripts/install-deps.sh)")
        self.servers: dict[int, RedisServer] = {}
        try:
            for _ in range(masters * 2):
                self.start_server()
            ports = list(self.servers)
            out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                                  "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, timeout=60)
            assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
            wait_for(self.settled, "cluster_state:ok with every replica in sync")
        except BaseException:
            self.stop()
            raise
        dead = free_port()  # listed first, never started
        self.url = f"redis+cluster://127.0.0.1:{dead},127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"

    def start_server(self) -> int:
        port = free_cluster_port()
        self.servers[port] = RedisServer(port=port, args=(
            "--cluster-enabled", "yes", "--cluster-config-file", str(self.tmp / f"nodes-{port}.conf"),
            "--cluster-node-timeout", "1000", "--dir", str(self.tmp)))
        return port

    def add_primary(self) -> int:
        """A new, empty primary joins (CLUSTER MEET): it serves no slot until one is migrated to it."""
        port = self.start_server()
        others = [p for p in self.alive() if p != port]
        assert resp(others[0], "CLUSTER", "MEET", "127.0.0.1", str(port)) == "OK"
        wait_for(lambda: all(f"cluster_known_nodes:{len(others) + 1}".encode() in resp(p, "CLUSTER", "INFO")
                             for p in self.alive()), "every node knows the new one")
        wait_for(lambda: b"cluster_state:ok" in resp(port, "CLUSTER", "INFO"), "the new node sees the slots")
        return port

    def alive(self) -> list[int]:
        return [p for p, s in self.servers.items() if s.proc is not None and s.proc.poll() is None]

    def ask(self, *args, port: int | None = None):
        for p in [port] if port else self.alive():
            try:
                return resp(p, *args, timeout=1.0)
            except (OSError, ConnectionError):
                continue
        raise ConnectionError("no cluster node answered")

    def shards(self) -> list[dict]:
        """CLUSTER SHARDS: [{"slots": [...], "nodes": [{"port":..,"role":..,"health":..,"id":..}]}]."""
        out = []
        for shard in self.ask("CLUSTER", "SHARDS"):
            f = _fields(shard)
            nodes = [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in _fields(n).items()} for n in f["nodes"]]
            out.append({"slots": f["slots"], "nodes": nodes})
        return out

    def settled(self) -> bool:
        try:
            for p in self.alive():
                if b"cluster_state:ok" not in resp(p, "CLUSTER", "INFO", timeout=1.0):
                    return False
            shards = [s for s in self.shards() if s["slots"]]
            return all(any(n["role"] == "replica" and n["health"] == "online" for n in s["nodes"]) for s in shards) \
                and all(b"master_link_status:up" in resp(p, "INFO", "replication") for p in self.alive()
                        if resp(p, "ROLE")[0] == b"slave")
        except (OSError, ConnectionError, RuntimeError):
            return False

    def owner(self, slot: int) -> int:
        """Port of the primary serving `slot`."""
        for start, end, primary, *_ in self.ask("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise AssertionError(f"slot {slot} is not served")

    def primaries(self) -> list[int]:
        return sorted({int(p[1]) for _, _, p, *_ in self.ask("CLUSTER", "SLOTS")})

    def node_id(self, port: int) -> str:
        return self.ask("CLUSTER", "MYID", port=port).decode()

    def replica_of(self, port: int) -> int:
        for s in self.shards():
            if any(n["port"] == port and n["role"] == "master" for n in s["nodes"]):
                return next(n["port"] for n in s["nodes"] if n["role"] == "replica")
        raise AssertionError(f"{port} is not a primary")

    def channels(self, prefix: str, per_primary: int) -> dict[int, list[str]]:
        """Channel names spread so that every primary owns `per_primary` of them."""
        by: dict[int, list[str]] = {p: [] for p in self.primaries()}
        ranges = [(s, e, int(p[1])) for s, e, p, *_ in self.ask("CLUSTER", "SLOTS")]
        i = 0
        while any(len(v) < per_primary for v in by.values()):
            ch = chan(f"{prefix}{i}")
            i += 1
            owner = next(p for s, e, p in ranges if s <= slot_of(ch) <= e)
            if len(by[owner]) < per_primary:
                by[owner].append(ch)
        return by

    def shardnumsub(self, channel: str) -> int:
        port = self.owner(slot_of(channel))
        return int(resp(port, "PUBSUB", "SHARDNUMSUB", PREFIX + "{" + channel + "}")[1])

    def migrate(self, slot: int, to: int):
        """Moves one slot as `redis-cli --cluster reshard` does: IMPORTING/MIGRATING, MIGRATE the keys, then NODE
        on every primary."""
        frm = self.owner(slot)
        src, dst = self.node_id(frm), self.node_id(to)
        assert resp(to, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src) == "OK"
        assert resp(frm, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst) == "OK"
        while keys := resp(frm, "CLUSTER", "GETKEYSINSLOT", str(slot), "100"):
            assert resp(frm, "MIGRATE", "127.0.0.1", str(to), "", "0", "5000", "KEYS", *keys) == "OK"
        for p in [to, frm] + [p for p in self.primaries() if p not in (to, frm)]:
            try:
                assert resp(p, "CLUSTER", "SETSLOT", str(slot), "NODE", dst) == "OK"
            except RuntimeError as e:
                # A primary that gave its last slot away becomes a replica of the taker (Redis 7) on its own.
                assert p == frm and "only with masters" in str(e), e

    def kill(self, port: int):
        self.servers[port].kill()

    def stop(self):
        stop_all(*self.servers.values())


class Setup:
    def __init__(self, tmp):
        self.cluster = RedisCluster(tmp)
        self.nodes = []

    def node(self, *flags):
        n = start_node(self.cluster.url, *flags)
        self.nodes.append(n)
        return n

    def stop(self):
        crashed = [n for n in self.nodes if not n.alive()]
        stop_all(*self.nodes)
        self.cluster.stop()
        if crashed:
            pytest.fail("a node died during the test:\n" + "\n".join(n.output()[-5000:] for n in crashed))


@pytest.fixture
def cluster_setup(tmp_path):
    s = Setup(tmp_path)
    yield s
    s.stop()


def cluster_metrics(node) -> dict[str, float]:
    """/metrics summed over the node's shards (one per primary)."""
    import requests
    out: dict[str, float] = {}
    for line in requests.get(node.url("/metrics"), timeout=2).text.splitlines():
        if line.startswith("broadcaster_redis_"):
            series, _, value = line.rpartition(" ")
            name = series.partition("{")[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out


# ---- routing -----------------------------------------------------------------------------------------------

@async_test(timeout=90)
async def test_two_nodes_exchange_publishes_over_channels_on_every_primary(cluster_setup):
    s = cluster_setup
    a, b = s.node(), s.node()
    by_primary = s.cluster.channels("cl", 2)
    channels = [c for cs in by_primary.values() for c in cs]
    sub_b = await Client.connect(b, make_token(authorizedChannels=channels))
    sub_a = await Client.connect(a, make_token(authorizedChannels=channels, scope=["subscribe", "publish"]))
    for ch in channels:
        await sub_b.subscribe(ch)
        await sub_a.subscribe(ch)
    for ch in channels:
        assert s.cluster.shardnumsub(ch) == 2, f"{ch}: both nodes SSUBSCRIBEd on the owner of slot {slot_of(ch)}"
    # REST on A, WebSocket publish on B's client... and the other way round.
    for i in range(3):
        for ch in channels:
            assert rest_publish(a, ch, "e", {"n": i, "ch": ch}).status_code == 200
    for ch in channels:
        await sub_a.ok("publish", {"channel": ch, "event": "ws", "payload": {"n": 3, "ch": ch}})
    for sub in (sub_a, sub_b):
        got = [await sub.next_broadcast() for _ in range(4 * len(channels))]
        for ch in channels:
            mine = [m for m in got if m["channel"] == ch]
            assert [m["payload"]["n"] for m in mine] == [0, 1, 2, 3], (ch, mine)
            assert [m["offset"] for m in mine] == [1, 2, 3, 4]
            assert [m["seq"] for m in mine] == [1, 2, 3, 4]
    m = cluster_metrics(b)
    assert m["broadcaster_redis_shard_up"] == 3, m
    assert m["broadcaster_redis_invalid_total"] == 0
    assert requests_health(a) == 200 and requests_health(b) == 200


def requests_health(node) -> int:
    import requests
    return requests.get(node.url("/health"), timeout=2).status_code


@async_test(timeout=90)
async def test_history_and_recovery_on_a_cluster(cluster_setup):
    s = cluster_setup
    a, b = s.node(*HISTORY_ON), s.node(*HISTORY_ON)
    channels = [cs[0] for cs in s.cluster.channels("hist", 1).values()]
    for ch in channels:
        res, again, _ = await resume_on_the_other_node(a, b, ch)
        assert res["recovered"] is True and res["offset"] == 8, res
        replay = [await again.next_broadcast() for _ in range(5)]
        assert [m["payload"] for m in replay] == [3, 4, 5, 6, 7]
        hist = await again.ok("history", {"channel": ch, "limit": 3})
        assert [m["payload"] for m in hist["publications"]] == [5, 6, 7], hist


@async_test(timeout=90)
async def test_presence_across_nodes_on_a_cluster(cluster_setup):
    s = cluster_setup
    flags = ("--presence", "--presence-ttl", "60")
    a, b = s.node(*flags), s.node(*flags)
    channels = [cs[0] for cs in s.cluster.channels("pres", 1).values()]
    for ch in channels:
        watcher = await Client.connect(a, make_token(sub="watcher", authorizedChannels=[ch]))
        await watcher.subscribe(ch, joinLeave=True)
        alice = await Client.connect(b, make_token(sub="alice", authorizedChannels=[ch]))
        await alice.subscribe(ch)
        msg = await watcher.recv(10)
        assert msg.get("method") == "join" and msg["params"]["user"] == "alice", msg
        deadline = time.monotonic() + 10
        while (st := await watcher.ok("presenceStats", {"channel": ch})) != {"numClients": 2, "numUsers": 2}:
            assert time.monotonic() < deadline, st
            await asyncio.sleep(0.02)
        await alice.conn.close()
        msg = await watcher.recv(10)
        assert msg.get("method") == "leave" and msg["params"]["user"] == "alice", msg


@async_test(timeout=60)
async def test_the_server_api_reaches_every_node_on_a_cluster(cluster_setup):
    """disconnect over REST on A closes the user's connections on both nodes: the control channel is the sharded
    P{!control}, held by the shard owning its slot on each node."""
    import requests
    from conftest import API_KEY
    s = cluster_setup
    a, b = s.node(), s.node()
    victims = [await Client.connect(a, make_token(sub="victim")), await Client.connect(b, make_token(sub="victim"))]
    bystander = await Client.connect(b, make_token(sub="bystander"))
    assert s.cluster.shardnumsub("!control") == 2, "both nodes subscribed to the control channel"
    r = await asyncio.to_thread(requests.post, a.url("/disconnect"), json={"user": "victim"},
                                headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    for c in victims:
        assert await c.wait_closed() == (4003, "disconnected by server")
    await bystander.alive()


@async_test(timeout=90)
async def test_presence_follows_a_failover(cluster_setup):
    """A member on B of a channel whose primary is killed: once the replica is promoted, B's members of that slot
    move to the new shard, which re-adds them at once (not at the next refresh pass, PRESENCE_TTL / 3 later)."""
    s = cluster_setup
    flags = ("--presence", "--presence-ttl", "60")
    a, b = s.node(*flags), s.node(*flags)
    ch = chan("pfo")
    alice = await Client.connect(b, make_token(sub="alice", authorizedChannels=[ch]))
    await alice.subscribe(ch)
    watcher = await Client.connect(a, make_token(sub="watcher", authorizedChannels=[ch]))
    await watcher.subscribe(ch)
    before = cluster_metrics(b)
    assert before["broadcaster_redis_presence_members"] == 1, before
    assert before["broadcaster_redis_presence_refreshed_total"] == 0, "no refresh pass yet (the first is 20 s away)"
    primary = s.cluster.owner(slot_of(ch))
    replica = s.cluster.replica_of(primary)
    s.cluster.kill(primary)
    await asyncio.to_thread(wait_for, lambda: resp(replica, "ROLE")[0] == b"master", "replica promoted")
    deadline = time.monotonic() + 10
    while (m := cluster_metrics(b))["broadcaster_redis_presence_refreshed_total"] < 1:
        assert time.monotonic() < deadline, m
        await asyncio.sleep(0.05)
    assert m["broadcaster_redis_presence_members"] == 1, "moved to the new shard, not copied"
    deadline = time.monotonic() + 10
    while True:
        try:
            st = await watcher.ok("presenceStats", {"channel": ch})
            if st == {"numClients": 2, "numUsers": 2}:
                break
        except AssertionError:  # Unavailable until A has moved too
            pass
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


# ---- slots moving ----------------------------------------------------------------------------------------------

def check_stream(got: list[dict], pub: Publisher, history: bool, skipped: int):
    seen = {m["id"] for m in got}
    missing = [i for i, (status, id) in enumerate(pub.answers) if status == 200 and id not in seen]
    ids = [m["id"] for m in got]
    assert len(ids) == len(set(ids)), "none twice"
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs)), "seq only grows"
    payloads = [m["payload"] for m in got]
    assert payloads == sorted(payloads), "in publish order"
    if history:
        assert not missing, f"{len(missing)} publishes answered 200 never delivered: {missing[:20]}"
    else:
        assert len(missing) <= skipped, (missing, skipped)
    return missing


async def stream(s: Setup, flags, during, rate: float = 200.0):
    """A 200/s stream from A to a subscriber on B on one channel; `during(channel)` runs once 100 arrived and
    returns when the disturbance is over. Returns (delivered, publisher, B's metrics, kill time, B)."""
    a, b = s.node(*flags), s.node(*flags)
    ch = chan("st")
    sub = await Client.connect(b, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    got: list[dict] = []

    async def read():
        while True:
            m = await sub.next_broadcast(timeout=60)
            m["_at"] = time.monotonic()
            got.append(m)

    reader = asyncio.create_task(read())
    pub = Publisher(a, ch, rate)
    pub.start()
    try:
        while len(got) < 100:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.to_thread(during, ch)
        at = pub.ok_count()
        await wait_ok(pub, at + 300, timeout=40)
    finally:
        pub.halt.set()
        await asyncio.to_thread(pub.join)
    acked = set(pub.ok_ids())
    deadline = time.monotonic() + 10
    while not acked <= {m["id"] for m in got} and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    reader.cancel()
    for line in a.output().splitlines():
        if "refused" in line or "MOVED" in line or "ASK" in line:
            print("A:", line)
    return got, pub, cluster_metrics(b), started, b


@pytest.mark.parametrize("history", [True, False], ids=["history_on", "history_off"])
@async_test(timeout=150)
async def test_a_slot_migrated_during_a_stream(cluster_setup, history):
    s = cluster_setup

    def migrate(ch):
        slot = slot_of(ch)
        to = next(p for p in s.cluster.primaries() if p != s.cluster.owner(slot))
        s.cluster.migrate(slot, to)
        wait_for(lambda: s.cluster.owner(slot) == to, "slot moved")

    got, pub, m, _, b = await stream(s, HISTORY_ON if history else (), migrate)
    missing = check_stream(got, pub, history, int(m["broadcaster_redis_skipped_total"]))
    epochs = [x["epoch"] for x in got]
    assert len(set(epochs)) == 1, "a migration keeps the channel's epoch (MIGRATE moves its meta whole)"
    assert [x["offset"] for x in got] == sorted(set(x["offset"] for x in got))
    if history:
        # Nothing lost, nothing skipped: every offset once.
        assert [x["offset"] for x in got] == list(range(1, len(got) + 1))
    failed = sum(1 for st, _ in pub.answers if st != 200)
    print(f"\n[cluster migration, history {'on' if history else 'off'}] {len(got)} delivered, {failed} of "
          f"{len(pub.answers)} publishes answered non-200, {len(missing)} acknowledged not delivered (gaps), "
          f"repaired {m['broadcaster_redis_repaired_total']:.0f}, skipped {m['broadcaster_redis_skipped_total']:.0f}")
    assert "slot map changed" in b.output()


@async_test(timeout=150)
async def test_a_primary_joins_and_leaves_during_a_stream(cluster_setup):
    """A new primary joins and takes the streaming channel's slot (a shard is made for it), then gives it back and
    serves no slot any more (its shard is closed): nothing acknowledged is lost, one epoch, in order."""
    s = cluster_setup
    moves = {}

    def join_and_leave(ch):
        slot = slot_of(ch)
        home = s.cluster.owner(slot)
        new = s.cluster.add_primary()
        s.cluster.migrate(slot, new)
        wait_for(lambda: s.cluster.owner(slot) == new, "slot on the new primary")
        moves["new"] = new
        time.sleep(1.0)  # a second of the stream through the new primary
        s.cluster.migrate(slot, home)
        wait_for(lambda: s.cluster.owner(slot) == home, "slot back home")

    got, pub, m, _, b = await stream(s, HISTORY_ON, join_and_leave)
    check_stream(got, pub, True, 0)
    # Every message once and in order within its epoch. One CI run in about six saw the channel start a new epoch
    # (offsets from 1 again, nothing acknowledged lost) as the slot came back to its first primary: an open bug,
    # docs/redis.md "Redis Cluster", "Not covered". The offsets of each epoch must still run 1, 2, 3, ...
    epochs: dict[str, list[int]] = {}
    for x in got:
        epochs.setdefault(x["epoch"], []).append(x["offset"])
    first = got[0]["epoch"]
    assert epochs[first] == list(range(1, len(epochs[first]) + 1)), "every message once, in order"
    for e, offsets in epochs.items():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), (e, offsets[:20])
        assert e == first or offsets[0] == 1, "a new epoch starts at offset 1"
    if len(epochs) > 1:
        print(f"\n[cluster join+leave] KNOWN ISSUE: {len(epochs)} epochs (offsets restarted after "
              f"{len(epochs[first])} messages)")
    out = b.output()
    assert f"127.0.0.1:{moves['new']} serves no slot any more" in out, out[-3000:]
    failed = sum(1 for st, _ in pub.answers if st != 200)
    print(f"\n[cluster join+leave] {len(got)} delivered, {failed} of {len(pub.answers)} publishes answered non-200, "
          f"repaired {m['broadcaster_redis_repaired_total']:.0f}")


@pytest.mark.parametrize("history", [True, False], ids=["history_on", "history_off"])
@async_test(timeout=150)
async def test_a_primary_killed_during_a_stream(cluster_setup, history):
    s = cluster_setup
    killed = {}

    def kill(ch):
        primary = s.cluster.owner(slot_of(ch))
        replica = s.cluster.replica_of(primary)
        killed["at"] = time.monotonic()
        s.cluster.kill(primary)
        wait_for(lambda: resp(replica, "ROLE")[0] == b"master", "replica promoted", timeout=30)
        killed["promoted"] = time.monotonic()

    got, pub, m, started, _ = await stream(s, HISTORY_ON if history else (), kill)
    missing = check_stream(got, pub, history, int(m["broadcaster_redis_skipped_total"]))
    epochs = [x["epoch"] for x in got]
    assert len(set(epochs)) == 2 and epochs == sorted(epochs, key=epochs.index), "one new epoch, after the old"
    for e in set(epochs):
        offsets = [x["offset"] for x in got if x["epoch"] == e]
        assert offsets == sorted(set(offsets)), f"epoch {e} in order"
        if history:
            assert offsets == list(range(1, len(offsets) + 1)), f"every message of epoch {e} once, in order"
    first_after = next(x["_at"] for x in got if x["epoch"] == epochs[-1])
    after = [killed["at"]] + [x["_at"] for x in got if x["_at"] >= killed["at"]]
    longest = max(after[i + 1] - after[i] for i in range(len(after) - 1))
    failed = sum(1 for st, _ in pub.answers if st != 200)
    print(f"\n[cluster primary SIGKILL, history {'on' if history else 'off'}] kill -> replica promoted "
          f"{(killed['promoted'] - killed['at']) * 1000:.0f} ms, -> first delivery through it "
          f"{(first_after - killed['at']) * 1000:.0f} ms; longest pause {longest * 1000:.0f} ms; {failed} of "
          f"{len(pub.answers)} publishes answered non-200; {len(missing)} acknowledged not delivered (gaps)")
