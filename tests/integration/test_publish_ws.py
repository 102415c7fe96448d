"""`publish` over the WebSocket: result, own delivery, payload types, event validation, notifications."""

import asyncio
import json

import pytest

from conftest import Bystander, Client, assert_recent, async_test, chan, make_token, parse_ts, same_json, rest_publish


def nested(depth):
    v = {"leaf": [1, "two", None]}
    for i in range(depth):
        v = {"level": i, "child": v} if i % 2 else [v, i]
    return v


PAYLOADS = {
    "object": {"a": 1, "b": "two", "c": [1, 2, 3]},
    "empty_object": {},
    "array": [1, "two", 3.5, None, True, {"x": []}],
    "empty_array": [],
    "string": "hello",
    "empty_string": "",
    "string_unicode": "caf\u00e9 \u65e5\u672c\u8a9e \U0001F600 \u00a0",
    "string_escapes": "quote\" backslash\\ slash/ nl\n tab\t cr\r bs\b ff\f nul\u0000 ctl\u001f",
    "string_json_lookalike": "{\"method\":\"broadcast\"}",
    "integer": 42,
    "zero": 0,
    "negative": -17,
    "big_integer": 9007199254740993,
    "int64_min": -9223372036854775808,
    "float": 3.14159,
    "float_exponent": 1.5e300,
    "float_tiny": 1.5e-7,
    "float_integral": 2.0,
    "beyond_int64": 12345678901234567890,
    "beyond_uint64": 100000000000000000000,
    "true": True,
    "false": False,
    "null": None,
    "nested": nested(12),
    "object_with_unicode_keys": {"\u00e9t\u00e9": 1, "k\"ey": 2, "": 3},
}


