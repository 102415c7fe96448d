"""Operability: metrics that move with traffic, /info, the Origin allow-list, the TOML config file and its
precedence, --print-config, and logs (no secrets, JSON lines)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import tomllib
import uuid

import pytest
import requests
import websockets

from conftest import (API_KEY, API_KEY_2, BASE, BINARY, LISTEN_RE, OP_CLOSE, OP_TEXT, ROOT, SECRET, TIMESTAMP_RE,
                      Client, RawWS, Server, async_test, chan, check_error, check_rest_error, clean_env, make_token,
                      rest_ok, rest_publish, server_fixture, start_server)

# Settings conftest's CONFIG_ENV does not scrub: a CONFIG or TLS_* in the calling shell must not leak in.
EXTRA_ENV = ("CONFIG", "TLS_CERT", "TLS_KEY", "RATE_LIMIT", "RATE_BURST")
MASK = "********"


@pytest.fixture(scope="module", autouse=True)
def _scrub_extra_env():
    saved = {k: os.environ.pop(k) for k in EXTRA_ENV if k in os.environ}
    yield
    os.environ.update(saved)


ops = server_fixture("--threads", "2", "--auth-timeout", "1", "--max-message-size", "4096")
metrics_locked = server_fixture("--threads", "1", "--metrics-auth")
origins = server_fixture("--threads", "2", env={"ALLOWED_ORIGINS": "https://good.example, https://also.example"})


def run_binary(args, env=None, timeout=10) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), *args], env=clean_env(**(env or {})), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# Metrics

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(srv: Server) -> dict:
    """{'name{labels}': value} of one scrape, checking the text format on the way."""
    r = requests.get(srv.url("/metrics"), timeout=5)
    assert r.status_code == 200, r.status_code
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    samples, typed = {}, set()
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1)) if m.group(1) not in typed else m.group(1)
        assert family in typed, f"sample before its # TYPE line: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def wait_metrics(srv: Server, expected: dict, base: dict, timeout: float = 5.0) -> dict:
    """Scrape until every metric in `expected` is base + delta; a mismatch after `timeout` fails naming them."""
    deadline = time.monotonic() + timeout
    while True:
        now = scrape(srv)
        wrong = {k: (now.get(k, 0) - base.get(k, 0), d) for k, d in expected.items()
                 if now.get(k, 0) - base.get(k, 0) != d}
        if not wrong:
            return now
        if time.monotonic() > deadline:
            raise AssertionError("metric deltas (got, want): " + ", ".join(f"{k}: {v}" for k, v in wrong.items()))
        time.sleep(0.05)


async def await_metrics(srv, expected, base, timeout=5.0):
    return await asyncio.to_thread(wait_metrics, srv, expected, base, timeout)


CLOSED = 'broadcaster_connections_closed_total{{reason="{}"}}'.format
PUBLISHED = 'broadcaster_messages_published_total{{source="{}"}}'.format
ERRORS = 'broadcaster_request_errors_total{{code="{}"}}'.format


def test_metrics_open_by_default_and_behind_an_api_key_with_metrics_auth(ops, metrics_locked):
    assert requests.get(ops.url("/metrics"), timeout=5).status_code == 200
    key = {"Authorization": f"Bearer {API_KEY}"}
    failures = "broadcaster_auth_failures_total "
    before = next(int(l.split()[1]) for l in requests.get(metrics_locked.url("/metrics"), headers=key,
                                                           timeout=5).text.splitlines() if l.startswith(failures))
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": API_KEY}):
        r = requests.get(metrics_locked.url("/metrics"), headers=headers, timeout=5)
        assert r.status_code == 401, (headers, r.status_code)
        assert r.json()["error"]["code"] == "Unauthenticated"
    r = requests.get(metrics_locked.url("/metrics"), headers=key, timeout=5)
    assert r.status_code == 200 and "broadcaster_connections " in r.text
    assert f"{failures}{before + 3}" in r.text.splitlines(), "the three refused scrapes are auth failures"
    assert requests.get(metrics_locked.url("/health"), timeout=5).status_code == 200  # never locked


def test_metrics_text_format_lists_every_family(ops):
    m = scrape(ops)
    for name in ("broadcaster_connections", "broadcaster_connections_authenticated",
                 "broadcaster_connections_accepted_total", "broadcaster_connections_rejected_total",
                 "broadcaster_channels", "broadcaster_subscriptions", "broadcaster_deliveries_total",
                 "broadcaster_deliveries_dropped_total", "broadcaster_bytes_received_total",
                 "broadcaster_bytes_sent_total", "broadcaster_http_requests_total", "broadcaster_auth_failures_total",
                 "broadcaster_batched_sends_total", "broadcaster_handovers_total",
                 "broadcaster_handover_wakeups_total", "broadcaster_inbox_bytes", "broadcaster_inbox_refused_total",
                 "broadcaster_inbox_bytes_peak",
                 "broadcaster_inbox_overflows_total",
                 "broadcaster_broker_up", PUBLISHED("rest"), PUBLISHED("websocket"), CLOSED("slow_consumer"),
                 CLOSED("client_close"), ERRORS("PermissionDenied")):
        assert name in m, f"{name} missing from /metrics"
    assert m["broadcaster_broker_up"] == 1
    assert requests.post(ops.url("/metrics"), timeout=5).status_code == 405


@async_test(timeout=30)
async def test_connection_gauges_go_up_and_down(ops):
    base = await asyncio.to_thread(scrape, ops)
    ch = chan()
    authed = [await Client.connect(ops, make_token(authorizedChannels=[ch])) for _ in range(2)]
    anon = await Client.connect(ops)
    await await_metrics(ops, {"broadcaster_connections": 3, "broadcaster_connections_authenticated": 2,
                              "broadcaster_connections_accepted_total": 3}, base)
    for c in authed + [anon]:
        await c.close()
    await await_metrics(ops, {"broadcaster_connections": 0, "broadcaster_connections_authenticated": 0,
                              "broadcaster_connections_accepted_total": 3, CLOSED("client_close"): 3}, base)


@async_test(timeout=30)
async def test_published_by_source_deliveries_subscriptions_and_bytes(ops):
    ch = chan()
    tok = make_token(authorizedChannels=[ch])
    a, b = await Client.connect(ops, tok), await Client.connect(ops, tok)
    base = await asyncio.to_thread(scrape, ops)
    await a.subscribe(ch)
    await b.subscribe(ch)
    await await_metrics(ops, {"broadcaster_subscriptions": 2, "broadcaster_channels": 1}, base)
    for i in range(3):
        await asyncio.to_thread(rest_ok, ops, ch, "ev", i)
    await a.publish(ch, "x")
    await a.publish(ch, "y")
    for c in (a, b):
        for _ in range(5):
            await c.next_broadcast()
    now = await await_metrics(ops, {PUBLISHED("rest"): 3, PUBLISHED("websocket"): 2,
                                    "broadcaster_deliveries_total": 10}, base)
    assert now["broadcaster_bytes_received_total"] > base["broadcaster_bytes_received_total"]
    assert now["broadcaster_bytes_sent_total"] - base["broadcaster_bytes_sent_total"] >= 10 * 50
    assert now["broadcaster_http_requests_total"] >= base["broadcaster_http_requests_total"] + 3
    await a.ok("unsubscribe", {"channel": ch})
    await await_metrics(ops, {"broadcaster_subscriptions": 1, "broadcaster_channels": 1}, base)
    await b.close()
    await a.close()
    await await_metrics(ops, {"broadcaster_subscriptions": 0, "broadcaster_channels": 0}, base)


@async_test(timeout=30)
async def test_publications_handed_to_the_other_thread_are_counted():
    # A server of its own, so that no earlier hand-over keeps the other thread up. 16 subscribers on two
    # threads: all on the thread that reads the REST requests has odds of 2^-15.
    srv = await asyncio.to_thread(start_server, "--threads", "2", "--handover-delay", "2")
    try:
        ch = chan()
        tok = make_token(authorizedChannels=[ch])
        subs = [await Client.connect(srv, tok) for _ in range(16)]
        for c in subs:
            await c.subscribe(ch)
        base = await asyncio.to_thread(scrape, srv)
        for i in range(5):
            await asyncio.to_thread(rest_ok, srv, ch, "ev", i)
        for c in subs:
            assert [(await c.next_broadcast())["payload"] for _ in range(5)] == list(range(5))
        now = await asyncio.to_thread(scrape, srv)
        assert now["broadcaster_handovers_total"] > base["broadcaster_handovers_total"]
        # The first hand-over finds the other thread asleep (none came before) and must wake it.
        assert now["broadcaster_handover_wakeups_total"] > base["broadcaster_handover_wakeups_total"]
        for c in subs:
            await c.close()
    finally:
        srv.stop()


@async_test(timeout=30)
async def test_request_errors_counted_by_code(ops):
    c = await Client.connect(ops)
    base = await asyncio.to_thread(scrape, ops)
    e1 = await c.err("subscribe", {"channel": chan()})  # not authenticated yet
    await c.auth(make_token(authorizedChannels=["news"]))
    e2 = await c.err("subscribe", {"channel": chan()}, code="PermissionDenied")
    e3 = await c.err("no-such-method")
    want = {}
    for e in (e1, e2, e3):
        want[ERRORS(e["code"])] = want.get(ERRORS(e["code"]), 0) + 1
    await await_metrics(ops, want, base)
    await c.close()


@async_test(timeout=30)
async def test_auth_failures_counted(ops):
    base = await asyncio.to_thread(scrape, ops)
    c = await Client.connect(ops)
    await c.err("auth", {"token": make_token(secret="not-the-secret")}, code="Unauthenticated")
    await c.err("auth", {"token": make_token(exp=int(time.time()) - 3600)}, code="Unauthenticated")
    r = await asyncio.to_thread(rest_publish, ops, chan(), key="not-a-key")
    check_rest_error(r, 401, "Unauthenticated")
    r = await asyncio.to_thread(requests.get, ops.url("/info"), headers={"Authorization": "Bearer guess"},
                                timeout=5)
    assert r.status_code == 401, r.status_code  # a key guessed on /info counts like one guessed on /publish
    by_reason = 'broadcaster_auth_failures_by_reason_total{{reason="{}"}}'.format
    await await_metrics(ops, {"broadcaster_auth_failures_total": 4, "broadcaster_connections_authenticated": 0,
                              by_reason("bad_signature"): 1, by_reason("expired"): 1, by_reason("api_key"): 2,
                              by_reason("malformed"): 0}, base)
    reasons = {k[len(by_reason("")) - 2:-2] for k in base if k.startswith(by_reason("")[:-3])}
    assert reasons == {"api_key", "malformed", "unsupported_alg", "bad_signature", "expired", "not_yet_valid",
                       "issued_in_future", "wrong_audience", "missing_claim", "invalid_claim"}, reasons
    await c.close()


@async_test(timeout=30)
async def test_request_latency_histogram_counts_each_request_by_method(ops):
    base = await asyncio.to_thread(scrape, ops)
    ch = chan()
    c = await Client.connect(ops, make_token(authorizedChannels=[ch], scope=["subscribe", "publish"]))
    for _ in range(3):
        await c.request("heartbeat")
    await c.subscribe(ch)
    await c.request("publish", {"channel": ch, "event": "e", "payload": 1})
    count = 'broadcaster_request_duration_seconds_count{{method="{}"}}'.format
    inf = 'broadcaster_request_duration_seconds_bucket{{method="{}",le="+Inf"}}'.format
    now = await await_metrics(ops, {count("heartbeat"): 3, inf("heartbeat"): 3, count("auth"): 1,
                                    count("subscribe"): 1, count("publish"): 1}, base)
    # Buckets are cumulative: never decreasing, ending at the count.
    buckets = sorted(((float(k.split('le="')[1].rstrip('"}')) if "+Inf" not in k else float("inf")), v)
                     for k, v in now.items() if k.startswith('broadcaster_request_duration_seconds_bucket{method="heartbeat"'))
    values = [v for _, v in buckets]
    assert values == sorted(values) and values[-1] == now[count("heartbeat")]
    assert now['broadcaster_request_duration_seconds_sum{method="heartbeat"}'] >= 0
    await c.close()


def closed_by_server(raw: RawWS, code: int, echo: bool = True, timeout: float = 5.0):
    """Wait for the server's close frame with `code`; echo it as browsers do (or just drop the socket)."""
    got = raw.wait_close(timeout)
    assert got[0] == code, f"expected close {code}, got {got}"
    if echo:
        raw.send_frame(OP_CLOSE, struct.pack("!H", code))
    raw.close()


