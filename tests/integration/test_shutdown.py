"""Graceful shutdown on SIGTERM. Each test runs its own server, since it ends it."""

import asyncio
import signal
import subprocess
import time

import requests

from conftest import API_KEY, OP_CLOSE, Client, RawWS, async_test, chan, make_token, parse_close, start_server


@async_test(timeout=30)
async def test_sigterm_closes_clients_1001_and_exits_0():
    srv = start_server()
    try:
        ch = chan()
        authed = await Client.connect(srv, make_token(authorizedChannels=[ch]))
        await authed.subscribe(ch)
        unauthed = await Client.connect(srv)
        await unauthed.alive()
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        for c in (authed, unauthed):
            code, reason = await c.wait_closed(5)
            assert code == 1001, f"expected close 1001 (going away), got {code} {reason!r}"
        rc = await asyncio.to_thread(srv.proc.wait, max(0.1, 5 - (time.monotonic() - t0)))
        assert rc == 0, f"exit code {rc}\n{srv.output()}"
    except subprocess.TimeoutExpired:
        raise AssertionError("the server did not exit within 5 s of SIGTERM") from None
    finally:
        srv.stop()


@async_test(timeout=40)
async def test_sigterm_closes_many_clients_of_one_thread_in_one_batch():
    """40 connections on one worker: the close frames leave in one batched (io_uring) write, and each client
    still sees 1001 and the server still completes every close handshake and exits 0."""
    srv = start_server("--threads", "1")
    try:
        ch = chan()
        clients = await asyncio.gather(*(Client.connect(srv, make_token(authorizedChannels=[ch]))
                                         for _ in range(40)))
        await asyncio.gather(*(c.subscribe(ch) for c in clients))
        srv.signal(signal.SIGTERM)
        closes = await asyncio.gather(*(c.wait_closed(5) for c in clients))
        assert all(code == 1001 for code, _ in closes), closes
        rc = await asyncio.to_thread(srv.proc.wait, 5)
        assert rc == 0, f"exit code {rc}\n{srv.output()}"
    except subprocess.TimeoutExpired:
        raise AssertionError("the server did not exit within 5 s of SIGTERM") from None
    finally:
        srv.stop()


@async_test(timeout=30)
async def test_sigterm_with_unresponsive_client_exits_within_shutdown_timeout():
    srv = start_server("--shutdown-timeout", "1", "--outbound-buffer", "16000000")
    try:
        raw = RawWS(srv.port, rcvbuf=4096)
        assert "result" in raw.request("auth", {"token": make_token()})
        # a second one is flooded so that not even its close frame can be written
        ch = chan()
        flooded = RawWS(srv.port, rcvbuf=4096)
        assert "result" in flooded.request("auth", {"token": make_token(authorizedChannels=[ch])})
        assert "result" in flooded.request("subscribe", {"channel": ch})

        def flood():
            with requests.Session() as s:
                for _ in range(150):
                    r = s.post(srv.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                               json={"channel": ch, "event": "e", "payload": "x" * 50000}, timeout=5)
                    assert r.status_code == 200

        await asyncio.to_thread(flood)
        # this client will never answer the close handshake
        idle_ok = await Client.connect(srv, make_token())
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        code, _ = await idle_ok.wait_closed(5)
        assert code == 1001
        try:
            rc = await asyncio.to_thread(srv.proc.wait, 5)
        except subprocess.TimeoutExpired:
            raise AssertionError("a client that never answers kept the server alive past the shutdown timeout") \
                from None
        assert rc == 0, f"exit code {rc}\n{srv.output()}"
        assert time.monotonic() - t0 < 5
        # the unresponsive client did get a 1001 close frame (or at least the end of the connection)
        got = None
        try:
            while True:
                _, op, data = raw.recv_frame(2)
                if op == OP_CLOSE:
                    got = parse_close(data)[0]
                    break
        except Exception:
            pass
        assert got in (1001, None), got
        raw.close()
        flooded.close()
    finally:
        srv.stop()


@async_test(timeout=30)
async def test_sigterm_idle_server_exits_0_quickly():
    srv = start_server()
    try:
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = await asyncio.to_thread(srv.proc.wait, 5)
        assert rc == 0
        assert time.monotonic() - t0 < 5
    except subprocess.TimeoutExpired:
        raise AssertionError("the server did not exit within 5 s of SIGTERM") from None
    finally:
        srv.stop()
