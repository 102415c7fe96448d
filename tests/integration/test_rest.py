"""REST API: POST {BASE}/publish, API keys, errors and statuses, CORS, health, non-API paths."""

import asyncio
import json
import socket
import threading

import pytest
import requests

from conftest import (API_KEY, API_KEY_2, BASE, Client, RawWS, assert_recent, async_test, chan, check_rest_error,
                      http_raw, make_token, rest_publish, same_json)


@async_test()
async def test_rest_publish_delivers_with_same_id_and_time(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    r = await asyncio.to_thread(rest_publish, server, ch, "order.created", {"total": 12.5, "items": ["a"]})
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    res = r.json()
    assert set(res) == {"id", "createTime"}, res
    assert_recent(res["createTime"])
    b = await c.next_broadcast()
    assert isinstance(b.pop("epoch"), str), b
    assert b == {"id": res["id"], "seq": 1, "createTime": res["createTime"], "channel": ch, "offset": 1,
                 "event": "order.created", "payload": {"total": 12.5, "items": ["a"]}}
    await c.quiet()
    await c.close()


@pytest.mark.parametrize("payload", [None, True, False, 0, -1.25, "s\u00e9\n\"", [], {}, [1, [2, [3]]],
                                     {"a": {"b": None}}], ids=repr)
@async_test()
async def test_rest_payload_types(server, payload):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    r = await asyncio.to_thread(rest_publish, server, ch, "e", payload)
    assert r.status_code == 200, r.text
    b = await c.next_broadcast()
    assert same_json(b["payload"], payload), (payload, b["payload"])
    await c.close()


def test_rest_both_api_keys_work(server):
    for key in (API_KEY, API_KEY_2):
        r = rest_publish(server, "any:valid-channel", key=key)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Bearer "},
                                     {"Authorization": f"Basic {API_KEY}"}, {"Authorization": API_KEY},
                                     {"Authorization": f"Bearer {API_KEY}x"}, {"Authorization": f"Bearer {API_KEY[:-1]}"},
                                     {"Authorization": f"Bearer {API_KEY},{API_KEY_2}"}],
                         ids=["none", "wrong", "empty", "basic", "no_scheme", "longer", "prefix", "both_joined"])
def test_rest_bad_api_key_401(server, headers):
    r = rest_publish(server, "news", key=None, headers=headers)
    check_rest_error(r, 401, "Unauthenticated")


@async_test()
async def test_rest_unauthenticated_publish_not_delivered(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    r = await asyncio.to_thread(rest_publish, server, ch, key="wrong")
    assert r.status_code == 401
    await c.quiet()
    await c.close()


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1,2]", b"\"str\"", b"null", b"42",
                                  b'{"event":"e","payload":1}', b'{"channel":"news","payload":1}',
                                  b'{"channel":7,"event":"e","payload":1}', b'{"channel":"news","event":7,"payload":1}',
                                  b'{"channel":"a::b","event":"e","payload":1}', b'{"channel":"news","event":"","payload":1}',
                                  b'{"channel":"news","event":"e","payload":1', b"\xff\xfe{}"],
                         ids=["malformed", "empty", "array", "string", "null", "number", "no_channel", "no_event",
                              "channel_number", "event_number", "bad_channel", "empty_event", "truncated",
                              "invalid_utf8"])
