"""The `auth` method: every JWT rule, scopes, authorization, refresh, and failed auth leaving state alone."""

import asyncio
import time

import pytest

from conftest import DROP, NO as NO_PARAMS, Client, async_test, chan, make_token, rest_ok


def now():
    return int(time.time())


@async_test()
async def test_auth_success_echoes_id(server):
    c = await Client.connect(server)
    msg = await c.request("auth", {"token": make_token()}, id=77)
    assert msg == {"requestId": 77, "result": {"success": True}}
    await c.close()


@async_test()
async def test_heartbeat_allowed_before_auth(server):
    c = await Client.connect(server)
    await c.alive()
    await c.close()


@async_test()
async def test_subscribe_and_publish_before_auth_are_unauthenticated(server):
    c = await Client.connect(server)
    await c.err("subscribe", {"channel": "news"}, code="Unauthenticated")
    await c.err("publish", {"channel": "news", "event": "e", "payload": 1}, code="Unauthenticated")
    await c.alive()
    await c.close()


# Tokens that must be refused with Unauthenticated.
def _bad_tokens():
    t = now()
    good = make_token()
    h, p, s = good.split(".")
    return {
        "alg_none_unsigned": make_token(alg="none", sign=None),
        "alg_none_signed": make_token(alg="none"),
        "alg_None_mixed_case": make_token(alg="None", sign=None),
        "alg_HS512_signed_HS512": make_token(alg="HS512", sign="HS512"),
        "alg_HS512_signed_HS256": make_token(alg="HS512"),
        "alg_RS256_hmac_confusion": make_token(alg="RS256"),
        "header_without_alg": make_token(header={"typ": "JWT"}),
        "bad_signature_other_secret": make_token(secret="not-the-secret"),
        "signature_flipped": f"{h}.{p}.{s[:-2]}{'AA' if s[-2:] != 'AA' else 'BB'}",
        "payload_tampered": f"{h}.{make_token(sub='mallory').split('.')[1]}.{s}",
        "empty_signature": f"{h}.{p}.",
        "expired_beyond_leeway": make_token(exp=t - 120, iat=t - 3600),
        "iat_in_future_beyond_leeway": make_token(iat=t + 300, exp=t + 3600),
        "nbf_in_future_beyond_leeway": make_token(nbf=t + 300),
        "wrong_audience": make_token(aud="someone-else"),
        "audience_array_without_us": make_token(aud=["a", "b"]),
        "two_parts": f"{h}.{p}",
        "four_parts": f"{good}.{s}",
        "one_part": "abc",
        "empty_string": "",
        "not_base64": "!!!.@@@.###",
        "header_not_json": f"{'bm90IGpzb24'}.{p}.{s}",
    }


@pytest.mark.parametrize("case", list(_bad_tokens()))
@async_test()
async def test_bad_token_is_unauthenticated(server, case):
    token = _bad_tokens()[case]
    c = await Client.connect(server)
    await c.err("auth", {"token": token}, code="Unauthenticated")
    # the connection is still unauthenticated and usable
    await c.err("subscribe", {"channel": "news"}, code="Unauthenticated")
    await c.alive()
    await c.close()


@pytest.mark.parametrize("case,claims,code", [
    ("missing_sub", {"sub": DROP}, "InvalidArgument"),
    ("missing_authorizedChannels", {"authorizedChannels": DROP}, "InvalidArgument"),
    # the rules below name no code: they must fail, with a client error
    ("empty_sub", {"sub": ""}, ("InvalidArgument", "Unauthenticated")),
    ("sub_not_string", {"sub": 42}, ("InvalidArgument", "Unauthenticated")),
    ("empty_authorizedChannels", {"authorizedChannels": []}, ("InvalidArgument", "Unauthenticated")),
    ("authorizedChannels_not_array", {"authorizedChannels": "news"}, ("InvalidArgument", "Unauthenticated")),
    ("missing_aud", {"aud": DROP}, ("InvalidArgument", "Unauthenticated")),
    ("missing_exp", {"exp": DROP}, ("InvalidArgument", "Unauthenticated")),
    ("missing_iat", {"iat": DROP}, ("InvalidArgument", "Unauthenticated")),
    ("exp_not_number", {"exp": "tomorrow"}, ("InvalidArgument", "Unauthenticated")),
])
@async_test()
async def test_bad_claims(server, case, claims, code):
    c = await Client.connect(server)
    await c.err("auth", {"token": make_token(**claims)}, code=code)
    await c.err("subscribe", {"channel": "news"}, code="Unauthenticated")
    await c.close()