@async_test()
async def test_publish_result_and_own_delivery(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    msg = await c.request("publish", {"channel": ch, "event": "created", "payload": {"n": 1}}, id="p1")
    assert msg["requestId"] == "p1"
    res = msg["result"]
    assert set(res) == {"id", "createTime"}, res
    assert res["id"] not in (None, "", 0)
    assert_recent(res["createTime"])
    frame = c.broadcasts.popleft() if c.broadcasts else await c.recv()
    assert set(frame) == {"method", "params"}, frame
    assert frame["method"] == "broadcast"
    b = frame["params"]
    assert set(b) == {"id", "seq", "createTime", "channel", "offset", "epoch", "event", "payload"}, b
    assert isinstance(b.pop("epoch"), str), b
    assert b == {"id": res["id"], "seq": 1, "createTime": res["createTime"], "channel": ch, "offset": 1,
                 "event": "created", "payload": {"n": 1}}
    await c.quiet()
    await c.close()


@pytest.mark.parametrize("kind", list(PAYLOADS))
@async_test()
async def test_payload_delivered_as_same_value(server, kind):
    payload = PAYLOADS[kind]
    ch = chan()
    pub = await Client.connect(server, make_token(authorizedChannels=[ch]))
    sub = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    res = await pub.publish(ch, payload)
    b = await sub.next_broadcast()
    assert b["id"] == res["id"]
    assert same_json(b["payload"], payload), f"sent {payload!r}, got {b['payload']!r}"
    await pub.close()
    await sub.close()


@async_test()
async def test_publish_without_subscribers_succeeds(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    res = await c.publish(ch, 1)
    parse_ts(res["createTime"])
    await c.quiet()
    await c.close()


@pytest.mark.parametrize("event,ok", [("", False), ("e" * 256, False), ("e" * 255, True), ("x", True),
                                      ("user.created v2 \u00e9", True), ("\u20ac" * 255, True),
                                      ("\U0001f600" * 256, False)],
                         ids=["empty", "256", "255", "one", "unicode_and_spaces", "255_three_byte_chars",
                              "256_four_byte_chars"])
@async_test()
async def test_event_validation(server, event, ok):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    params = {"channel": ch, "event": event, "payload": 1}
    if ok:
        await c.ok("publish", params)
        assert (await c.next_broadcast())["event"] == event
    else:
        await c.err("publish", params, code="InvalidArgument")
        await c.quiet()
    await c.close()


@pytest.mark.parametrize("params", [{"event": "e", "payload": 1}, {"channel": "CH", "payload": 1},
                                    {"channel": 5, "event": "e", "payload": 1},
                                    {"channel": "CH", "event": 5, "payload": 1},
                                    {"channel": "CH", "event": None, "payload": 1},
                                    {"channel": ["CH"], "event": "e", "payload": 1}],
                         ids=["no_channel", "no_event", "channel_number", "event_number", "event_null",
                              "channel_array"])
@async_test()
async def test_publish_bad_params(server, params):
    ch = chan()
    params = {k: (ch if v == "CH" else [ch] if v == ["CH"] else v) for k, v in params.items()}
    by = await Bystander.create(server)
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    await c.err("publish", params, code="InvalidArgument")
    await c.quiet()
    await c.publish(ch, "after")  # still works
    assert (await c.next_broadcast())["payload"] == "after"
    await by.check()
    await c.close()
    await by.close()


@async_test()
async def test_publish_notification_no_reply_but_delivered(server):
    ch = chan()
    pub = await Client.connect(server, make_token(authorizedChannels=[ch]))
    sub = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await sub.subscribe(ch)
    await pub.send({"method": "publish", "params": {"channel": ch, "event": "n", "payload": "no-id"}})
    await pub.quiet()
    await pub.send({"id": 0, "method": "publish", "params": {"channel": ch, "event": "n", "payload": "id-zero"}})
    await pub.quiet()
    assert (await sub.next_broadcast())["payload"] == "no-id"
    assert (await sub.next_broadcast())["payload"] == "id-zero"
    await pub.close()
    await sub.close()


@async_test()
async def test_message_ids_unique(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    c2 = await Client.connect(server, make_token(authorizedChannels=[ch]))
    ids = []
    for i in range(50):
        ids.append(json.dumps((await c.publish(ch, i))["id"]))
        ids.append(json.dumps((await c2.publish(ch, i))["id"]))
    assert len(set(ids)) == len(ids), "duplicate message ids"
    await c.close()
    await c2.close()


@async_test()
async def test_timestamps_are_utc_millis_and_monotone_enough(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    times = []
    for i in range(5):
        res = await c.publish(ch, i)
        assert_recent(res["createTime"])
        b = await c.next_broadcast()
        assert b["createTime"] == res["createTime"]
        times.append(parse_ts(res["createTime"]))
        hb = await c.ok("heartbeat")
        assert_recent(hb["timestamp"])
        await asyncio.sleep(0.003)  # let the millisecond clock move (not synchronisation)
    assert times == sorted(times)
    await c.close()


@pytest.mark.parametrize("number", ["1E400", "-1E400", "1e999999"])
@async_test()
async def test_out_of_range_number_never_yields_invalid_json(server, number):
    """A number beyond double range must be refused (InvalidArgument) or relayed as valid JSON; a broadcast that
    says `inf` breaks every subscriber's JSON parser."""
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    await c.send('{"id":1,"method":"publish","params":{"channel":"%s","event":"e","payload":%s}}' % (ch, number))
    msg = await c.reply(1)  # every frame is parsed strictly on the way
    if "result" in msg:
        await c.next_broadcast()
    else:
        assert msg["error"]["code"] == "InvalidArgument", msg
    r = await asyncio.to_thread(rest_publish, server, None,
                                body='{"channel":"%s","event":"e","payload":%s}' % (ch, number))
    if r.status_code == 200:
        await c.next_broadcast()
    else:
        assert r.status_code == 400, r.status_code
    await c.quiet()
    await c.close()


@async_test()
async def test_message_at_inbound_limit_is_broadcast(server):
    """The broadcast of a maximal message is larger than max-message-size; it must still be delivered."""
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    base = json.dumps({"id": 1, "method": "publish", "params": {"channel": ch, "event": "e", "payload": ""}})
    pad = "x" * (65536 - len(base))
    await c.send(json.dumps({"id": 1, "method": "publish", "params": {"channel": ch, "event": "e", "payload": pad}}))
    assert "result" in await c.reply(1)
    assert (await c.next_broadcast())["payload"] == pad
    await c.close()
