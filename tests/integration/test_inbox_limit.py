"""The per-thread inbox that carries publications between threads is bounded in bytes (--inbox-limit): past it a
publish is refused as a whole (REST 503, WebSocket ResourceExhausted) instead of growing memory, and nothing
refused is delivered, nothing accepted is lost, and seq stays contiguous.

With one worker thread and a pipelined burst, the thread answers up to 16 requests in a row before it drains its
own inbox: with a limit of one byte every publish answered while a previous one is still queued is refused."""

from __future__ import annotations

import json
import socket

import requests

from conftest import API_KEY, BASE, Client, async_test, chan, make_token, server_fixture
from test_http_framing import exchange, responses

tiny = server_fixture("--threads", "1", "--inbox-limit", "1")


def counter(srv, name: str) -> float:
    for line in requests.get(srv.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics")


@async_test(timeout=30)
async def test_a_full_inbox_refuses_publishes_and_loses_nothing_accepted(tiny):
    ch = chan("inbox")
    c = await Client.connect(tiny, make_token(authorizedChannels=[ch]))
    try:
        await c.subscribe(ch)
        refused_before = counter(tiny, "broadcaster_inbox_refused_total")
        n = 64
        burst = b""
        for i in range(n):
            body = json.dumps({"channel": ch, "event": "e", "payload": i}).encode()
            burst += (f"POST {BASE}/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                      f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if i == n - 1 else "")
                      + "\r\n").encode() + body
        raw, _ = exchange(tiny.port, burst, timeout=10)
        got = responses(raw)
        assert len(got) == n, len(got)
        accepted = [i for i, (status, _, _) in enumerate(got) if status == 200]
        refused = [i for i, (status, _, _) in enumerate(got) if status != 200]
        assert accepted and refused, f"expected both: {[s for s, _, _ in got]}"
        for i in refused:
            status, _, body = got[i]
            assert status == 503, status
            assert json.loads(body)["error"]["code"] == "ResourceExhausted", body
        # Every accepted publish arrives, in order, with contiguous seq; nothing refused does.
        seen = [await c.next_broadcast() for _ in accepted]
        assert [m["payload"] for m in seen] == accepted
        assert [m["seq"] for m in seen] == list(range(1, len(accepted) + 1))
        await c.quiet(0.3)
        assert counter(tiny, "broadcaster_inbox_refused_total") - refused_before == len(refused)
        assert counter(tiny, "broadcaster_inbox_bytes") == 0
        # Room again once drained: a lone publish goes through.
        r = requests.post(tiny.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"channel": ch, "event": "e", "payload": "after"}, timeout=5)
        assert r.status_code == 200, r.text
        assert (await c.next_broadcast())["payload"] == "after"
    finally:
        await c.close()


@async_test(timeout=30)
async def test_websocket_publish_into_a_full_inbox_is_resource_exhausted(tiny):
    """Requests in one WebSocket read are handled in one go too: the second publish finds the first queued."""
    ch = chan("inbox-ws")
    c = await Client.connect(tiny, make_token(authorizedChannels=[ch]))
    try:
        await c.subscribe(ch)
        # Two publish frames in one TCP write: one read, one handler, the inbox not yet drained in between.
        frames = [json.dumps({"id": 10 + i, "method": "publish",
                              "params": {"channel": ch, "event": "e", "payload": i}}) for i in range(2)]
        await c.conn.send(frames[0])
        await c.conn.send(frames[1])
        replies = {}
        while len(replies) < 2:
            m = await c.recv()
            if "requestId" in m:
                replies[m["requestId"]] = m
            else:
                c.broadcasts.append(m)
        assert "result" in replies[10], replies
        # The second is refused unless the frames arrived in two reads; either way nothing is lost or doubled.
        if "error" in replies[11]:
            assert replies[11]["error"]["code"] == "ResourceExhausted", replies[11]
            expected = [0]
        else:
            expected = [0, 1]
        seen = [await c.next_broadcast() for _ in expected]
        assert [m["payload"] for m in seen] == expected
        await c.quiet(0.3)
    finally:
        await c.close()