@async_test(timeout=30)
async def test_connections_closed_by_reason(ops):
    base = await asyncio.to_thread(scrape, ops)
    polite = await Client.connect(ops)
    await polite.close()  # close handshake started by the client
    gone = RawWS(ops.port)
    gone.request("heartbeat")
    gone.sock.close()  # no close frame
    late = RawWS(ops.port)  # never authenticates: --auth-timeout 1
    closed_by_server(late, 1008)
    await await_metrics(ops, {CLOSED("client_close"): 1, CLOSED("client_gone"): 1, CLOSED("auth_timeout"): 1,
                              "broadcaster_connections": 0}, base)


@async_test(timeout=30)
async def test_frame_errors_closed_by_reason(ops):
    # The server closes for a broken frame; the client answers with its close frame and hangs up, as browsers do.
    base = await asyncio.to_thread(scrape, ops)
    bad = RawWS(ops.port)
    bad.send_frame(OP_TEXT, b'{"id":1,"method":"heartbeat"}', mask=False)
    closed_by_server(bad, 1002)
    big = RawWS(ops.port)
    big.send_text("x" * 10000)
    closed_by_server(big, 1009)
    utf = RawWS(ops.port)
    utf.send_text(b'{"id":1,"method":"heartbeat","params":"\xff"}')
    closed_by_server(utf, 1007)
    await await_metrics(ops, {CLOSED("protocol_error"): 1, CLOSED("message_too_big"): 1, CLOSED("invalid_utf8"): 1,
                              CLOSED("client_gone"): 0, "broadcaster_connections": 0}, base)


