"""The Python client package (clients/python, `broadcaster_client`) against the real server: publish reaches a
WebSocket subscriber, history, presence, the server API, info and health, errors typed with the server's status
and body; mint_token gives the claims `broadcaster token` gives and a server with the same secret accepts them.
The 503 retry policy runs against a small local fake (http.server) that scripts its answers, with the client's
waits recorded instead of slept.

No sleeps: a subscriber is in place once its subscribe is answered, and a close or a notification is awaited."""

import asyncio
import base64
import email.utils
import http.server
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import pytest

from conftest import (API_KEY, BINARY, ROOT, SECRET, Client, Server, async_test, chan, clean_env, make_token,
                      start_server)

sys.path.insert(0, str(ROOT / "clients" / "python"))

import broadcaster_client as bc  # noqa: E402

RULES = """
[[channels]]
pattern = "nopres*"
presence = false
"""


@pytest.fixture(scope="module")
def srv():
    """History (100 per channel) and presence on every channel, except nopres* (a [[channels]] rule)."""
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "broadcaster.toml"
        cfg.write_text(RULES)
        s = start_server("--threads", "2", "--config", str(cfg), "--presence", "--history-size", "100")
        yield s
        crashed = not s.alive()
        s.stop()
        if crashed:
            pytest.fail(f"server died during the module:\n{s.output()}")


def client(s, key=API_KEY, **kw) -> bc.Client:
    return bc.Client(s.url(""), key, timeout=5, **kw)


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# ---- publish, history -----------------------------------------------------------------------------------------


