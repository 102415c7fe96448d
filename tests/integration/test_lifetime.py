"""Connection lifetime: auth timeout, server pings and idle timeout, token expiry and refresh, leeway flag."""

import asyncio
import socket
import time

from conftest import (OP_CLOSE, OP_PING, Client, Closed, RawWS, async_test, chan, make_token, server_fixture)

AUTH_TIMEOUT = 1.0
IDLE_TIMEOUT = 2.0

HANDSHAKE_TIMEOUT = 1.0

timeouts = server_fixture("--auth-timeout", str(AUTH_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT),
                          "--jwt-leeway", "0", "--handshake-timeout", str(HANDSHAKE_TIMEOUT), "--threads", "2")


def now():
    return int(time.time())


async def still_open(c: Client, seconds: float):
    """Assert the server does not close `c` during `seconds` (a deliberate wait: proving an absence)."""
    try:
        await asyncio.wait_for(asyncio.shield(c.conn.wait_closed()), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"connection closed early: {c.conn.close_code} {c.conn.close_reason!r}")


# ---------------------------------------------------------------------------------------------------------------
# auth timeout


@async_test()
async def test_auth_timeout_closes_unauthenticated_connection(timeouts):
    t0 = time.monotonic()
    c = await Client.connect(timeouts)
    code, reason = await c.wait_closed(AUTH_TIMEOUT + 3)
    elapsed = time.monotonic() - t0
    assert code == 1008, f"expected close 1008, got {code} {reason!r}"
    assert "auth" in reason.lower(), f"close reason should mention auth: {reason!r}"
    assert elapsed >= AUTH_TIMEOUT * 0.8, f"closed after {elapsed:.2f}s, before the auth timeout"


@async_test()
async def test_heartbeats_do_not_extend_auth_timeout(timeouts):
    c = await Client.connect(timeouts)

    async def beat():
        while True:
            await c.send({"method": "heartbeat"})
            await asyncio.sleep(0.2)

    task = asyncio.create_task(beat())
    try:
        code, _ = await c.wait_closed(AUTH_TIMEOUT + 3)
    finally:
        task.cancel()
    assert code == 1008


@async_test()
async def test_failed_auth_does_not_stop_auth_timeout(timeouts):
    c = await Client.connect(timeouts)
    await c.err("auth", {"token": make_token(secret="wrong")}, code="Unauthenticated")
    code, _ = await c.wait_closed(AUTH_TIMEOUT + 3)
    assert code == 1008


@async_test()
async def test_authenticated_connection_outlives_auth_timeout(timeouts):
    c = await Client.connect(timeouts, make_token())  # websockets answers the server's pings
    await still_open(c, AUTH_TIMEOUT + 1.5)
    await c.alive()
    await c.close()


# ---------------------------------------------------------------------------------------------------------------
# pings and idle timeout


def _authed_raw(srv) -> RawWS:
    raw = RawWS(srv.port, timeout=10)
    assert "result" in raw.request("auth", {"token": make_token()})
    return raw


@async_test()
async def test_server_pings_within_half_idle_timeout(timeouts):
    def run():
        raw = _authed_raw(timeouts)
        t0 = time.monotonic()
        try:
            while True:
                left = IDLE_TIMEOUT / 2 + 1 - (time.monotonic() - t0)
                assert left > 0, "no ping within idle-timeout/2 + 1 s"
                try:
                    _, op, _ = raw.recv_frame(left)
                except socket.timeout:
                    raise AssertionError("no ping within idle-timeout/2 + 1 s") from None
                if op == OP_PING:
                    return
        finally:
            raw.close()

    await asyncio.to_thread(run)


@async_test()
async def test_idle_connection_not_answering_pings_is_closed(timeouts):
    def run():
        raw = _authed_raw(timeouts)
        t0 = time.monotonic()
        end = raw.wait_close(IDLE_TIMEOUT + 3)  # never answers pings, never sends
        elapsed = time.monotonic() - t0
        raw.close()
        return end, elapsed

    end, elapsed = await asyncio.to_thread(run)
    assert elapsed >= IDLE_TIMEOUT * 0.75, f"closed after {elapsed:.2f}s, before the idle timeout ({end})"