def test_rest_invalid_body_400(server, body):
    with requests.Session() as s:
        r = s.post(server.url("/publish"), data=body, timeout=5,
                   headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        check_rest_error(r, 400, "InvalidArgument")
        # the server (and, if it kept it open, the same HTTP connection) still works
        r = s.post(server.url("/publish"), json={"channel": "news", "event": "e", "payload": 1}, timeout=5,
                   headers={"Authorization": f"Bearer {API_KEY}"})
        assert r.status_code == 200


@async_test()
async def test_rest_unknown_body_fields_ignored(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    r = await asyncio.to_thread(rest_publish, server, None,
                                body=json.dumps({"channel": ch, "event": "e", "payload": 5, "ttl": 3, "meta": {}}))
    assert r.status_code == 200, r.text
    b = await c.next_broadcast()
    assert b["payload"] == 5 and set(b) == {"id", "seq", "createTime", "channel", "offset", "epoch", "event", "payload"}
    await c.close()


def test_rest_body_too_large_413(server):
    body = json.dumps({"channel": "news", "event": "e", "payload": "x" * 70000})
    r = rest_publish(server, None, body=body)
    check_rest_error(r, 413, None)
    # and the server is still fine afterwards
    assert rest_publish(server, "news").status_code == 200


def test_rest_body_limit_boundary(server):
    # default max-message-size 65536: a body of exactly that size is accepted, one byte more is not
    def body_of(n):
        base = json.dumps({"channel": "news", "event": "e", "payload": ""})
        return json.dumps({"channel": "news", "event": "e", "payload": "x" * (n - len(base))})

    assert len(body_of(65536)) == 65536
    r = rest_publish(server, None, body=body_of(65536))
    assert r.status_code == 200, r.text[:200]
    assert rest_publish(server, None, body=body_of(65537)).status_code == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_rest_wrong_method_405(server, method):
    r = requests.request(method, server.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                         data=json.dumps({"channel": "news", "event": "e", "payload": 1}), timeout=5)
    check_rest_error(r, 405, None)


@pytest.mark.parametrize("path", [f"{BASE}/nope", f"{BASE}/publish/extra", "/publish", "/health", "/",
                                  "/broadcasterx/health", f"{BASE}/websocketx"])  # {BASE}/: test_index.py
def test_unknown_path_404(server, path):
    r = requests.get(f"http://127.0.0.1:{server.port}{path}", timeout=5)
    check_rest_error(r, 404, "NotFound")


def test_unknown_path_post_404(server):
    r = requests.post(f"http://127.0.0.1:{server.port}{BASE}/publishx", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"channel": "news", "event": "e", "payload": 1}, timeout=5)
    check_rest_error(r, 404, "NotFound")


def test_plain_get_on_websocket_path_426(server):
    r = requests.get(server.ws_url().replace("ws://", "http://"), timeout=5)
    assert r.status_code == 426, r.status_code
    body = r.json()
    assert isinstance(body.get("error"), dict) and isinstance(body["error"].get("code"), str), body


def test_cors_preflight(server):
    r = requests.options(server.url("/publish"), headers={"Origin": "https://example.com",
                                                          "Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "authorization,content-type"},
                         timeout=5)
    assert r.status_code in (200, 204), r.status_code
    h = r.headers
    assert h.get("Access-Control-Allow-Origin") in ("*", "https://example.com"), dict(h)
    allow_headers = {x.strip().lower() for x in h.get("Access-Control-Allow-Headers", "").split(",")}
    assert {"authorization", "content-type"} <= allow_headers, dict(h)
    allow_methods = {x.strip().upper() for x in h.get("Access-Control-Allow-Methods", "").split(",")}
    assert {"POST", "OPTIONS"} <= allow_methods, dict(h)


def test_cors_preflight_needs_no_api_key_and_publishes_nothing(server):
    # a browser's preflight carries no Authorization header: it must not be answered with 401
    r = requests.options(server.url("/publish"), timeout=5)
    assert r.status_code in (200, 204)


def test_health(server):
    r = requests.get(server.url("/health"), timeout=5)
    assert r.status_code == 200 and r.text.strip() == "ok"


def test_keep_alive_many_requests_one_connection(server):
    with requests.Session() as s:
        for i in range(20):
            r = s.post(server.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                       json={"channel": "news", "event": "e", "payload": i}, timeout=5)
            assert r.status_code == 200
        r = s.post(server.url("/publish"), headers={"Authorization": "Bearer bad"}, json={}, timeout=5)
        assert r.status_code == 401
        assert s.get(server.url("/health"), timeout=5).status_code == 200


def test_chunked_request_body(server):
    body = json.dumps({"channel": "news", "event": "e", "payload": "chunked"}).encode()
    req = (f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
           f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    req += f"{len(body[:10]):x}\r\n".encode() + body[:10] + b"\r\n"
    req += f"{len(body[10:]):x}\r\n".encode() + body[10:] + b"\r\n0\r\n\r\n"
    status, _, resp = http_raw(server.port, req)
    assert status == 200, resp


def test_malformed_http_gets_400_and_server_survives(server):
    try:
        status, _, _ = http_raw(server.port, b"THIS IS NOT HTTP\r\n\r\n")
    except (AssertionError, ConnectionError):  # closed without a response: acceptable too
        status = None
    assert status in (None, 400), status
    assert requests.get(server.url("/health"), timeout=5).status_code == 200


def test_query_string_does_not_change_the_route(server):
    assert requests.get(server.url("/health") + "?probe=1", timeout=5).status_code == 200
    r = requests.post(server.url("/publish") + "?x=1", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"channel": "news", "event": "e", "payload": 1}, timeout=5)
    assert r.status_code == 200
    raw = RawWS(server.port, path=f"{BASE}/websocket?client=test&v=1")
    assert "result" in raw.request("heartbeat")
    raw.close()


def test_head_health_has_no_body(server):
    """HEAD must not carry a body; otherwise the next response on a kept-alive connection is corrupted."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(f"HEAD {BASE}/health HTTP/1.1\r\nHost: x\r\n\r\n"
                  f"GET {BASE}/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    status = int(first.split()[1])
    assert status in (200, 405), first  # answering or refusing HEAD are both fine; a body is not
    assert rest.startswith(b"HTTP/1.1 200"), f"bytes after the HEAD response's header: {rest[:60]!r}"


def test_expect_100_continue_is_answered(server):
    """curl sends `Expect: 100-continue` for larger bodies; RFC 9110 requires an immediate 100 or a final status,
    otherwise every such publish stalls for the client's expect timeout (1 s in curl)."""
    body = json.dumps({"channel": "news", "event": "e", "payload": "x" * 2000}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                  f"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode())
        s.settimeout(1.0)
        try:
            first = s.recv(4096)
        except socket.timeout:
            raise AssertionError("no 100 Continue (nor a final status) within 1 s of an Expect: 100-continue head") \
                from None
        assert first.startswith(b"HTTP/1.1 100"), first[:80]
        s.settimeout(5)
        s.sendall(body)
        rest = first.partition(b"\r\n\r\n")[2]
        while b"\r\n\r\n" not in rest:
            rest += s.recv(4096)
        assert rest.startswith(b"HTTP/1.1 200"), rest[:80]


def test_pipelined_requests_answered_in_order(server):
    body = json.dumps({"channel": "news", "event": "e", "payload": 1}).encode()
    publish = (f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    health = f"GET {BASE}/health HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    last = f"GET {BASE}/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(health + publish + health + last)
        statuses = []
        buf = b""
        for _ in range(4):
            status, _, buf = _read_one(s, buf)
            statuses.append(status)
    assert statuses == [200, 200, 200, 404], statuses


def test_long_pipeline_is_answered_without_exhausting_the_stack(server):
    """20000 publishes written in one go: each is answered in order, and the server (whose request loop once
    recursed once per request answered without waiting, until its stack overflowed) stays up for the others."""
    n = 20000
    body = json.dumps({"channel": "pipe", "event": "e", "payload": 1}).encode()
    publish = (f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        # The writer runs beside the reader: 20000 requests need more than the socket buffers hold.
        writer = threading.Thread(target=s.sendall, args=(publish * n,))
        writer.start()
        buf = b""
        statuses = []
        for _ in range(n):
            status, _, buf = _read_one(s, buf)
            statuses.append(status)
        writer.join()
    assert statuses == [200] * n, [x for x in statuses if x != 200][:5]
    assert server.proc.poll() is None
    status, _, _ = http_raw(server.port, f"GET {BASE}/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status == 200


def _read_one(s, buf):
    """One HTTP response from socket s with leftover bytes buf; returns (status, headers, leftover)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed early"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        assert chunk, "connection closed early"
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[n:]