@async_test(timeout=30)
async def test_server_initiated_close_keeps_its_reason_when_the_client_vanishes(ops):
    # The server decided why it closes: a client that drops the TCP connection instead of answering the close
    # frame does not turn an auth timeout into "client_gone".
    base = await asyncio.to_thread(scrape, ops)
    late = RawWS(ops.port)
    closed_by_server(late, 1008, echo=False)
    await await_metrics(ops, {CLOSED("auth_timeout"): 1, CLOSED("client_gone"): 0, "broadcaster_connections": 0},
                        base)


def test_rejected_upgrades_counted():
    srv = start_server("--max-connections", "1", "--threads", "1")
    try:
        base = scrape(srv)
        first = RawWS(srv.port)
        second = RawWS(srv.port, handshake=False)
        assert second.handshake(expect=None) == 429
        wait_metrics(srv, {"broadcaster_connections_rejected_total": 1, "broadcaster_connections": 1}, base)
        first.close()
        second.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------------------------
# /info


def test_info_requires_an_api_key(ops):
    check_rest_error(requests.get(ops.url("/info"), timeout=5), 401, "Unauthenticated")
    for header in ("Bearer wrong-key", f"Basic {API_KEY}", API_KEY, f"Bearer {API_KEY}x"):
        r = requests.get(ops.url("/info"), headers={"Authorization": header}, timeout=5)
        check_rest_error(r, 401, "Unauthenticated")
        assert API_KEY not in r.text
    r = requests.get(ops.url("/info"), headers={"Authorization": f"Bearer {API_KEY_2}"}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "no-store" in r.headers.get("cache-control", "")


def info(srv: Server) -> dict:
    r = requests.get(srv.url("/info"), headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


@async_test(timeout=30)
async def test_info_reports_node_and_counts(ops):
    first = await asyncio.to_thread(info, ops)
    assert isinstance(first["nodeId"], str) and first["nodeId"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", first["version"]), first
    assert isinstance(first["uptimeSeconds"], int) and first["uptimeSeconds"] >= 0
    assert first["threads"] == 2
    assert first["broker"]["kind"] == "memory" and first["broker"]["healthy"] is True, first
    assert first["configFile"] is None, first
    chs = [chan(), chan(), chan()]
    tok = make_token(authorizedChannels=chs)
    a, b = await Client.connect(ops, tok), await Client.connect(ops, tok)
    for ch in chs:
        await a.subscribe(ch)
    await b.subscribe(chs[0])
    deadline = time.monotonic() + 5
    while True:
        now = await asyncio.to_thread(info, ops)
        got = (now["connections"] - first["connections"], now["subscriptions"] - first["subscriptions"],
               now["channels"] - first["channels"])
        if got == (2, 4, 3) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert got == (2, 4, 3), f"(connections, subscriptions, channels) grew by {got}, expected (2, 4, 3)"
    assert now["nodeId"] == first["nodeId"] and now["uptimeSeconds"] >= first["uptimeSeconds"]
    await a.close()
    await b.close()


# ---------------------------------------------------------------------------------------------------------------
# Origin allow-list (set through the environment here; test_limits.py covers the flag)


def test_foreign_origin_refused_with_403(origins):
    raw = RawWS(origins.port, handshake=False)
    assert raw.handshake("Origin: https://evil.example\r\n", expect=None) == 403
    check_error(json.loads(raw.body)["error"], "PermissionDenied")
    raw.close()


@async_test()
async def test_listed_origin_and_no_origin_accepted(origins):
    for origin in ("https://good.example", "https://also.example"):
        c = await Client.connect(origins, make_token(), origin=origin)
        await c.alive()
        await c.close()
    raw = RawWS(origins.port)  # no Origin header: not a browser, nothing to check
    assert "result" in raw.request("heartbeat")
    raw.close()
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
        await Client.connect(origins, origin="https://evil.example")
    assert e.value.status_code == 403


@async_test()
async def test_any_origin_accepted_by_default(ops):
    c = await Client.connect(ops, make_token(), origin="https://anything.example")
    await c.alive()
    await c.close()


# ---------------------------------------------------------------------------------------------------------------
# Config file, precedence, --print-config


def print_config(args, env=None) -> tuple[dict, dict, str]:
    """Runs --print-config; returns (parsed TOML, {key: source comment}, raw stdout)."""
    p = run_binary([*args, "--print-config"], env)
    assert p.returncode == 0, f"--print-config exited {p.returncode}: {p.stderr}"
    assert "listening on" not in p.stdout
    sources = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^(\w+) = .*#\s*(\w+)\s*$", line)
        if m:
            sources[m.group(1)] = m.group(2)
    return tomllib.loads(p.stdout), sources, p.stdout + p.stderr


def test_shipped_config_file_loads_and_shows_every_setting(tmp_path):
    shipped = (ROOT / "packaging" / "broadcaster.toml").read_text()
    cfg, src, _ = print_config(["--config", str(ROOT / "packaging" / "broadcaster.toml")],
                               {"JWT_SECRET": SECRET, "API_KEYS": API_KEY})
    # Every setting appears, set or commented out, except the secrets it tells to keep in broadcaster.env and
    # --dev, which is not for a deployed node.
    shown = set(re.findall(r"^#? ?(\w+) = ", shipped, re.M))
    assert set(cfg) - shown == {"jwt_secret", "api_keys", "dev"}, set(cfg) - shown
    # The commented-out lines are valid too, once uncommented (the TLS files must exist for that).
    for name in ("tls.crt", "tls.key", "redis-ca.pem", "redis-client.pem", "redis-client.key"):
        (tmp_path / name).write_text("")
    uncommented = re.sub(r"^# ?(\w+ = )", r"\1", shipped, flags=re.M).replace("/etc/broadcaster/", f"{tmp_path}/")
    uncommented = "\n".join(l for l in uncommented.splitlines() if not l.startswith('broker = "memory"'))
    f = tmp_path / "all.toml"
    f.write_text(uncommented)
    cfg, src, _ = print_config(["--config", str(f)], {"JWT_SECRET": SECRET, "API_KEYS": API_KEY})
    assert cfg["broker"] == "redis" and src["redis_url"] == "file", cfg


def test_help_mentions_config_file():
    p = run_binary(["--help"])
    assert p.returncode == 0
    assert "--config" in p.stdout and "--print-config" in p.stdout and "CONFIG" in p.stdout


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text('port = 1111\nbase_path = "/file"\nmax_subscriptions = 5\nhost = "127.0.0.2"\n'
                 'jwt_secret = "file-secret"\napi_keys = ["fk1", "fk2"]\nlog_level = "debug"\n')
    cfg, src, _ = print_config(["--config", str(f), "--port", "3333"],
                               {"PORT": "2222", "BASE_PATH": "/env", "LOG_LEVEL": "warn"})
    assert (cfg["port"], src["port"]) == (3333, "flag")
    assert (cfg["base_path"], src["base_path"]) == ("/env", "env")
    assert (cfg["log_level"], src["log_level"]) == ("warn", "env")
    assert (cfg["max_subscriptions"], src["max_subscriptions"]) == (5, "file")
    assert (cfg["host"], src["host"]) == ("127.0.0.2", "file")
    assert (cfg["threads"], src["threads"]) == (0, "default")
    assert (cfg["handover_delay"], src["handover_delay"]) == (2, "default")
    assert (cfg["idle_timeout"], src["idle_timeout"]) == (60, "default")
    # CONFIG names the file too; a flag and the environment still win over it
    cfg, src, _ = print_config([], {"CONFIG": str(f), "MAX_SUBSCRIPTIONS": "7"})
    assert (cfg["port"], cfg["base_path"], cfg["max_subscriptions"]) == (1111, "/file", 7)
    assert src["max_subscriptions"] == "env"


def test_print_config_is_complete(tmp_path):
    cfg, src, _ = print_config([], {"JWT_SECRET": SECRET, "API_KEYS": API_KEY})
    helptext = run_binary(["--help"]).stdout
    flags = set(re.findall(r"^\s+(--[a-z][a-z-]+)", helptext, re.M)) - {"--help", "--version", "--config", "--print-config"}
    keys = {fl[2:].replace("-", "_") for fl in flags}
    assert keys == set(cfg), f"--print-config and --help disagree: {keys ^ set(cfg)}"
    assert set(src) == set(cfg)


def test_file_value_types(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('jwt_secret = "s"\napi_keys = "a, b ,c"\nallowed_origins = ["https://x.example"]\n'
                 'shutdown_timeout = 2.5\nauth_timeout = 3\ndev = false\nconsole = true\n'
                 'redis_url = ["redis://r1:6379", "redis://r2:6379"]\nbroker = "redis"\n')
    cfg, _, _ = print_config(["--config", str(f)])
    assert cfg["api_keys"] == [MASK] * 3
    assert cfg["allowed_origins"] == ["https://x.example"]
    assert cfg["shutdown_timeout"] == 2.5 and cfg["auth_timeout"] == 3
    assert cfg["console"] is True and cfg["dev"] is False
    assert cfg["redis_url"] == "redis://r1:6379,redis://r2:6379" and cfg["broker"] == "redis"


@async_test(timeout=40)
async def test_precedence_observed_in_behaviour(tmp_path):
    port = free_port()
    f = tmp_path / "node.toml"
    f.write_text(f'port = {port}\nhost = "127.0.0.1"\nbase_path = "/from-file"\njwt_secret = "file-secret-123"\n'
                 f'api_keys = ["file-key-1", "file-key-2"]\nthreads = 1\n')

    def pub(srv, base, key):
        return requests.post(srv.url("/publish", base=base), json={"channel": "a", "event": "e", "payload": 1},
                             headers={"Authorization": f"Bearer {key}"}, timeout=5)

    # the file alone
    srv = Server("--config", str(f), fixed_args=False, secrets=False)
    try:
        srv.wait_listening(base="/from-file")
        assert srv.port == port
        assert pub(srv, "/from-file", "file-key-2").status_code == 200
        r = requests.get(srv.url("/info", base="/from-file"), headers={"Authorization": "Bearer file-key-1"},
                         timeout=5)
        assert r.json()["configFile"] == str(f), "an operator can see which file a running node loaded"
        assert f"config {f})" in srv.output()
        c = await Client.connect(srv, make_token(secret="file-secret-123"), base="/from-file")
        await c.close()
    finally:
        srv.stop()
    # the environment over the file
    srv = Server("--config", str(f), fixed_args=False, secrets=False,
                 env={"BASE_PATH": "/from-env", "API_KEYS": "env-key", "PORT": "0"})
    try:
        srv.wait_listening(base="/from-env")
        assert srv.port != port
        assert requests.get(srv.url("/health", base="/from-file"), timeout=5).status_code == 404
        assert pub(srv, "/from-env", "env-key").status_code == 200
        check_rest_error(pub(srv, "/from-env", "file-key-1"), 401, "Unauthenticated")
        c = await Client.connect(srv, make_token(secret="file-secret-123"), base="/from-env")  # still the file's
        await c.close()
    finally:
        srv.stop()
    # a flag over both, with the file named by CONFIG
    srv = Server("--base-path", "/from-flag", "--port", "0", fixed_args=False, secrets=False,
                 env={"CONFIG": str(f), "BASE_PATH": "/from-env"})
    try:
        srv.wait_listening(base="/from-flag")
        assert requests.get(srv.url("/health", base="/from-env"), timeout=5).status_code == 404
        assert pub(srv, "/from-flag", "file-key-1").status_code == 200
    finally:
        srv.stop()


@pytest.mark.parametrize("content,names", [
    ("prot = 8000\n", ["prot", "port"]),
    ("max-connections = 5\n", ["max-connections", "max_connections"]),
    ("[server]\nport = 8000\n", ["server"]),
    ("jwt_secret = \"s\"\ncompletely_unknown = true\n", ["completely_unknown"]),
    ("port = \"eighty\"\n", ["port"]),
    ("port = 70000\n", ["port"]),
    ("port = [1, 2]\n", ["port"]),
    ("log_level = \"loud\"\n", ["log_level"]),
    ("api_keys = [1, 2]\n", ["api_keys"]),
    ("port = \n", ["line 1"]),
])
def test_bad_config_file_exits_2_naming_the_key(tmp_path, content, names):
    f = tmp_path / "bad.toml"
    f.write_text(content)
    # even a flag for the same setting does not excuse a bad file
    p = run_binary(["--config", str(f), "--port", "0", "--host", "127.0.0.1"],
                   {"JWT_SECRET": SECRET, "API_KEYS": API_KEY})
    assert p.returncode == 2, f"exit {p.returncode}: {p.stderr}"
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, lines
    for name in names:
        assert name in lines[0], f"{name!r} not named in {lines[0]!r}"
    assert str(f) in lines[0]
    assert "listening on" not in p.stdout


def test_missing_config_file_exits_2(tmp_path):
    p = run_binary(["--config", str(tmp_path / "nope.toml")], {"JWT_SECRET": SECRET, "API_KEYS": API_KEY})
    assert p.returncode == 2 and "nope.toml" in p.stderr, p


def test_print_config_masks_secrets(tmp_path):
    file_secret, env_key, flag_pw, file_pw = (f"{w}-{uuid.uuid4().hex}" for w in ("fsecret", "ekey", "fpw", "pw"))
    f = tmp_path / "s.toml"
    f.write_text(f'jwt_secret = "{file_secret}"\nbroker = "redis"\n'
                 f'redis_url = "redis://:{file_pw}@10.0.0.1:6379/2,redis://{file_pw}@10.0.0.2"\n')
    cfg, _, out = print_config(["--config", str(f)], {"API_KEYS": f"{env_key},second-{env_key}"})
    for s in (file_secret, env_key, file_pw):
        assert s not in out, f"{s} printed by --print-config"
    assert cfg["jwt_secret"] == MASK and cfg["api_keys"] == [MASK, MASK]
    assert cfg["redis_url"] == f"redis://:{MASK}@10.0.0.1:6379/2,redis://{MASK}@10.0.0.2"
    # the flag's value, with a user name, masked the same way
    cfg, _, out = print_config(["--config", str(f), "--redis-url", f"redis://admin:{flag_pw}@r:6379",
                                "--jwt-secret", flag_pw], {"API_KEYS": env_key})
    assert flag_pw not in out and file_pw not in out
    assert cfg["redis_url"] == f"redis://admin:{MASK}@r:6379" and cfg["jwt_secret"] == MASK
    # unset secrets print as empty, not as a mask
    cfg, _, _ = print_config(["--dev"])
    assert cfg["jwt_secret"] == "" and cfg["api_keys"] == []


# ---------------------------------------------------------------------------------------------------------------
# Logs


def all_lines(srv: Server) -> list[str]:
    with srv.cond:
        return [l for l in srv.out + srv.err if l is not None]


def wait_for_line(srv: Server, pattern: str, timeout: float = 5.0) -> str:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in all_lines(srv):
            if rx.search(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}:\n{srv.output()}")


async def exercise_secrets(srv: Server, wrong: list[str]) -> list[str]:
    """Successful and failed auth and REST calls; returns every token used."""
    ch = chan()
    good = make_token(authorizedChannels=[ch])
    forged = make_token(secret="forged-" + uuid.uuid4().hex, authorizedChannels=[ch])
    expired = make_token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    garbage = "garbage-token-" + uuid.uuid4().hex
    c = await Client.connect(srv, good)
    await c.subscribe(ch)
    await c.publish(ch, {"hello": 1})
    await c.next_broadcast()
    for bad in (forged, expired, garbage):
        other = await Client.connect(srv)
        await other.err("auth", {"token": bad})
        await other.close()
    raw = RawWS(srv.port, path=f"{BASE}/websocket?token={good}")  # a token in the URL must not be logged either
    raw.close()
    await asyncio.to_thread(rest_ok, srv, ch, "e", 1)
    for key in wrong + [good]:
        check_rest_error(await asyncio.to_thread(rest_publish, srv, ch, key=key), 401, "Unauthenticated")
        r = await asyncio.to_thread(requests.get, srv.url("/info"), headers={"Authorization": f"Bearer {key}"},
                                    timeout=5)
        assert r.status_code == 401
    r = await asyncio.to_thread(requests.get, srv.url("/info"), headers={"Authorization": f"Bearer {API_KEY}"},
                                timeout=5)
    assert r.status_code == 200
    await c.close()
    return [good, forged, expired, garbage, good.rsplit(".", 1)[1]]


def assert_no_secret(lines: list[str], secrets: list[str]):
    for s in secrets:
        hits = [l for l in lines if s in l]
        assert not hits, f"secret {s[:12]}… appears in the log: {hits[:3]}"


@pytest.mark.parametrize("fmt", ["text", "json"])
@async_test(timeout=40)
async def test_secrets_never_logged(fmt):
    wrong = ["wrong-key-" + uuid.uuid4().hex]
    srv = start_server("--log-level", "trace", "--log-format", fmt, "--threads", "2")
    try:
        tokens = await exercise_secrets(srv, wrong)
        wait_for_line(srv, r"connection closed")  # trace really is on: lifecycle events are logged
    finally:
        srv.stop()
    assert_no_secret(all_lines(srv), [SECRET, API_KEY, API_KEY_2, *wrong, *tokens])


@async_test(timeout=40)
async def test_secrets_from_config_file_never_logged(tmp_path):
    secret, key = "cfg-secret-" + uuid.uuid4().hex, "cfg-key-" + uuid.uuid4().hex
    f = tmp_path / "s.toml"
    f.write_text(f'jwt_secret = "{secret}"\napi_keys = ["{key}"]\nlog_level = "trace"\nthreads = 1\n')
    srv = start_server("--config", str(f), secrets=False)
    try:
        c = await Client.connect(srv, make_token(secret=secret))
        await c.close()
        r = await asyncio.to_thread(rest_publish, srv, chan(), key=key)
        assert r.status_code == 200, r.text
        wait_for_line(srv, r"connection closed")
    finally:
        srv.stop()
    assert_no_secret(all_lines(srv), [secret, key])


def redis_server(password: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_redis_password_never_logged():
    password, wrong = "redispw-" + uuid.uuid4().hex, "wrongpw-" + uuid.uuid4().hex
    redis, port = redis_server(password)
    try:
        srv = start_server("--broker", "redis", "--redis-url", f"redis://:{password}@127.0.0.1:{port}",
                           "--log-level", "trace", "--threads", "1")
        try:
            rest_ok(srv, chan(), "e", 1)
            assert requests.get(srv.url("/info"), headers={"Authorization": f"Bearer {API_KEY}"},
                                timeout=5).status_code == 200
        finally:
            srv.stop()
        bad = Server("--broker", "redis", "--redis-url", f"redis://:{wrong}@127.0.0.1:{port}", "--log-level", "trace",
                     "--threads", "1")
        try:
            wait_for_line(bad, LISTEN_RE.pattern)
            time.sleep(1)  # let it try AUTH and log the refusal
        finally:
            bad.stop()
    finally:
        redis.terminate()
        redis.wait(5)
    assert_no_secret(all_lines(srv) + all_lines(bad), [password, wrong, SECRET, API_KEY])


LEVELS = {"trace", "debug", "info", "warning", "warn", "error", "critical"}


@pytest.mark.parametrize("level", ["trace", "warn"])
@async_test(timeout=30)
async def test_json_log_lines_parse(level):
    srv = start_server("--log-level", level, "--log-format", "json", "--threads", "2")
    try:
        c = await Client.connect(srv, make_token())
        await c.send('{"id":1,"method":"auth","params":{"token":"a\\"quote\\nand newline"}}')
        await c.recv()
        await c.close()
        raw = RawWS(srv.port)
        raw.send_frame(OP_TEXT, b"{}", mask=False)  # protocol error: logged at debug or warn
        raw.wait_close()
        raw.close()
        if level == "trace":
            wait_for_line(srv, r"connection closed")
    finally:
        srv.stop()
    lines = [l for l in all_lines(srv) if l.strip()]
    assert lines, "nothing logged"
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"--log-format json printed a line that is not JSON: {line!r}") from None
        assert isinstance(obj, dict) and {"time", "level", "msg"} <= set(obj), line
        assert TIMESTAMP_RE.match(obj["time"]), line
        assert obj["level"] in LEVELS, line
        assert isinstance(obj["msg"], str) and obj["msg"], line


def test_text_log_lines_have_time_and_level():
    srv = start_server("--log-level", "debug", "--threads", "1")
    try:
        RawWS(srv.port).close()
        wait_for_line(srv, r"connection closed")
    finally:
        srv.stop()
    for line in (l for l in srv.out if l):
        ts, level, msg = line.split(" ", 2)
        assert TIMESTAMP_RE.match(ts) and level in LEVELS and msg, line


# ---------------------------------------------------------------------------------------------------------------
# The shipped load-balancer configuration: packaging/nginx.conf in front of two nodes sharing Redis


def start_nginx(tmp_path, nodes: list[int]) -> tuple[subprocess.Popen, int]:
    conf = (ROOT / "packaging" / "nginx.conf").read_text()
    port = free_port()
    for old, new in (("server node1:8000", f"server 127.0.0.1:{nodes[0]}"),
                     ("server node2:8000", f"server 127.0.0.1:{nodes[1]}"),
                     ("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("worker_processes auto;", "worker_processes 2;")):
        assert conf.count(old) == 1, f"packaging/nginx.conf no longer contains {old!r}"
        conf = conf.replace(old, new)
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-g", f"daemon off; pid {tmp_path}/nginx.pid;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited: {proc.stderr.read().decode()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except requests.RequestException:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("nginx did not come up")


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("redis-server") is None,
                    reason="needs nginx and redis-server")
@async_test(timeout=60)
async def test_nginx_conf_balances_websockets_over_two_nodes(tmp_path):
    redis, rport = redis_server("lb-" + uuid.uuid4().hex)
    password = redis.args[redis.args.index("--requirepass") + 1]
    nodes, nginx = [], None
    try:
        for _ in range(2):
            nodes.append(start_server("--threads", "1", "--broker", "redis",
                                      "--redis-url", f"redis://:{password}@127.0.0.1:{rport}"))
        nginx, lb = await asyncio.to_thread(start_nginx, tmp_path, [n.port for n in nodes])
        ch = chan()
        tok = make_token(authorizedChannels=[ch])
        clients = []
        for _ in range(4):
            conn = await websockets.connect(f"ws://127.0.0.1:{lb}{BASE}/websocket", open_timeout=5,
                                            ping_interval=None, compression=None, origin="https://app.example")
            c = Client(conn)
            await c.auth(tok)
            await c.subscribe(ch)
            clients.append(c)
        per_node = [(await asyncio.to_thread(info, n))["connections"] for n in nodes]
        assert per_node == [2, 2], f"least_conn should spread 4 WebSockets evenly, got {per_node}"
        # a REST publish through nginx reaches the subscribers of both nodes (through Redis)
        r = await asyncio.to_thread(requests.post, f"http://127.0.0.1:{lb}{BASE}/publish",
                                    json={"channel": ch, "event": "e", "payload": {"via": "lb"}},
                                    headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
        assert r.status_code == 200, r.text
        for c in clients:
            b = await c.next_broadcast()
            assert b["id"] == r.json()["id"] and b["payload"] == {"via": "lb"}
        # and so does a WebSocket publish from one of them
        res = await clients[0].publish(ch, "ws")
        for c in clients:
            assert (await c.next_broadcast())["id"] == res["id"]
        for path in ("/metrics", "/info"):
            r = await asyncio.to_thread(requests.get, f"http://127.0.0.1:{lb}{BASE}{path}",
                                        headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
            assert r.status_code == 403, f"{path} must not be reachable through the load balancer"
        for c in clients:
            await c.close()
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait(5)
        for n in nodes:
            n.stop()
        redis.terminate()
        redis.wait(5)
