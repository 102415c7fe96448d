"""Payloads and request ids arrive byte for byte as sent (issue 15 items 8 and 9).

The server validates a publish with Boost.JSON but delivers the publisher's own source text of the payload, and
echoes a request's id as the client wrote it: numbers no double can hold (beyond 64 bits, 1e-400, 1e400, -0),
their spellings (0.10, 1E+2), escapes and inner whitespace are all kept. These tests compare raw frame text,
not parsed values, over REST and WebSocket publish, on one node and across two nodes sharing Redis.

`raw_members` reads the source text of an object's members with Python's own decoder, independently of the
server's scanner and of the order in which the server writes the fields.
"""

import asyncio
import json
import sys
from pathlib import Path

import pytest

from conftest import Client, async_test, chan, make_token, rest_publish

sys.path.insert(0, str(Path(__file__).resolve().parent / "redis"))
from redis_helpers import RedisServer, start_node, stop_all  # noqa: E402

_decoder = json.JSONDecoder()
_SPACE = " \t\n\r"


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def raw_members(text: str) -> dict:
    """{key: source text of its value} for the JSON object `text` (the last of duplicate keys wins)."""
    i = _skip(text, 0)
    assert text[i] == "{", text
    i = _skip(text, i + 1)
    out = {}
    if text[i] == "}":
        return out
    while True:
        key, i = _decoder.raw_decode(text, i)
        i = _skip(text, i)
        assert text[i] == ":", text
        start = _skip(text, i + 1)
        _, end = _decoder.raw_decode(text, start)
        out[key] = text[start:end]
        i = _skip(text, end)
        if text[i] == "}":
            return out
        assert text[i] == ",", text
        i = _skip(text, i + 1)


def broadcast_payload(frame: str) -> str:
    """The payload's source text in a broadcast frame."""
    top = raw_members(frame)
    assert top.get("method") == '"broadcast"', frame
    return raw_members(top["params"])["payload"]


