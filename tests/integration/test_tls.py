"""TLS: https:// REST and wss:// WebSocket with a self-signed certificate made in the test."""

import asyncio
import json
import socket
import ssl
import subprocess

import pytest
import requests
import websockets

from conftest import API_KEY, BASE, Server, async_test, chan, make_token


class TlsServer(Server):
    def url(self, path: str, base: str = BASE) -> str:
        return f"https://127.0.0.1:{self.port}{base}{path}"

    def ws_url(self, base: str = BASE) -> str:
        return f"wss://127.0.0.1:{self.port}{base}/websocket"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def tls_server(cert, monkeypatch_module):
    monkeypatch_module.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    srv = TlsServer("--threads", "2", "--tls-cert", str(cert[0]), "--tls-key", str(cert[1])).wait_listening()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def client_ssl(cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert[0]))
    return ctx


def https_publish(srv, channel, payload, event="tls"):
    return requests.post(srv.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                         data=json.dumps({"channel": channel, "event": event, "payload": payload}), timeout=10)


async def wss_client(srv, cert, channel):
    ws = await websockets.connect(srv.ws_url(), ssl=client_ssl(cert), open_timeout=5, max_size=None,
                                  ping_interval=None, compression=None)
    await ws.send(json.dumps({"id": 1, "method": "auth", "params": {"token": make_token(authorizedChannels=[channel])}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"requestId": 1, "result": {"success": True}}
    await ws.send(json.dumps({"id": 2, "method": "subscribe", "params": {"channel": channel}}))
    assert "result" in json.loads(await asyncio.wait_for(ws.recv(), 5))
    return ws


def test_https_health_and_publish(tls_server):
    r = requests.get(tls_server.url("/health"), timeout=5)
    assert r.status_code == 200 and r.text == "ok"
    r = https_publish(tls_server, chan(), {"a": 1})
    assert r.status_code == 200 and "id" in r.json()


@async_test(timeout=30)
async def test_wss_receives_https_and_wss_publishes(tls_server, cert):
    ch = chan()
    a = await wss_client(tls_server, cert, ch)
    b = await wss_client(tls_server, cert, ch)
    r = await asyncio.to_thread(https_publish, tls_server, ch, {"via": "https"})
    assert r.status_code == 200
    for ws in (a, b):
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert msg["method"] == "broadcast" and msg["params"]["seq"] == 1
        assert msg["params"]["payload"] == {"via": "https"} and msg["params"]["id"] == r.json()["id"]
    token = make_token(authorizedChannels=[ch], scope=["subscribe", "publish"])
    await a.send(json.dumps({"id": 3, "method": "auth", "params": {"token": token}}))
    assert json.loads(await asyncio.wait_for(a.recv(), 5))["requestId"] == 3
    await a.send(json.dumps({"id": 4, "method": "publish", "params": {"channel": ch, "event": "e", "payload": [1, 2]}}))
    frames = [json.loads(await asyncio.wait_for(a.recv(), 5)) for _ in range(2)]
    assert {f.get("requestId") for f in frames} == {4, None}
    got = json.loads(await asyncio.wait_for(b.recv(), 5))
    assert got["params"]["seq"] == 2 and got["params"]["payload"] == [1, 2]
    await a.close()
    await b.close()


@async_test(timeout=60)
async def test_wss_burst_of_large_messages_in_order(tls_server, cert):
    # Frames larger than a TLS record and bursts that queue up exercise partial TLS writes.
    ch = chan()
    ws = await wss_client(tls_server, cert, ch)
    big = "z" * 40_000

    def flood():
        with requests.Session() as s:
            for i in range(60):
                r = s.post(tls_server.url("/publish"), headers={"Authorization": f"Bearer {API_KEY}"},
                           data=json.dumps({"channel": ch, "event": "big", "payload": {"i": i, "d": big}}), timeout=10)
                assert r.status_code == 200

    await asyncio.to_thread(flood)
    for i in range(60):
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert msg["params"]["seq"] == i + 1 and msg["params"]["payload"]["i"] == i
        assert len(msg["params"]["payload"]["d"]) == 40_000
    await ws.close()


@async_test(timeout=120)
async def test_many_idle_wss_connections_get_large_messages_after_idling(tls_server, cert):
    # 600 handshakes in a burst, an idle pause (OpenSSL has released every connection's record buffers:
    # SSL_MODE_RELEASE_BUFFERS), then a message larger than a TLS record to all of them at once, and another
    # after a second pause: the buffers come back per connection and the records stay intact.
    ch = chan()
    sem = asyncio.Semaphore(32)

    async def one():
        async with sem:
            return await wss_client(tls_server, cert, ch)

    conns = await asyncio.gather(*(one() for _ in range(600)))
    try:
        for n, size in ((1, 60_000), (2, 20_000)):  # 60 kB: under the 64 KiB --max-message-size
            await asyncio.sleep(1.5)
            big = chr(ord("a") + n) * size
            r = await asyncio.to_thread(https_publish, tls_server, ch, {"n": n, "d": big})
            assert r.status_code == 200

            async def receive(ws):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                return msg["params"]["payload"]

            got = await asyncio.gather(*(receive(ws) for ws in conns))
            assert all(p == {"n": n, "d": big} for p in got)
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


@async_test(timeout=30)
async def test_plaintext_on_tls_port_is_refused_and_others_unaffected(tls_server, cert):
    ch = chan()
    ws = await wss_client(tls_server, cert, ch)
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        s.sendall(b"GET /broadcaster/health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")
    r = await asyncio.to_thread(https_publish, tls_server, ch, "still here")
    assert r.status_code == 200
    msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert msg["params"]["payload"] == "still here"
    await ws.close()


def test_tls_needs_both_cert_and_key(cert):
    srv = Server("--tls-cert", str(cert[0]))
    assert srv.proc.wait(10) == 2
    srv.stop()  # joins the output readers
    assert "TLS" in srv.output()
