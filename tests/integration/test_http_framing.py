"""HTTP/1.1 message framing (RFC 9112 §6, §3.2): no request is smuggled inside another one's body.

Every test sends one request whose body is itself a complete second request, reads everything the server sends
until it closes, and counts the responses: a refused head must get exactly one answer and a closed connection,
never a second answer to the body read as a request. Each case names the rule it checks."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from conftest import API_KEY, BASE, Client, async_test, chan, make_token, server_fixture

server = server_fixture()

SMUGGLED = f"GET {BASE}/health HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Sends `data`, reads until the server closes or goes quiet. Returns (bytes read, closed by the server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return buf, False
            except ConnectionResetError:
                return buf, True
            if not chunk:
                return buf, True
            buf += chunk
        return buf, False


def responses(raw: bytes) -> list[tuple[int, dict, bytes]]:
    """Splits a byte stream into HTTP responses (Content-Length framed, as the server always frames them)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"truncated response: {raw[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def publish_head(extra: str, body: bytes = b"") -> bytes:
    return (f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode() + body


def assert_refused_once(port: int, data: bytes, status: int):
    raw, closed = exchange(port, data)
    got = responses(raw)
    assert [r[0] for r in got] == [status], f"expected one {status}, got {[r[0] for r in got]}: {raw[:400]!r}"
    assert closed, "the connection must be closed after a framing error"
    assert got[0][1].get("connection", "").lower() == "close"
    body = json.loads(got[0][2])
    assert body["error"]["code"] == "InvalidArgument", body


# RFC 9112 §6.3: a request whose final transfer coding is not chunked has no determinable length → 400, close.
@pytest.mark.parametrize("te", ["xchunked", "chunked, identity", "gzip", "identity", "chunkedx", "chunked;x=1",
                                "\"chunked\"", ","])
def test_transfer_encoding_not_ending_in_chunked_is_refused(server, te):
    assert_refused_once(server.port, publish_head(f"Transfer-Encoding: {te}\r\n", SMUGGLED), 400)


# The same with a Content-Length that a proxy might have framed the body by.
@pytest.mark.parametrize("te", ["xchunked", "gzip", "chunked, identity"])
def test_transfer_encoding_with_content_length_is_refused(server, te):
    data = publish_head(f"Transfer-Encoding: {te}\r\nContent-Length: {len(SMUGGLED)}\r\n", SMUGGLED)
    assert_refused_once(server.port, data, 400)


# RFC 9112 §6.3 (3): both Transfer-Encoding: chunked and Content-Length, in either order → refused, closed.
@pytest.mark.parametrize("order", ["te_first", "cl_first"])
def test_chunked_with_content_length_is_refused(server, order):
    te, cl = "Transfer-Encoding: chunked\r\n", f"Content-Length: {len(SMUGGLED) + 5}\r\n"
    body = b"0\r\n\r\n" + SMUGGLED
    assert_refused_once(server.port, publish_head(te + cl if order == "te_first" else cl + te, body), 400)


# A coding split over two header lines is one list (RFC 9110 §5.3): "xchunked" then "chunked" ends in chunked
# but applies a coding we do not implement → 501; "chunked" twice is applying it twice → 400.
def test_unknown_coding_before_chunked_is_not_implemented(server):
    body = b"0\r\n\r\n" + SMUGGLED
    assert_refused_once(server.port, publish_head("Transfer-Encoding: gzip, chunked\r\n", body), 501)
    assert_refused_once(server.port, publish_head("Transfer-Encoding: xchunked\r\nTransfer-Encoding: chunked\r\n",
                                                  body), 501)


def test_chunked_twice_is_refused(server):
    body = b"0\r\n\r\n" + SMUGGLED
    assert_refused_once(server.port, publish_head("Transfer-Encoding: chunked, chunked\r\n", body), 400)
    assert_refused_once(server.port, publish_head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                                  body), 400)


# RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing, even with chunked.
def test_transfer_encoding_in_http10_is_refused(server):
    data = (f"POST {BASE}/publish HTTP/1.0\r\nAuthorization: Bearer {API_KEY}\r\nTransfer-Encoding: chunked\r\n"
            f"\r\n0\r\n\r\n").encode() + SMUGGLED
    raw, closed = exchange(server.port, data)
    got = responses(raw)
    assert [r[0] for r in got] == [400] and closed, raw[:300]