@async_test(timeout=30)
async def test_pongs_or_frames_keep_connection_alive(timeouts):
    duration = IDLE_TIMEOUT * 2.25

    def answering_pongs():
        raw = _authed_raw(timeouts)
        t0 = time.monotonic()
        pings = 0
        try:
            while time.monotonic() - t0 < duration:
                try:
                    _, op, data = raw.recv_frame(0.2)
                except socket.timeout:
                    continue
                if op == OP_PING:
                    pings += 1
                    raw.send_frame(0xA, data)
                elif op == OP_CLOSE:
                    raise AssertionError("closed although it answered every ping")
            assert pings >= 2, f"only {pings} pings in {duration}s"
            assert "result" in raw.request("heartbeat")
        except Closed:
            raise AssertionError("closed although it answered every ping") from None
        finally:
            raw.close()

    def sending_frames():
        raw = _authed_raw(timeouts)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < duration:
                raw.send_json({"method": "heartbeat"})  # never answers pings, but talks
                try:
                    _, op, _ = raw.recv_frame(0.4)
                except socket.timeout:
                    continue
                if op == OP_CLOSE:
                    raise AssertionError("closed although the client kept sending frames")
            assert "result" in raw.request("heartbeat")
        except Closed:
            raise AssertionError("closed although the client kept sending frames") from None
        finally:
            raw.close()

    await asyncio.gather(asyncio.to_thread(answering_pongs), asyncio.to_thread(sending_frames))


# ---------------------------------------------------------------------------------------------------------------
# token expiry and refresh (leeway 0)


@async_test(timeout=30)
async def test_token_expiry_and_refresh(timeouts):
    async def expires():
        ch = chan()
        c = await Client.connect(timeouts, make_token(exp=now() + 2, authorizedChannels=[ch]))
        await c.subscribe(ch)
        t0 = time.monotonic()
        code, reason = await c.wait_closed(6)
        assert code == 4001, f"expected close 4001 on token expiry, got {code} {reason!r}"
        assert "expire" in reason.lower(), reason
        assert time.monotonic() - t0 <= 5.5

    async def refreshed_longer():
        c = await Client.connect(timeouts, make_token(sub="r", exp=now() + 2))
        await c.auth(make_token(sub="r", exp=now() + 120))
        await still_open(c, 4.5)
        await c.alive()
        await c.close()

    async def refreshed_shorter():
        c = await Client.connect(timeouts, make_token(sub="s", exp=now() + 120))
        await c.auth(make_token(sub="s", exp=now() + 2))
        code, _ = await c.wait_closed(6)
        assert code == 4001, f"the refreshed (shorter) expiry was not applied: {code}"

    async def far_future():
        # an exp far beyond any clock's range must not overflow the expiry timer
        c = await Client.connect(timeouts, make_token(exp=1e300))
        await still_open(c, 4.5)
        await c.alive()
        await c.close()

    await asyncio.gather(expires(), refreshed_longer(), refreshed_shorter(), far_future())


# Default auth (10 s) and idle (60 s) timeouts: a connection's next check is 30 s away (the ping), so a token
# expiring sooner, or a refresh that brings the expiry forward, must move it (the timer wheel).
default_timeouts = server_fixture("--jwt-leeway", "0", "--threads", "2")


@async_test()
async def test_token_expiry_comes_before_the_next_ping_check(default_timeouts):
    async def expires_soon():
        c = await Client.connect(default_timeouts, make_token(exp=now() + 2))
        t0 = time.monotonic()
        code, _ = await c.wait_closed(8)
        assert code == 4001 and time.monotonic() - t0 <= 4.5, (code, time.monotonic() - t0)

    async def refreshed_shorter():
        c = await Client.connect(default_timeouts, make_token(sub="s2", exp=now() + 120))
        await c.alive()
        await c.auth(make_token(sub="s2", exp=now() + 2))
        t0 = time.monotonic()
        code, _ = await c.wait_closed(8)
        assert code == 4001 and time.monotonic() - t0 <= 4.5, (code, time.monotonic() - t0)

    await asyncio.gather(expires_soon(), refreshed_shorter())


@async_test()
async def test_leeway_flag_zero(timeouts):
    c = await Client.connect(timeouts)
    await c.err("auth", {"token": make_token(exp=now() - 2, iat=now() - 100)}, code="Unauthenticated")
    await c.err("auth", {"token": make_token(iat=now() + 5)}, code="Unauthenticated")
    await c.err("auth", {"token": make_token(nbf=now() + 5)}, code="Unauthenticated")
    await c.auth(make_token())
    await c.close()


# ---------------------------------------------------------------------------------------------------------------
# handshake timeout (slowloris)


@async_test()
async def test_incomplete_request_head_is_dropped_after_handshake_timeout(timeouts):
    def run():
        s = socket.create_connection(("127.0.0.1", timeouts.port), timeout=HANDSHAKE_TIMEOUT + 3)
        t0 = time.monotonic()
        s.sendall(b"GET /broadcaster/websocket HTTP/1.1\r\nHost: x\r\nUpgr")
        try:
            while s.recv(4096):  # an error response (408/400) may come first
                pass
        except socket.timeout:
            raise AssertionError("a connection that never finished its request head was kept open") from None
        except ConnectionResetError:
            pass
        finally:
            s.close()
        return time.monotonic() - t0

    elapsed = await asyncio.to_thread(run)
    assert elapsed >= HANDSHAKE_TIMEOUT * 0.8, f"dropped after {elapsed:.2f}s, before the handshake timeout"
    c = await Client.connect(timeouts, make_token())
    await c.alive()
    await c.close()