@pytest.mark.parametrize("case,claims", [
    ("expired_within_leeway", lambda: {"exp": now() - 10}),
    ("iat_in_future_within_leeway", lambda: {"iat": now() + 10}),
    ("nbf_within_leeway", lambda: {"nbf": now() + 10}),
    ("nbf_in_past", lambda: {"nbf": now() - 100}),
    ("aud_array_containing_us", {"aud": ["other", "broadcaster"]}),
    ("unknown_scope_values_ignored", {"scope": ["subscribe", "publish", "admin"]}),
    ("extra_claims_ignored", {"iss": "someone", "jti": "x1", "custom": {"a": 1}}),
    ("fractional_numeric_dates", lambda: {"exp": now() + 3600.5, "iat": now() - 0.25}),
    ("header_without_typ", {"header": {"alg": "HS256"}}),
    ("header_with_kid", {"header": {"alg": "HS256", "typ": "JWT", "kid": "k1"}}),
])
@async_test()
async def test_acceptable_tokens(server, case, claims):
    # Time claims are computed when the test runs, not when pytest collects it (a slow, sanitized run can be
    # minutes later).
    claims = claims() if callable(claims) else claims
    ch = chan()
    c = await Client.connect(server)
    await c.auth(make_token(authorizedChannels=[ch], **claims))
    await c.subscribe(ch)
    await c.close()


@async_test()
async def test_token_param_wrong_type_or_missing(server):
    c = await Client.connect(server)
    await c.err("auth", {"token": 12345}, code="InvalidArgument")
    await c.err("auth", {}, code="InvalidArgument")
    await c.err("auth", NO_PARAMS, code="InvalidArgument")
    await c.err("subscribe", {"channel": "news"}, code="Unauthenticated")
    await c.alive()
    await c.close()


@async_test()
async def test_scope_without_subscribe(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch], scope=["publish"]))
    await c.err("subscribe", {"channel": ch}, code="PermissionDenied")
    await c.publish(ch, 1)
    await c.quiet()  # not subscribed: nothing delivered
    await c.close()


@async_test()
async def test_scope_without_publish(server):
    ch = chan()
    c = await Client.connect(server, make_token(authorizedChannels=[ch], scope=["subscribe"]))
    await c.subscribe(ch)
    await c.err("publish", {"channel": ch, "event": "e", "payload": 1}, code="PermissionDenied")
    await c.quiet()  # the refused publish was not delivered
    await c.close()


@async_test()
async def test_empty_or_missing_scope_grants_nothing(server):
    ch = chan()
    for claims in ({"scope": []}, {"scope": DROP}, {"scope": ["admin"]}):
        c = await Client.connect(server)
        msg = await c.request("auth", {"token": make_token(authorizedChannels=[ch], **claims)})
        if "result" in msg:  # accepted, but it must grant neither right
            await c.err("subscribe", {"channel": ch}, code="PermissionDenied")
            await c.err("publish", {"channel": ch, "event": "e", "payload": 1}, code="PermissionDenied")
        await c.close()


@async_test()
async def test_channel_not_authorized(server):
    mine, other = chan(), chan()
    c = await Client.connect(server, make_token(authorizedChannels=[mine]))
    await c.err("subscribe", {"channel": other}, code="PermissionDenied")
    await c.err("publish", {"channel": other, "event": "e", "payload": 1}, code="PermissionDenied")
    # authorization is exact, not by prefix
    await c.err("subscribe", {"channel": mine + ":sub"}, code="PermissionDenied")
    await c.err("subscribe", {"channel": mine.split(":")[0]}, code="PermissionDenied")
    await c.subscribe(mine)
    await c.close()