# RFC 9112 §3.2: HTTP/1.1 without Host, more than one Host, or an invalid Host → 400.
@pytest.mark.parametrize("hosts", ["", "Host: a\r\nHost: b\r\n", "Host: a b\r\n", "Host: a/b\r\n",
                                   "Host: user@a\r\n"])
def test_bad_host_is_refused(server, hosts):
    data = f"GET {BASE}/health HTTP/1.1\r\n{hosts}\r\n".encode() + SMUGGLED
    assert_refused_once(server.port, data, 400)


def test_acceptable_hosts_and_http10_without_host(server):
    for host in ["127.0.0.1", "127.0.0.1:8000", "[::1]:80", "example.com", ""]:
        raw, _ = exchange(server.port, f"GET {BASE}/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                          .encode())
        assert [r[0] for r in responses(raw)] == [200], (host, raw[:200])
    raw, _ = exchange(server.port, f"GET {BASE}/health HTTP/1.0\r\n\r\n".encode())
    assert [r[0] for r in responses(raw)] == [200], raw[:200]


# RFC 9112 §6.3 (5): differing Content-Length values, or an invalid one → 400 and close.
@pytest.mark.parametrize("cl", ["Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 6\r\n",
                                "Content-Length: +5\r\n", "Content-Length: -1\r\n", "Content-Length: 0x5\r\n",
                                "Content-Length: 99999999999999999999999\r\n"])
def test_bad_content_length_is_refused(server, cl):
    assert_refused_once(server.port, publish_head(cl, b"{}\r\n\r\n" + SMUGGLED), 400)


# RFC 9112 §5.1: whitespace between a field name and the colon → 400. §5.2: obsolete line folding is refused
# too (a folded Transfer-Encoding could otherwise be read two ways).
@pytest.mark.parametrize("field", ["Transfer-Encoding : chunked\r\n", "Content-Length : 5\r\n",
                                   "X-A: a\r\n b\r\n", "Transfer-Encoding:\r\n chunked\r\n"])
def test_malformed_field_lines_are_refused(server, field):
    raw, closed = exchange(server.port, publish_head(field, b"0\r\n\r\n" + SMUGGLED))
    got = responses(raw)
    assert [r[0] for r in got] == [400] and closed, raw[:300]


def test_chunked_body_is_still_served_and_pipelining_still_works(server):
    """The rules refuse only what is ambiguous: a well-framed chunked publish followed by a pipelined request
    gets both answers on one connection."""
    body = json.dumps({"channel": "news", "event": "e", "payload": 1}).encode()
    data = publish_head("Transfer-Encoding: chunked\r\n",
                        f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    data += f"GET {BASE}/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    raw, closed = exchange(server.port, data)
    assert [r[0] for r in responses(raw)] == [200, 200], raw[:400]
    assert closed


@async_test()
async def test_smuggled_publish_is_never_delivered(server):
    """The attack itself: the body of a refused request is a publish; a subscriber must never receive it."""
    ch = chan("smuggle")
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    try:
        await c.subscribe(ch)
        inner = json.dumps({"channel": ch, "event": "smuggled", "payload": 1}).encode()
        smuggled = (f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                    f"Content-Length: {len(inner)}\r\n\r\n").encode() + inner
        for te in ["xchunked", "chunked, identity", "gzip"]:
            raw, closed = exchange(server.port, publish_head(f"Transfer-Encoding: {te}\r\n", smuggled))
            assert [r[0] for r in responses(raw)] == [400] and closed, raw[:300]
        # A marker published after the attempts: if anything smuggled had been delivered it would come first.
        r = requests.post(server.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"channel": ch, "event": "marker", "payload": 2}, timeout=5)
        assert r.status_code == 200
        msg = await c.next_broadcast()
        assert msg["event"] == "marker", msg
    finally:
        await c.close()


# RFC 9112 §3.2.2: a server must accept the absolute-form of a request target (as sent to a proxy).
def test_absolute_form_targets_are_served(server):
    for target in (f"http://127.0.0.1:{server.port}{BASE}/health", f"HTTP://Example.COM{BASE}/health"):
        raw, _ = exchange(server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        got = responses(raw)
        assert [r[0] for r in got] == [200] and got[0][2] == b"ok", (target, raw[:200])
    body = json.dumps({"channel": "news", "event": "e", "payload": 1}).encode()
    raw, _ = exchange(server.port, (f"POST http://x{BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    assert [r[0] for r in responses(raw)] == [200], raw[:300]
