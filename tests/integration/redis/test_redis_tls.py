"""Redis over TLS (`rediss://`) and ACL users (issue 21): real redis-server processes listening on TLS only.

The certificates are made at test time with the openssl command: a CA, a server certificate for localhost and
127.0.0.1, a client certificate, and a second, unrelated CA. Every refusal is checked three ways: /health stays
503, a REST publish answers 503 at once rather than hanging, and the log says which check failed.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from conftest import Client, Server, async_test, chan, make_token, rest_publish
from redis_helpers import (RedisConnection, RedisServer, _read_reply, free_cluster_port, free_port, health,
                           redis_metrics, start_node, stop_all, wait_health)

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_material(d: Path) -> SimpleNamespace:
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bc test CA")
    run("req", "-x509", *EC, "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2", "-subj",
        "/CN=bc other CA")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("req", *EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "2", "-extfile", "server.ext")
    run("req", *EC, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=broadcaster")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "client.crt", "-days", "2")
    return SimpleNamespace(**{n.replace("-", "_").replace(".", "_"): str(d / n) for n in (
        "ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt", "client.key")})


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_material(tmp_path_factory.mktemp("redis-tls"))


def tls_command(tls, port: int, *args: str):
    """One command over a fresh TLS connection (with the client certificate)."""
    ctx = ssl.create_default_context(cafile=tls.ca_crt)
    ctx.load_cert_chain(tls.client_crt, tls.client_key)
    parts = [a.encode() for a in args]
    payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(payload)
            with s.makefile("rb") as f:
                return _read_reply(f)


class TlsRedis:
    """redis-server with TLS only (`--port 0`); start() again reuses the TLS port. Admin commands over TLS."""

    def __init__(self, tls, auth_clients: bool = False):
        self.tls, self.auth_clients = tls, auth_clients
        self.port = free_port()
        self.proc = None
        self.start()

    def url(self, userinfo: str = "", host: str = "127.0.0.1") -> str:
        return f"rediss://{userinfo}{host}:{self.port}"

    def start(self, timeout: float = 10.0):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", self.tls.server_crt, "--tls-key-file", self.tls.server_key,
             "--tls-ca-cert-file", self.tls.ca_crt, "--tls-auth-clients", "yes" if self.auth_clients else "no",
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self("PING") == "PONG":
                    return
            except (OSError, RuntimeError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"TLS redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def __call__(self, *args: str):
        return tls_command(self.tls, self.port, *args)

    def stop(self):
        self.kill()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def procs():
    """Everything a test starts, torn down whatever happens."""
    started = []
    yield started
    stop_all(*reversed(started))


def trust(tls) -> tuple[str, ...]:
    return ("--redis-tls-ca-file", tls.ca_crt)


def client_cert(tls) -> tuple[str, ...]:
    return ("--redis-tls-cert-file", tls.client_crt, "--redis-tls-key-file", tls.client_key)


def node(procs, url: str, *flags: str, healthy: bool = True) -> Server:
    n = start_node(url, *flags, healthy=healthy)
    procs.append(n)
    return n


def wait_log(n: Server, *needles: str, timeout: float = 10.0) -> str:
    """The first log line containing every needle."""
    deadline = time.monotonic() + timeout
    while True:
        for line in n.output().splitlines():
            if all(x in line for x in needles):
                return line
        assert time.monotonic() < deadline, f"no log line with {needles}:\n{n.output()}"
        time.sleep(0.05)


def refused(n: Server, *needles: str) -> str:
    """The node is up but not connected: the log says why, /health is 503, a publish answers 503 at once."""
    line = wait_log(n, "redis shard 0", "cannot connect", *needles)
    assert health(n) == 503
    t0 = time.monotonic()
    r = rest_publish(n, chan("tls"), "e", 1)
    assert r.status_code == 503, r.text
    assert time.monotonic() - t0 < 1.0, "a publish while Redis is unreachable must not hang"
    time.sleep(1.0)  # and it stays so (retried with backoff)
    assert health(n) == 503
    return line


async def crossing(a: Server, b: Server):
    """A publish on each node reaches a subscriber on the other."""
    ch = chan("tls")
    subs = []
    for n in (a, b):
        c = await Client.connect(n, make_token(authorizedChannels=[ch]))
        await c.subscribe(ch)
        subs.append(c)
    for i, (pub, sub) in enumerate(((a, subs[1]), (b, subs[0]))):
        r = await asyncio.to_thread(rest_publish, pub, ch, "e", {"i": i})
        assert r.status_code == 200, r.text
        while (m := await sub.next_broadcast())["payload"] != {"i": i}:
            pass
        assert m["channel"] == ch
    for c in subs:
        await c.close()


@async_test(60)
async def test_two_nodes_over_tls_only_redis_deliver_each_others_publishes(tls, procs):
    redis = TlsRedis(tls)
    procs.append(redis)
    # One node verifies the server by its IP address, the other by its DNS name.
    a = node(procs, redis.url(), *trust(tls))
    b = node(procs, redis.url(host="localhost"), *trust(tls))
    await crossing(a, b)
    assert redis_metrics(a)["broadcaster_redis_shard_up"] == 1


@async_test(60)
async def test_client_certificate_required_works_with_one_and_refuses_clearly_without(tls, procs):
    redis = TlsRedis(tls, auth_clients=True)
    procs.append(redis)
    a = node(procs, redis.url(), *trust(tls), *client_cert(tls))
    b = node(procs, redis.url(), *trust(tls), *client_cert(tls))
    await crossing(a, b)
    without = node(procs, redis.url(), *trust(tls), healthy=False)
    line = await asyncio.to_thread(refused, without, "certificate required")
    assert "127.0.0.1" in line


def test_wrong_ca_is_refused_with_the_failed_check_in_the_log(tls, procs):
    redis = TlsRedis(tls)
    procs.append(redis)
    n = node(procs, redis.url(), "--redis-tls-ca-file", tls.other_ca_crt, healthy=False)
    refused(n, "certificate verify failed", "certificate check: ")


def test_server_name_mismatch_is_refused_and_the_insecure_switch_accepts_it(tls, procs):
    redis = TlsRedis(tls)
    procs.append(redis)
    n = node(procs, redis.url(), *trust(tls), "--redis-tls-server-name", "redis.example.com", healthy=False)
    refused(n, "hostname mismatch", "redis.example.com")
    # Development switch: neither the name nor the CA is checked, and the node says so loudly.
    dev = node(procs, redis.url(), "--redis-tls-ca-file", tls.other_ca_crt, "--redis-tls-server-name",
               "redis.example.com", "--redis-tls-insecure-skip-verify")
    assert health(dev) == 200
    wait_log(dev, "REDIS_TLS_INSECURE_SKIP_VERIFY", "NOT checked")
    r = rest_publish(dev, chan("tls"), "e", 1)
    assert r.status_code == 200, r.text


@async_test(60)
async def test_an_acl_user_over_tls(tls, procs):
    redis = TlsRedis(tls)
    procs.append(redis)
    # The grant docs/redis.md recommends: the prefix's keys and channels, no dangerous commands.
    assert redis("ACL", "SETUSER", "app", "on", ">app-secret-pw", "~broadcaster:*", "&broadcaster:*", "+@all",
                 "-@dangerous", "+info", "+role") == "OK"
    assert redis("ACL", "SETUSER", "default", "off") == "OK"  # nobody gets in without the user
    a = node(procs, redis.url("app:app-secret-pw@"), *trust(tls))
    b = node(procs, redis.url("app:app-secret-pw@"), *trust(tls))
    await crossing(a, b)
    wrong = node(procs, redis.url("app:not-the-password@"), *trust(tls), healthy=False)
    await asyncio.to_thread(wait_log, wrong, "redis shard 0", "AUTH failed")
    assert health(wrong) == 503
    assert "not-the-password" not in wrong.output() and "app-secret-pw" not in a.output()


@async_test(90)
async def test_tls_redis_restarted_mid_stream_reconnects_and_deliveries_resume(tls, procs):
    redis = TlsRedis(tls)
    procs.append(redis)
    a = node(procs, redis.url(), *trust(tls), "--log-level", "debug")
    b = node(procs, redis.url(), *trust(tls))
    ch = chan("tls")
    sub = await Client.connect(b, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    got, sent = [], []

    async def publish_until(n: int):
        while len(sent) < n:
            r = await asyncio.to_thread(rest_publish, a, ch, "e", len(sent))
            if r.status_code == 200:
                sent.append(len(sent))
            else:
                assert r.status_code == 503, r.text
                await asyncio.sleep(0.02)

    await publish_until(20)
    redis.kill()
    await asyncio.to_thread(wait_health, a, 503)
    redis.start()
    await asyncio.to_thread(wait_health, a, 200, 20)
    await asyncio.to_thread(wait_health, b, 200, 20)
    await publish_until(40)
    while len(got) < 40:
        m = await sub.next_broadcast(10)
        got.append(m["payload"])
    # Every publish answered 200 arrived, in order (no history: Redis restarted empty, nothing else is owed).
    assert got == sent, got
    m = redis_metrics(a)
    assert m["broadcaster_redis_reconnects_total"] >= 2, m
    await sub.close()


def test_startup_refuses_unreadable_tls_files(tls, tmp_path):
    for flags, needle in ((("--redis-tls-ca-file", str(tmp_path / "missing.crt")), "REDIS_TLS_CA_FILE"),
                          (("--redis-tls-cert-file", tls.client_crt), "REDIS_TLS_KEY_FILE"),
                          (("--redis-tls-cert-file", tls.client_crt, "--redis-tls-key-file",
                            str(tmp_path / "nope.key")), "REDIS_TLS_KEY_FILE")):
        s = Server("--broker", "redis", "--redis-url", "rediss://127.0.0.1:1", *flags)
        assert s.proc.wait(10) == 2, s.output()
        s.stop()
        assert needle in s.output(), s.output()
    # Readable, but the key is not the certificate's: refused when the broker is built.
    s = Server("--broker", "redis", "--redis-url", "rediss://127.0.0.1:1", "--redis-tls-cert-file", tls.client_crt,
               "--redis-tls-key-file", tls.server_key)
    assert s.proc.wait(10) != 0, s.output()
    s.stop()
    assert "does not match" in s.output(), s.output()


class SentinelProcess:
    """redis-sentinel monitoring `master` at 127.0.0.1:primary_port, with `extra` config lines."""

    def __init__(self, tmp: Path, primary_port: int, extra: str = "", tls=None):
        self.port = free_port()
        conf = tmp / f"sentinel-{self.port}.conf"
        ports = f"port 0\ntls-port {self.port}\n" if tls else f"port {self.port}\n"
        conf.write_text(f"{ports}bind 127.0.0.1\ndaemonize no\nloglevel warning\n"
                        f"sentinel monitor m 127.0.0.1 {primary_port} 1\n{extra}")
        exe = shutil.which("redis-sentinel")
        cmd = [exe, str(conf)] if exe else ["redis-server", str(conf), "--sentinel"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def wait_until(pred, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except (OSError, RuntimeError, ConnectionError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sentinel_with_its_own_password(tmp_path, procs):
    primary = RedisServer()
    procs.append(primary)
    sentinel = SentinelProcess(tmp_path, primary.port, "requirepass sentinel-pw\n")
    procs.append(sentinel)

    def answers():
        c = RedisConnection(sentinel.port)
        try:
            return c("AUTH", "sentinel-pw") == "OK" and c("SENTINEL", "get-master-addr-by-name", "m") is not None
        finally:
            c.close()

    wait_until(answers, "the sentinel")
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/m"
    without = node(procs, url, healthy=False)
    wait_log(without, "sentinel", "NOAUTH")
    assert health(without) == 503
    n = node(procs, url, "--redis-sentinel-password", "sentinel-pw")
    r = rest_publish(n, chan("sent"), "e", 1)
    assert r.status_code == 200, r.text
    assert "sentinel-pw" not in n.output() + without.output()


@async_test(60)
async def test_sentinel_and_primary_over_tls(tls, tmp_path, procs):
    primary = TlsRedis(tls)
    procs.append(primary)
    sentinel = SentinelProcess(
        tmp_path, primary.port,
        f"tls-cert-file {tls.server_crt}\ntls-key-file {tls.server_key}\ntls-ca-cert-file {tls.ca_crt}\n"
        "tls-replication yes\ntls-auth-clients no\n", tls=tls)
    procs.append(sentinel)
    await asyncio.to_thread(wait_until, lambda: tls_command(tls, sentinel.port, "SENTINEL", "get-master-addr-by-name",
                                                            "m") is not None, "the TLS sentinel")
    url = f"rediss+sentinel://127.0.0.1:{sentinel.port}/m"
    a = node(procs, url, *trust(tls))
    b = node(procs, url, *trust(tls))
    await crossing(a, b)
    # Plain redis+sentinel:// to a TLS-only sentinel does not get in.
    plain = node(procs, f"redis+sentinel://127.0.0.1:{sentinel.port}/m", healthy=False)
    await asyncio.to_thread(wait_log, plain, "sentinel", "cannot connect")
    assert health(plain) == 503


# ---- a Redis Cluster over TLS (rediss+cluster://) ----------------------------------------------------------

class TlsCluster:
    """Three TLS-only primaries (`--port 0`, `tls-cluster yes`: the bus is TLS too), no replicas."""

    def __init__(self, tls, tmp: Path):
        self.tls, self.procs = tls, []
        self.ports = [free_cluster_port() for _ in range(3)]
        for port in self.ports:
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                 "--tls-cluster", "yes", "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                 "--cluster-config-file", str(tmp / f"nodes-{port}.conf"), "--dir", str(tmp),
                 "--tls-cert-file", tls.server_crt, "--tls-key-file", tls.server_key, "--tls-ca-cert-file", tls.ca_crt,
                 "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            wait_until(lambda: all(self.answers(p) for p in self.ports), "the TLS cluster nodes answer")
            out = subprocess.run(["redis-cli", "--tls", "--cacert", tls.ca_crt, "--cluster", "create",
                                  *[f"127.0.0.1:{p}" for p in self.ports], "--cluster-yes"],
                                 capture_output=True, timeout=60)
            assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
            wait_until(lambda: all(b"cluster_state:ok" in tls_command(tls, p, "CLUSTER", "INFO")
                                   for p in self.ports), "cluster_state:ok on every node", timeout=30)
        except BaseException:
            self.stop()
            raise

    def answers(self, port: int) -> bool:
        try:
            return tls_command(self.tls, port, "PING") == "PONG"
        except (OSError, RuntimeError, ConnectionError):
            return False

    def url(self) -> str:
        return f"rediss+cluster://127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


@async_test(120)
async def test_a_redis_cluster_over_tls(tls, procs, tmp_path):
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli is not installed (Debian's redis-tools, scripts/install-deps.sh)")
    cluster = TlsCluster(tls, tmp_path)
    procs.append(cluster)
    a = node(procs, cluster.url(), *trust(tls))
    b = node(procs, cluster.url(), *trust(tls))
    # Random channels, most likely on every primary: the slot map's TLS ports are followed to each of them.
    for _ in range(6):
        await crossing(a, b)
    shards = [line for line in requests.get(a.url("/metrics"), timeout=2).text.splitlines()
              if line.startswith("broadcaster_redis_shard_up{")]
    assert len(shards) == 3 and all(line.endswith(" 1") for line in shards), shards
    # Without the CA the same URL is refused (the certificate is checked on the cluster's nodes too).
    c = node(procs, cluster.url(), healthy=False)
    wait_log(c, "redis cluster", "cannot connect", "certificate verify failed")
    assert health(c) == 503
    r = rest_publish(c, chan("tls"), "e", 1)
    assert r.status_code == 503, r.text