async def recv_raw(c: Client, timeout: float = 5.0) -> str:
    try:
        raw = await asyncio.wait_for(c.conn.recv(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no frame within {timeout}s") from None
    assert isinstance(raw, str), raw
    return raw


async def nothing_more(c: Client):
    """A heartbeat's reply is the very next frame: nothing else is pending."""
    await c.send('{"id":"quiet","method":"heartbeat"}')
    frame = await recv_raw(c)
    assert raw_members(frame).get("requestId") == '"quiet"', frame


# The payloads of the issue, as JSON source text.
PAYLOADS = [
    "18446744073709551617",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "1e-400",
    "1e400",
    "-1E999",
    "-0",
    "-0.0",
    "0.10",
    "1E+2",
    "1.50e-7",
    '"\\u00e9\\n"',
    '"\\/"',
    '"caf\u00e9 \\ud83d\\ude00 \\"q\\" \\\\"',
    '{ "a" : [ 1 ,\n\t2.50 ] , "b":{ "c" : "\\u0041" } ,"d" :[ ] }',
    '[18446744073709551617, {"x" : 1e400}, -0, "\\/"]',
    'null',
    'true',
    '""',
]


@pytest.fixture
def subscriber(server):
    """A channel and a connection subscribed to it (closed after the test)."""
    ch = chan()

    async def make():
        c = await Client.connect(server, make_token(authorizedChannels=[ch]))
        await c.subscribe(ch)
        return c

    return ch, make


@pytest.mark.parametrize("payload", PAYLOADS)
@async_test()
async def test_rest_payload_arrives_byte_for_byte(server, subscriber, payload):
    ch, make = subscriber
    sub = await make()
    body = '{"channel":"%s","event":"e","payload":%s}' % (ch, payload)
    r = await asyncio.to_thread(rest_publish, server, None, body=body.encode())
    assert r.status_code == 200, r.text
    assert broadcast_payload(await recv_raw(sub)).encode() == payload.encode()
    await nothing_more(sub)
    await sub.close()


@pytest.mark.parametrize("payload", PAYLOADS)
@async_test()
async def test_websocket_payload_arrives_byte_for_byte(server, subscriber, payload):
    ch, make = subscriber
    sub = await make()
    pub = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await pub.send('{"id":7,"method":"publish","params":{"channel":"%s","event":"e","payload":%s}}' % (ch, payload))
    reply = raw_members(await recv_raw(pub))
    assert reply["requestId"] == "7" and "result" in reply, reply
    assert broadcast_payload(await recv_raw(sub)).encode() == payload.encode()
    await nothing_more(sub)
    await sub.close()
    await pub.close()


@async_test()
async def test_whitespace_around_the_payload_is_not_part_of_it(server, subscriber):
    ch, make = subscriber
    sub = await make()
    body = '{"channel":"%s","event":"e","payload" :\n  { "a" : 1 }\t \r\n}' % ch
    r = await asyncio.to_thread(rest_publish, server, None, body=body.encode())
    assert r.status_code == 200, r.text
    assert broadcast_payload(await recv_raw(sub)) == '{ "a" : 1 }'
    await sub.send('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":  [ 2 ]  }  }' % ch)
    frames = [await recv_raw(sub), await recv_raw(sub)]  # the reply and the broadcast, in either order
    payloads = [broadcast_payload(f) for f in frames if '"broadcast"' == raw_members(f).get("method")]
    assert payloads == ["[ 2 ]"], frames
    await sub.close()


@async_test()
async def test_duplicate_and_escaped_keys_deliver_the_member_that_was_validated(server, subscriber):
    """With a key given twice, Boost.JSON keeps the last; "pay\\u006coad" is the key payload. The delivered text
    is always that member's."""
    ch, make = subscriber
    sub = await make()
    pub = await Client.connect(server, make_token(authorizedChannels=[ch]))
    cases = [
        ('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":1,"payload":{"k" : 2}}}',
         '{"k" : 2}'),
        ('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":1,"pay\\u006coad":[3 ]}}',
         "[3 ]"),
        ('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":"first"},'
         '"params":{"channel":"%s","event":"e","payload":"second"}}', '"second"'),
        ('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":"first"},'
         '"p\\u0061rams":{"channel":"%s","event":"e","payload":4e0}}', "4e0"),
    ]
    for template, expected in cases:
        await pub.send(template.replace("%s", ch))
        reply = raw_members(await recv_raw(pub))
        assert "result" in reply, reply
        assert broadcast_payload(await recv_raw(sub)) == expected, template
    # The same over REST.
    body = '{"channel":"%s","event":"e","payload":[1],"pay\\u006coad":[2, 3],"x":{"payload":0}}' % ch
    r = await asyncio.to_thread(rest_publish, server, None, body=body.encode())
    assert r.status_code == 200, r.text
    assert broadcast_payload(await recv_raw(sub)) == "[2, 3]"
    await nothing_more(sub)
    await sub.close()
    await pub.close()


# Request ids as JSON source text: echoed as requestId exactly.
IDS = [
    "1e2",
    "1E+2",
    "12345678901234567890123",
    "18446744073709551617",
    "-5",
    "0.10",
    "2.0",
    "1e400",
    "1e-400",
    '"a\\u0041\\/\\n"',
    '"\\ud83d\\ude00"',
    '"caf\u00e9"',
    '"0"',
    '""',
]


@pytest.mark.parametrize("request_id", IDS)
@async_test()
async def test_request_id_is_echoed_byte_for_byte(server, request_id):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    templates = [
        '{"id":%s,"method":"heartbeat"}',  # a result
        '{"method":"frobnicate","id":%s}',  # an error (NotFound)
        '{"id" : %s ,"method":"subscribe","params":{"channel":"' + ch + '"}}',  # a deferred result
        '{"id":%s,"method":"publish","params":{"channel":"' + ch + '","event":"e","payload":1}}',  # the broker's
    ]
    for template in templates:
        await c.send(template % request_id)
        while True:
            frame = await recv_raw(c)
            members = raw_members(frame)
            if members.get("method") != '"broadcast"':
                break
        assert members["requestId"].encode() == request_id.encode(), (template, frame)
    await c.close()


@async_test()
async def test_every_spelling_of_zero_is_a_notification(server):
    """A numeric id equal to zero, however written, is a notification: success gets no reply. 1e-400 is not
    zero (although a double reads it as 0) and is answered."""
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    for zero in ["0", "-0", "0.0", "-0.0", "0e5", "0E-3", "-0.000e+400", "null"]:
        await c.send('{"id":%s,"method":"heartbeat"}' % zero)
        await c.send('{"id":%s,"method":"publish","params":{"channel":"%s","event":"e","payload":%s}}'
                     % (zero, ch, zero))
        assert broadcast_payload(await recv_raw(c)) == zero
        await nothing_more(c)
    await c.send('{"id":1e-400,"method":"heartbeat"}')
    assert raw_members(await recv_raw(c))["requestId"] == "1e-400"
    await c.close()


@async_test()
async def test_subscription_id_is_a_nonempty_string(server):
    ch1, ch2 = chan(), chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch1, ch2]))
    ids = [(await c.subscribe(ch))["subscriptionId"] for ch in (ch1, ch2)]
    await c.ok("unsubscribe", {"channel": ch1})
    ids.append((await c.subscribe(ch1))["subscriptionId"])
    assert all(isinstance(i, str) and i for i in ids), ids
    assert len(set(ids)) == 3, ids
    await c.close()


@async_test(60)
async def test_payload_bytes_survive_redis_between_nodes():
    """Published on node A, delivered on node B through Redis's envelope: the same bytes."""
    redis = RedisServer()
    nodes = []
    try:
        nodes = [start_node(redis.url) for _ in range(2)]
        a, b = nodes
        ch = chan()
        token = make_token(authorizedChannels=[ch])
        sub = await Client.connect(b, token)
        await sub.subscribe(ch)
        redis.wait_numsub(ch, 1)
        pub = await Client.connect(a, token)
        for payload in PAYLOADS:
            body = '{"channel":"%s","event":"e","payload":%s}' % (ch, payload)
            r = await asyncio.to_thread(rest_publish, a, None, body=body.encode())
            assert r.status_code == 200, r.text
            assert broadcast_payload(await recv_raw(sub)).encode() == payload.encode()
            await pub.send('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":%s}}'
                           % (ch, payload))
            assert "result" in raw_members(await recv_raw(pub))
            assert broadcast_payload(await recv_raw(sub)).encode() == payload.encode()
        await sub.close()
        await pub.close()
    finally:
        crashed = [n for n in nodes if not n.alive()]
        stop_all(*nodes, redis)
        if crashed:
            pytest.fail("a node died:\n" + "\n".join(n.output() for n in crashed))
