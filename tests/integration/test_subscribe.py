"""subscribe / unsubscribe, request ids and notifications, channel name validation."""

import asyncio

import pytest

from conftest import Bystander, Client, assert_recent, async_test, chan, make_token, rest_ok, rest_publish, check_rest_error

VALID_CHANNELS = ["chat:room-42", "user:abc_1", "a", "A-Z_0-9", "x" * 255, "a:b:c:d", "UPPER:lower:123",
                  ":".join(["ab"] * 85)]
INVALID_CHANNELS = {"empty": "", "256_chars": "x" * 256, "double_colon": "a::b", "leading_colon": ":a",
                    "trailing_colon": "a:", "only_colon": ":", "space": "a b", "unicode": "caf\u00e9",
                    "emoji": "room\U0001F600", "slash": "a/b", "dot": "a.b", "star": "a*", "hash": "a#b",
                    "nul": "a\u0000b", "newline": "a\nb", "tab": "a\tb", "256_with_colons": ":".join(["abc"] * 65)}


@async_test()
async def test_subscribe_result_and_unsubscribe(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    msg = await c.request("subscribe", {"channel": ch}, id=5)
    assert msg["requestId"] == 5
    res = msg["result"]
    assert set(res) == {"subscriptionId", "timestamp", "epoch", "offset"}, res
    assert isinstance(res["subscriptionId"], str) and res["subscriptionId"], res  # a non-empty string
    # The channel's position: a fresh channel has offset 0 in some epoch.
    assert isinstance(res["epoch"], str) and res["epoch"] and res["offset"] == 0, res
    assert_recent(res["timestamp"])
    msg = await c.request("unsubscribe", {"channel": ch}, id="u1")
    assert msg == {"requestId": "u1", "result": {"success": True}}
    await asyncio.to_thread(rest_ok, server, ch)
    await c.quiet()  # unsubscribed: nothing arrives
    await c.close()


@async_test()
async def test_subscribe_twice_is_already_exists(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.subscribe(ch)
    await c.err("subscribe", {"channel": ch}, code="AlreadyExists")
    # the first subscription is intact and only delivers once
    await asyncio.to_thread(rest_ok, server, ch, "e", 1)
    b = await c.next_broadcast()
    assert b["seq"] == 1
    await c.quiet()
    await c.close()


@async_test()
async def test_unsubscribe_is_idempotent(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    assert await c.ok("unsubscribe", {"channel": ch}) == {"success": True}  # never subscribed
    await c.subscribe(ch)
    assert await c.ok("unsubscribe", {"channel": ch}) == {"success": True}
    assert await c.ok("unsubscribe", {"channel": ch}) == {"success": True}  # already gone
    await c.close()


@async_test()
async def test_subscription_ids_unique(server):
    chans = [chan() for _ in range(5)]
    tok = make_token(authorizedChannels=chans)
    ids = []
    clients = [await Client.connect(server, tok) for _ in range(3)]
    for c in clients:
        for ch in chans:
            ids.append((await c.subscribe(ch))["subscriptionId"])
    # resubscribing yields a new id too
    await clients[0].ok("unsubscribe", {"channel": chans[0]})
    ids.append((await clients[0].subscribe(chans[0]))["subscriptionId"])
    assert all(isinstance(i, str) and i for i in ids), ids
    assert len(set(ids)) == len(ids), f"duplicate subscription ids: {ids}"
    for c in clients:
        await c.close()


@pytest.mark.parametrize("channel", VALID_CHANNELS, ids=lambda c: c[:20] + (f"..{len(c)}" if len(c) > 20 else ""))
@async_test()
async def test_valid_channel_names(server, channel):
    c = await Client.connect(server, make_token(authorizedChannels=[channel]))
    await c.subscribe(channel)
    res = await c.publish(channel, "v")
    b = await c.next_broadcast()
    assert b["channel"] == channel and b["id"] == res["id"]
    r = rest_publish(server, channel, "e", 1)
    assert r.status_code == 200, r.text
    assert (await c.next_broadcast())["channel"] == channel
    await c.ok("unsubscribe", {"channel": channel})
    await c.close()


@pytest.mark.parametrize("case", list(INVALID_CHANNELS))
@async_test()
async def test_invalid_channel_names(server, case):
    bad = INVALID_CHANNELS[case]
    good = chan()
    by = await Bystander.create(server)
    c = await Client.connect(server, make_token(authorizedChannels=[good]))
    await c.err("subscribe", {"channel": bad}, code="InvalidArgument")
    await c.err("publish", {"channel": bad, "event": "e", "payload": 1}, code="InvalidArgument")
    await c.err("unsubscribe", {"channel": bad}, code="InvalidArgument")
    check_rest_error(rest_publish(server, bad, "e", 1), 400, "InvalidArgument")
    await c.subscribe(good)  # the connection still works
    await by.check()  # and another one is undisturbed
    await c.close()
    await by.close()


@async_test()
async def test_subscribe_notification_success_gets_no_reply(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    await c.send({"method": "subscribe", "params": {"channel": ch}})
    await c.quiet()
    # it did subscribe
    await c.err("subscribe", {"channel": ch}, code="AlreadyExists")
    await c.send({"id": 0, "method": "unsubscribe", "params": {"channel": ch}})
    await c.quiet()
    await asyncio.to_thread(rest_ok, server, ch)
    await c.quiet()
    await c.close()


@async_test()
async def test_failed_notification_gets_error_without_request_id(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch]))
    for req in ({"method": "subscribe", "params": {"channel": chan()}},
                {"id": 0, "method": "subscribe", "params": {"channel": chan()}}):
        await c.send(req)
        msg = await c.recv()
        assert "requestId" not in msg, f"notification errors carry no requestId: {msg}"
        assert "result" not in msg
        assert msg["error"]["code"] == "PermissionDenied", msg
    await c.alive()
    await c.close()


@pytest.mark.parametrize("rid", [1, 123, 4294967297, 9007199254740993, -7, 1.5, "abc", "42", "id-\u00e9\u2713",
                                 "with \"quotes\" and \\ backslash"])
@async_test()
async def test_request_ids_echoed_unchanged(server, rid):
    ch = chan()
    c = await Client.connect(server)
    msg = await c.request("heartbeat", id=rid)
    assert msg["requestId"] == rid and type(msg["requestId"]) is type(rid), msg
    msg = await c.request("auth", {"token": make_token(authorizedChannels=[ch])}, id=rid)
    assert msg == {"requestId": rid, "result": {"success": True}}
    msg = await c.request("subscribe", {"channel": "nope"}, id=rid)
    assert msg["requestId"] == rid and msg["error"]["code"] == "PermissionDenied", msg
    await c.close()