@async_test(timeout=30)
async def test_publish_reaches_a_websocket_subscriber(srv):
    ch = chan("news:")
    sub = await Client.connect(srv, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    payload = {"text": "hi", "n": [1, 2.5, None, True], "ü": "é"}
    res = await asyncio.to_thread(client(srv).publish, ch, payload, "hello")
    assert set(res) == {"id", "createTime"}, res
    got = await sub.next_broadcast()
    assert got["id"] == res["id"] and got["createTime"] == res["createTime"], (got, res)
    assert got["channel"] == ch and got["event"] == "hello" and got["payload"] == payload, got
    # The default event name, and a payload that is not an object.
    await asyncio.to_thread(client(srv).publish, ch, "just a string")
    got = await sub.next_broadcast()
    assert got["event"] == "message" and got["payload"] == "just a string", got
    await sub.quiet()
    await sub.close()


def test_history_returns_what_was_published_with_offsets(srv):
    c = client(srv)
    ch = chan("hist:")
    empty = c.history(ch)
    assert empty["publications"] == [] and empty["offset"] == 0 and empty["epoch"], empty
    sent = [c.publish(ch, {"n": i}, "ev") for i in range(1, 4)]
    h = c.history(ch)
    pubs = h["publications"]
    assert [p["id"] for p in pubs] == [s["id"] for s in sent], (pubs, sent)
    assert [p["offset"] for p in pubs] == [1, 2, 3] and [p["payload"] for p in pubs] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert h["offset"] == 3 and all(p["epoch"] == h["epoch"] for p in pubs), h
    assert [p["offset"] for p in c.history(ch, limit=2)["publications"]] == [2, 3]
    assert c.history(ch, limit=0)["publications"] == []
    assert [p["offset"] for p in c.history(ch, since=(h["epoch"], 1))["publications"]] == [2, 3]
    assert [p["offset"] for p in c.history(ch, since={"epoch": h["epoch"], "offset": 2})["publications"]] == [3]
    assert c.history(ch, since={"epoch": "another", "offset": 1})["publications"] == []


def test_bad_input_is_a_bad_request_with_the_servers_error_body(srv):
    c = client(srv)
    for call in (lambda: c.publish("bad channel!", 1), lambda: c.history("bad channel!"),
                 lambda: c.publish(chan(), 1, event=""), lambda: c.unsubscribe("alice", "bad channel!"),
                 lambda: c.disconnect("")):
        with pytest.raises(bc.BadRequestError) as e:
            call()
        assert e.value.status == 400 and e.value.code == "InvalidArgument", e.value.body
        assert isinstance(e.value.message, str) and e.value.message
        assert e.value.body == {"error": {"code": e.value.code, "message": e.value.message}}


def test_a_body_over_the_size_limit_is_payload_too_large(srv):
    with pytest.raises(bc.PayloadTooLargeError) as e:
        client(srv).publish(chan(), "x" * 70000)  # over the default --max-message-size, 65536
    assert e.value.status == 413 and e.value.code == "ResourceExhausted", e.value.body


# ---- presence ---------------------------------------------------------------------------------------------------


@async_test(timeout=30)
async def test_presence_and_presence_stats(srv):
    ch = chan("pres:")
    c = client(srv)
    assert await asyncio.to_thread(c.presence, ch) == {"clients": {}}
    alice1 = await Client.connect(srv, bc.mint_token(SECRET, "alice", [ch], info={"name": "Alice"}))
    alice2 = await Client.connect(srv, bc.mint_token(SECRET, "alice", [ch], info={"name": "Alice"}))
    bob = await Client.connect(srv, bc.mint_token(SECRET, "bob", [ch]))
    for m in (alice1, alice2, bob):
        await m.subscribe(ch)
    clients = (await asyncio.to_thread(c.presence, ch))["clients"]
    assert sorted(v["user"] for v in clients.values()) == ["alice", "alice", "bob"], clients
    assert all(v.get("info") == {"name": "Alice"} for v in clients.values() if v["user"] == "alice"), clients
    assert all("info" not in v for v in clients.values() if v["user"] == "bob"), clients
    assert await asyncio.to_thread(c.presence_stats, ch) == {"numClients": 3, "numUsers": 2}
    await bob.ok("unsubscribe", {"channel": ch})
    assert await asyncio.to_thread(c.presence_stats, ch) == {"numClients": 2, "numUsers": 1}
    for m in (alice1, alice2, bob):
        await m.close()


def test_presence_where_it_is_off_is_failed_precondition(srv):
    c = client(srv)
    for call in (c.presence, c.presence_stats):
        with pytest.raises(bc.BadRequestError) as e:
            call(chan("nopres"))
        assert e.value.status == 400 and e.value.code == "FailedPrecondition", e.value.body


# ---- server API -------------------------------------------------------------------------------------------------


@async_test(timeout=30)
async def test_disconnect_closes_the_users_connections_with_4003(srv):
    ch = chan("dc:")
    user = f"victim-{ch}"
    victim = await Client.connect(srv, bc.mint_token(SECRET, user, [ch]))
    await victim.subscribe(ch)
    other = await Client.connect(srv, bc.mint_token(SECRET, "bystander", [ch]))
    await other.subscribe(ch)
    assert await asyncio.to_thread(client(srv).disconnect, user) == {"success": True}
    code, reason = await victim.wait_closed()
    assert (code, reason) == (4003, "disconnected by server")
    await other.alive()
    assert await asyncio.to_thread(client(srv).disconnect, "nobody-at-all") == {"success": True}
    await other.close()


@async_test(timeout=30)
async def test_unsubscribe_ends_the_users_subscription(srv):
    ch, kept = chan("un:"), chan("un:")
    user = f"u-{ch}"
    c = await Client.connect(srv, bc.mint_token(SECRET, user, [ch, kept]))
    await c.subscribe(ch)
    await c.subscribe(kept)
    assert await asyncio.to_thread(client(srv).unsubscribe, user, ch) == {"success": True}
    assert await c.recv() == {"method": "unsubscribe", "params": {"channel": ch}}
    await asyncio.to_thread(client(srv).publish, kept, "still here")
    assert (await c.next_broadcast())["channel"] == kept
    await c.quiet()
    await c.close()


# ---- info, health, API keys ----------------------------------------------------------------------------------------


def test_info_and_health(srv):
    c = client(srv)
    info = c.info()
    assert isinstance(info["nodeId"], str) and info["broker"]["kind"] == "memory", info
    assert c.health() is True


def test_a_bad_api_key_is_an_authentication_error_401(srv):
    bad = client(srv, key="not-a-key")
    calls = [lambda: bad.publish(chan(), 1), lambda: bad.history(chan()), lambda: bad.presence(chan()),
             lambda: bad.presence_stats(chan()), lambda: bad.disconnect("alice"),
             lambda: bad.unsubscribe("alice", chan()), bad.info]
    for call in calls:
        with pytest.raises(bc.AuthenticationError) as e:
            call()
        assert e.value.status == 401 and e.value.code == "Unauthenticated", e.value.body
        assert "API key" in e.value.message
    assert bad.health() is True  # health takes no key


def test_a_wrong_base_path_is_not_found(srv):
    with pytest.raises(bc.NotFoundError) as e:
        bc.Client(srv.url("", base="/elsewhere"), API_KEY, timeout=5).info()
    assert e.value.status == 404 and e.value.code == "NotFound"


class Unhealthy(Server):
    """A server expected to stay unhealthy: started once it listens, without waiting for /health."""

    def _wait_health(self, deadline, base):
        pass


def test_the_real_servers_503_is_retried_then_raised():
    """A node whose Redis broker is unreachable answers 503 Unavailable: retried, then raised with its body."""
    with socket.socket() as nobody:  # bound, never listening: Redis connections are refused
        nobody.bind(("127.0.0.1", 0))
        s = Unhealthy("--broker", "redis", "--redis-url", f"redis://127.0.0.1:{nobody.getsockname()[1]}")
        try:
            s.wait_listening()
            waits = []
            c = client(s, retries=2, backoff=0.01, max_backoff=0.02, sleep=waits.append)
            with pytest.raises(bc.UnavailableError) as e:
                c.publish(chan(), {"a": 1})
            assert e.value.status == 503 and e.value.code == "Unavailable", e.value.body
            assert len(waits) == 2 and all(0.005 <= w <= 0.02 for w in waits), waits
            with pytest.raises(bc.UnavailableError):
                c.history(chan())
            assert c.health() is False
        finally:
            s.stop()


def test_an_unreachable_server_is_a_transport_error():
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(bc.TransportError):
            bc.Client(f"http://127.0.0.1:{port}/broadcaster", API_KEY, timeout=2, retries=5).publish("news", 1)


# ---- tokens -----------------------------------------------------------------------------------------------------------


@async_test(timeout=30)
async def test_a_minted_token_is_accepted_and_a_wrongly_signed_one_refused(srv):
    ch = chan("tok:")
    good = await Client.connect(srv, bc.mint_token(SECRET, "alice", [ch], ["subscribe", "publish"]))
    await good.subscribe(ch)
    await good.publish(ch, "mine")
    assert (await good.next_broadcast())["payload"] == "mine"
    sub_only = await Client.connect(srv, bc.mint_token(SECRET, "carol", [ch]))  # default scope: subscribe
    await sub_only.err("publish", {"channel": ch, "event": "e", "payload": 1}, code="PermissionDenied")
    bad = await Client.connect(srv)
    await bad.err("auth", {"token": bc.mint_token(SECRET + "x", "alice", [ch])}, code="Unauthenticated")
    expired = bc.mint_token(SECRET, "alice", [ch], ttl=60, now=int(time.time()) - 3600)
    await bad.err("auth", {"token": expired}, code="Unauthenticated")
    await bad.err("subscribe", {"channel": ch}, code="Unauthenticated")  # the failed auths left it unauthenticated
    for c in (good, sub_only, bad):
        await c.close()


def test_mint_token_has_the_claims_of_the_token_command():
    args = ["--sub", "alice", "--channels", "news,chat:lobby", "--scope", "subscribe,publish", "--ttl", "2h",
            "--info", '{"name":"Alice","tags":["a"]}']
    p = subprocess.run([str(BINARY), "token", *args], env=clean_env(JWT_SECRET=SECRET), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    assert p.returncode == 0, p
    theirs = p.stdout.decode().strip()
    ours = bc.mint_token(SECRET, "alice", ["news", "chat:lobby"], ["subscribe", "publish"], "2h",
                         {"name": "Alice", "tags": ["a"]}, now=claims_of(theirs)["iat"])
    assert ours.split(".")[0] == theirs.split(".")[0]  # the same header
    assert claims_of(ours) == claims_of(theirs)
    assert ours == theirs  # same claims, same order, same compact JSON: the very same token


def test_the_package_metadata():
    meta = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "broadcaster_client" and meta["version"] == bc.__version__
    assert meta["dependencies"] == [] and meta["requires-python"] == ">=3.11"


def test_mint_token_defaults_and_refusals():
    c = claims_of(bc.mint_token(SECRET, "bob", ["news"], now=1000))
    assert c == {"sub": "bob", "aud": "broadcaster", "iat": 1000, "exp": 4600, "authorizedChannels": ["news"],
                 "scope": ["subscribe"]}
    for kw in ({"sub": ""}, {"channels": None}, {"channels": []}, {"channels": "news"}, {"channels": [""]},
               {"scope": ["admin"]}, {"ttl": 0}, {"ttl": "1w"}, {"info": [1]}, {"info": {"x": "y" * 1100}}):
        args = {"sub": "bob", "channels": ["news"], **kw}
        with pytest.raises(ValueError):
            bc.mint_token(SECRET, **args)


# ---- the 503 retry policy, against a scripted fake ---------------------------------------------------------------


class Fake:
    """A local HTTP server answering from a script of (status, headers, body), one per request, and recording
    what it was asked."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                fake.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(n)))
                status, headers, body = fake.script.pop(0) if fake.script else (500, {}, b"script exhausted")
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/broadcaster"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


UNAVAILABLE = {"error": {"code": "Unavailable", "message": "broker unavailable, retry later"}}
OK = {"id": "0190-abc", "createTime": "2026-01-01T00:00:00.000Z"}


@pytest.fixture
def fake():
    made = []

    def make(*script):
        f = Fake(script)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def test_publish_retries_503_with_bounded_backoff_then_succeeds(fake):
    f = fake((503, {}, UNAVAILABLE), (503, {}, UNAVAILABLE), (200, {}, OK))
    waits = []
    c = bc.Client(f.url, "k", timeout=5, retries=3, backoff=0.1, max_backoff=0.15, sleep=waits.append)
    assert c.publish("news", {"a": 1}, "ev") == OK
    assert len(f.requests) == 3
    for method, path, headers, body in f.requests:  # the same request each time
        assert (method, path) == ("POST", "/broadcaster/publish")
        assert headers["Authorization"] == "Bearer k" and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"channel": "news", "event": "ev", "payload": {"a": 1}}
    assert len(waits) == 2 and 0.05 <= waits[0] <= 0.1 and 0.075 <= waits[1] <= 0.15, waits


def test_retry_after_is_honoured(fake):
    f = fake((503, {"Retry-After": "2"}, UNAVAILABLE), (200, {}, OK))
    waits = []
    assert bc.Client(f.url, "k", sleep=waits.append).publish("news", 1) == OK
    assert waits == [2.0] and len(f.requests) == 2


def test_retry_after_as_an_http_date(fake):
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    f = fake((503, {"Retry-After": when}, UNAVAILABLE), (200, {}, OK))
    waits = []
    assert bc.Client(f.url, "k", sleep=waits.append).publish("news", 1) == OK
    assert len(waits) == 1 and 3 <= waits[0] <= 5, waits


def test_a_retry_after_beyond_the_bound_is_not_waited_for(fake):
    f = fake((503, {"Retry-After": "3600"}, UNAVAILABLE), (200, {}, OK))
    waits = []
    with pytest.raises(bc.UnavailableError) as e:
        bc.Client(f.url, "k", max_retry_after=30, sleep=waits.append).publish("news", 1)
    assert e.value.retry_after == 3600 and e.value.status == 503 and e.value.body == UNAVAILABLE
    assert waits == [] and len(f.requests) == 1


def test_503_after_the_last_retry_raises_unavailable(fake):
    f = fake(*[(503, {}, UNAVAILABLE)] * 5)
    waits = []
    with pytest.raises(bc.UnavailableError) as e:
        bc.Client(f.url, "k", retries=2, sleep=waits.append).publish("news", 1)
    assert e.value.code == "Unavailable" and e.value.message == "broker unavailable, retry later"
    assert len(f.requests) == 3 and len(waits) == 2


@pytest.mark.parametrize("status, error", [(400, bc.BadRequestError), (401, bc.AuthenticationError),
                                           (403, bc.PermissionDeniedError), (429, bc.RateLimitedError),
                                           (500, bc.ServerError)])
def test_4xx_and_500_are_never_retried(fake, status, error):
    body = {"error": {"code": "InvalidArgument", "message": "nope"}}
    f = fake((status, {"Retry-After": "1"}, body), (200, {}, OK))
    waits = []
    with pytest.raises(error) as e:
        bc.Client(f.url, "k", sleep=waits.append).publish("news", 1)
    assert e.value.status == status and e.value.body == body and e.value.code == "InvalidArgument"
    assert len(f.requests) == 1 and waits == []


def test_a_non_json_error_body_is_kept_as_text(fake):
    f = fake((502, {}, b"<html>bad gateway</html>"))
    with pytest.raises(bc.ApiError) as e:
        bc.Client(f.url, "k", sleep=lambda s: None).info()
    assert type(e.value) is bc.ApiError and e.value.status == 502 and e.value.body == "<html>bad gateway</html>"
    assert e.value.code is None and len(f.requests) == 1


def test_health_is_false_on_503_and_not_retried(fake):
    f = fake((503, {}, b"unavailable"), (200, {}, b"ok"))
    assert bc.Client(f.url, "k", sleep=lambda s: None).health() is False
    assert len(f.requests) == 1 and "Authorization" not in f.requests[0][2]


def test_what_is_not_json_is_refused_before_sending(fake):
    f = fake()
    c = bc.Client(f.url, "k")
    with pytest.raises(ValueError):
        c.publish("news", float("nan"))
    with pytest.raises(TypeError):
        c.publish("news", {1, 2})
    assert f.requests == []


def test_query_parameters_are_encoded(fake):
    body = {"publications": [], "epoch": "e", "offset": 0}
    f = fake((200, {}, body), (200, {}, {"clients": {}}), (200, {}, {"numClients": 0, "numUsers": 0}))
    c = bc.Client(f.url, "k")
    c.history("chat:room-1", limit=5, since=("ab cd/é", 7))
    c.presence("chat:room-1")
    c.presence_stats("a:b")
    assert [r[1] for r in f.requests] == [
        "/broadcaster/history?channel=chat%3Aroom-1&limit=5&epoch=ab%20cd%2F%C3%A9&offset=7",
        "/broadcaster/presence?channel=chat%3Aroom-1", "/broadcaster/presence-stats?channel=a%3Ab"]