@async_test()
async def test_refresh_same_sub_keeps_subscriptions_and_drops_unauthorized(server):
    keep, drop = chan(), chan()
    c = await Client.connect(server, make_token(sub="alice", authorizedChannels=[keep, drop]))
    await c.subscribe(keep)
    await c.subscribe(drop)
    msg = await c.request("auth", {"token": make_token(sub="alice", authorizedChannels=[keep])}, id="refresh")
    assert msg == {"requestId": "refresh", "result": {"success": True}}
    res = await asyncio.to_thread(rest_ok, server, drop, "e", "dropped")
    res2 = await asyncio.to_thread(rest_ok, server, keep, "e", "kept")
    b = await c.next_broadcast()
    assert b["channel"] == keep and b["id"] == res2["id"], f"expected only the kept channel's message, got {b}"
    assert res["id"] != b["id"]
    await c.quiet()
    # the kept subscription is still the same one: subscribing again is AlreadyExists
    await c.err("subscribe", {"channel": keep}, code="AlreadyExists")
    # the dropped channel is no longer authorized
    await c.err("subscribe", {"channel": drop}, code="PermissionDenied")
    await c.close()


@async_test()
async def test_refresh_can_add_channels_and_scope(server):
    a, b = chan(), chan()
    c = await Client.connect(server, make_token(sub="bob", authorizedChannels=[a], scope=["subscribe"]))
    await c.err("publish", {"channel": a, "event": "e", "payload": 1}, code="PermissionDenied")
    await c.auth(make_token(sub="bob", authorizedChannels=[a, b], scope=["subscribe", "publish"]))
    await c.subscribe(b)
    res = await c.publish(b, "x")
    got = await c.next_broadcast()
    assert got["id"] == res["id"]
    await c.close()


@async_test()
async def test_refresh_can_remove_scope(server):
    a = chan()
    c = await Client.connect(server, make_token(sub="carol", authorizedChannels=[a]))
    await c.publish(a, 1)
    await c.auth(make_token(sub="carol", authorizedChannels=[a], scope=["subscribe"]))
    await c.err("publish", {"channel": a, "event": "e", "payload": 1}, code="PermissionDenied")
    await c.close()


@async_test()
async def test_reauth_with_different_sub_is_failed_precondition(server):
    ch = chan()
    c = await Client.connect(server, make_token(sub="alice", authorizedChannels=[ch]))
    await c.subscribe(ch)
    await c.err("auth", {"token": make_token(sub="mallory", authorizedChannels=[ch, chan()])},
                code="FailedPrecondition")
    # still alice, still subscribed
    res = await asyncio.to_thread(rest_ok, server, ch, "e", 1)
    b = await c.next_broadcast()
    assert b["id"] == res["id"]
    await c.err("subscribe", {"channel": ch}, code="AlreadyExists")
    await c.close()


@pytest.mark.parametrize("bad", ["bad_signature", "expired", "missing_sub", "garbage"])
@async_test()
async def test_failed_reauth_leaves_authenticated_connection_unchanged(server, bad):
    ch, other = chan(), chan()
    token = {"bad_signature": make_token(sub="dave", authorizedChannels=[ch, other], secret="wrong"),
             "expired": make_token(sub="dave", authorizedChannels=[ch, other], exp=now() - 300, iat=now() - 600),
             "missing_sub": make_token(sub=DROP, authorizedChannels=[ch, other]),
             "garbage": "x.y"}[bad]
    c = await Client.connect(server, make_token(sub="dave", authorizedChannels=[ch], scope=["subscribe"]))
    await c.subscribe(ch)
    msg = await c.request("auth", {"token": token})
    assert "error" in msg, msg
    # same rights as before: subscription delivers, scope and channels unchanged
    res = await asyncio.to_thread(rest_ok, server, ch, "e", 2)
    b = await c.next_broadcast()
    assert b["id"] == res["id"]
    await c.err("subscribe", {"channel": other}, code="PermissionDenied")
    await c.err("publish", {"channel": ch, "event": "e", "payload": 1}, code="PermissionDenied")
    await c.quiet()
    await c.close()


@async_test()
async def test_subscriptions_are_per_connection_not_per_user(server):
    ch = chan()
    tok = make_token(sub="same-user", authorizedChannels=[ch])
    a = await Client.connect(server, tok)
    b = await Client.connect(server, tok)
    await a.subscribe(ch)
    await b.subscribe(ch)  # not AlreadyExists: another connection
    await b.ok("unsubscribe", {"channel": ch})
    res = await asyncio.to_thread(rest_ok, server, ch, "e", 1)
    assert (await a.next_broadcast())["id"] == res["id"]
    await b.quiet()
    await a.close()
    await b.close()
