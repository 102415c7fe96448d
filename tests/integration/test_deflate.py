"""permessage-deflate (RFC 7692): negotiation in the upgrade, compressed broadcasts that inflate to exactly the
frames an uncompressed subscriber gets, compressed client messages, and their limits (decompression bombs,
RSV1 misuse). Raw-socket clients check the bits on the wire; the `websockets` library is the real client."""

import asyncio
import json
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from conftest import (API_KEY, BASE, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Bystander, Client, Closed, RawWS,
                      async_test, chan, make_token, rest_ok, server_fixture, start_server)

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
AGREED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

LIMIT = 262144  # --max-message-size: room for the big payloads below
server = server_fixture("--threads", "2", "--compression-min-size", "400", "--max-message-size", str(LIMIT))


def deflate(data: bytes) -> bytes:
    """A client's compressed message: raw DEFLATE, sync-flushed, without the 00 00 ff ff tail."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data: bytes) -> bytes:
    """Fresh stream per message, as server_no_context_takeover allows."""
    d = zlib.decompressobj(-15)
    return d.decompress(data + b"\x00\x00\xff\xff")


class DeflateWS(RawWS):
    """A raw client that negotiated permessage-deflate: receives frames with their RSV1 bit."""

    def recv_data(self, timeout: float = 5.0) -> tuple[bool, bytes]:
        """The next data message: (compressed, payload as it was on the wire)."""
        while True:
            self.sock.settimeout(timeout)
            b0 = self._read_exact(1)[0]
            self.buf = bytes([b0 & 0x8F]) + self.buf  # recv_frame knows no RSV bits
            fin, op, data = self.recv_frame(timeout)
            if op == OP_PING:
                self.send_frame(OP_PONG, data)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                raise Closed("close frame")
            assert fin and op == OP_TEXT, (fin, op)
            return bool(b0 & 0x40), data

    def recv_json(self, timeout: float = 5.0) -> tuple[bool, bytes]:
        compressed, data = self.recv_data(timeout)
        return compressed, inflate(data) if compressed else data

    def recv_msg(self, timeout: float = 5.0, **_) -> dict:
        """RawWS.request() reads replies through this: they may come compressed."""
        return json.loads(self.recv_json(timeout)[1])

    def send_compressed(self, text: str | bytes):
        raw = text.encode() if isinstance(text, str) else text
        self.send_frame(OP_TEXT, deflate(raw), rsv=4)

    def request_compressed(self, method, params=None) -> dict:
        id = next(self._ids)
        self.send_compressed(json.dumps({"id": id, "method": method, "params": params}))
        while True:
            msg = self.recv_msg()
            if msg.get("requestId") == id:
                return msg


def auth_and_subscribe(ws: RawWS, ch: str, *, compressed: bool = False):
    send = ws.request_compressed if compressed else ws.request
    assert "result" in send("auth", {"token": make_token(authorizedChannels=[ch])})
    assert "result" in send("subscribe", {"channel": ch})


def payload_of(n: int):
    """A JSON payload of about n bytes, text-like so that it compresses as real messages do."""
    words = ["price", "update", "héllo", "wörld", "42.17", "ok", "\u2603", "quote"]
    text = " ".join(words[i % len(words)] + str(i % 13) for i in range(max(1, n // 7)))
    return {"text": text[:n], "n": n}


# ---------------------------------------------------------------------------------------------------------------
# Negotiation


@pytest.mark.parametrize("offer,agreed", [
    ("permessage-deflate", AGREED),
    ("permessage-deflate; client_max_window_bits", AGREED),
    ("permessage-deflate; server_max_window_bits=15", AGREED + "; server_max_window_bits=15"),
    ("permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits=12", AGREED),
    ("x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover", AGREED),
    ("permessage-deflate; server_max_window_bits=10", None),
    ("permessage-deflate; mystery", None),
    ("x-webkit-deflate-frame", None),
])
def test_negotiation(server, offer, agreed):
    ws = RawWS(server.port, extra_headers=f"Sec-WebSocket-Extensions: {offer}\r\n")
    try:
        assert ws.headers.get("sec-websocket-extensions") == agreed, ws.headers
        assert "result" in ws.request("heartbeat")  # declined or not, the connection works
    finally:
        ws.close()


def test_offer_split_over_two_header_fields(server):
    ws = RawWS(server.port, extra_headers="Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n"
                                          "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    try:
        assert ws.headers.get("sec-websocket-extensions") == AGREED
    finally:
        ws.close()


def test_no_offer_no_extension(server):
    ws = RawWS(server.port)
    try:
        assert "sec-websocket-extensions" not in ws.headers
    finally:
        ws.close()


def test_compression_can_be_switched_off():
    srv = start_server("--compression", "false")
    try:
        ws = DeflateWS(srv.port, extra_headers=OFFER)
        assert "sec-websocket-extensions" not in ws.headers
        ch = chan()
        auth_and_subscribe(ws, ch)
        rest_ok(srv, ch, "e", payload_of(2000))
        compressed, raw = ws.recv_data()
        assert not compressed
        assert json.loads(raw)["params"]["payload"] == payload_of(2000)
        # RSV1 without the extension is a protocol error.
        ws.send_frame(OP_TEXT, deflate(b'{"method":"heartbeat"}'), rsv=4)
        assert ws.wait_close()[0] == 1002
        ws.close()
    finally:
        srv.stop()


@async_test()
async def test_websockets_library_negotiates_and_sees_no_context_takeover(server):
    conn = await websockets.connect(server.ws_url(), compression="deflate", ping_interval=None)
    try:
        assert conn.response_headers["Sec-WebSocket-Extensions"] == AGREED
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------------------------
# Outbound: compressed once per publication, byte-exact


@async_test(timeout=30)
async def test_compressed_subscriber_gets_exactly_what_a_plain_one_gets(server):
    ch = chan()
    token = make_token(authorizedChannels=[ch])
    plain = await Client.connect(server, token)
    deflated = await Client.connect(server, token, compression="deflate")
    # A third, configured like a browser that limits its own window; must not change what it receives.
    limited = await Client.connect(server, token, compression=None, extensions=[
        ClientPerMessageDeflateFactory(client_max_window_bits=10, server_max_window_bits=15)])
    clients = [plain, deflated, limited]
    try:
        for c in clients:
            await c.subscribe(ch)
        sizes = [0, 1, 50, 127, 128, 129, 500, 1024, 4000, 70000, 200000]
        payloads = [payload_of(n) for n in sizes] + [[1, 2, 3], None, "x" * 300, {"emoji": "😀" * 200}]
        for p in payloads:
            await asyncio.to_thread(rest_ok, server, ch, "ev", p)
        frames = {}
        for c in clients:
            frames[id(c)] = [await asyncio.wait_for(c.conn.recv(), 5) for _ in payloads]
        for i, p in enumerate(payloads):
            a, b, l = frames[id(plain)][i], frames[id(deflated)][i], frames[id(limited)][i]
            assert a == b == l, f"payload #{i}: frames differ"
            params = json.loads(a)["params"]
            assert params["seq"] == i + 1 and params["payload"] == p
        for c in clients:
            await c.quiet()
    finally:
        for c in clients:
            await c.close()


def test_wire_frames_have_rsv1_and_shared_tail_for_every_seq(server):
    """On the wire: a big broadcast is compressed (RSV1) and less than half the plain frame, a small one is not;
    subscribers at different seqs get their own seq in front of the same compressed tail."""
    ch = chan()
    subs = [DeflateWS(server.port, extra_headers=OFFER) for _ in range(3)]
    plain = RawWS(server.port)
    try:
        for s in subs:
            assert s.headers.get("sec-websocket-extensions") == AGREED
        # subs[0] is 3 messages ahead of subs[1], which is 3 ahead of subs[2] and the plain one.
        big, small = payload_of(1024), {"a": 1}
        auth_and_subscribe(subs[0], ch)
        for early in ([subs[0]], [subs[0], subs[1]]):
            if len(early) == 2:
                auth_and_subscribe(subs[1], ch)
            for _ in range(3):
                rest_ok(server, ch, "warm", small)
            for s in early:
                for _ in range(3):
                    s.recv_json()
        auth_and_subscribe(subs[2], ch)
        auth_and_subscribe(plain, ch)
        tails = set()
        for k in range(20):
            rest_ok(server, ch, "ev", big)
            rest_ok(server, ch, "ev", small)
        for i, s in enumerate(subs):
            first = 7 - 3 * i
            for k in range(20):
                compressed, wire = s.recv_data()
                assert compressed, "a 1 KiB broadcast should be compressed"
                frame = inflate(wire)
                assert len(wire) < len(frame) / 2, (len(wire), len(frame))
                msg = json.loads(frame)
                assert msg["params"]["seq"] == first + 2 * k and msg["params"]["payload"] == big
                # Stored block (5-byte header + head + seq), then the publication's shared compressed tail.
                prefix = frame[:frame.index(b',"id"')]
                assert wire[0] == 0 and wire[5:5 + len(prefix)] == prefix
                tails.add((k, wire[5 + len(prefix):]))
                compressed, wire = s.recv_data()
                assert not compressed, "a broadcast below --compression-min-size goes plain"
                assert json.loads(wire)["params"]["seq"] == first + 1 + 2 * k
        assert len(tails) == 20, "every subscriber got the same compressed tail of a publication"
        for k in range(40):
            msg = plain.recv_msg()
            assert msg["params"]["seq"] == 1 + k
    finally:
        for s in subs + [plain]:
            s.close()


def test_compressed_replies_and_publishing_over_a_compressed_socket(server):
    ch = chan()
    ws = DeflateWS(server.port, extra_headers=OFFER)
    plain = RawWS(server.port)
    try:
        auth_and_subscribe(ws, ch, compressed=True)
        auth_and_subscribe(plain, ch)
        big = payload_of(3000)
        res = ws.request_compressed("publish", {"channel": ch, "event": "e", "payload": big})
        assert "id" in res["result"], res
        mine = json.loads(ws.recv_json()[1])
        theirs = plain.recv_msg()
        assert mine == theirs and theirs["params"]["payload"] == big and theirs["params"]["id"] == res["result"]["id"]
        # A big reply (history of the channel, not enabled here: an error) is still readable; a heartbeat too.
        assert "result" in ws.request_compressed("heartbeat")
        assert "result" in ws.request("heartbeat")  # uncompressed messages stay allowed
    finally:
        ws.close()
        plain.close()


@async_test()
async def test_websockets_client_publishes_compressed(server):
    ch = chan()
    token = make_token(authorizedChannels=[ch])
    pub = await Client.connect(server, token, compression="deflate")
    sub = await Client.connect(server, token)
    try:
        await sub.subscribe(ch)
        for n in (10, 1000, 30000):
            res = await pub.publish(ch, payload_of(n))
            b = await sub.next_broadcast()
            assert b["id"] == res["id"] and b["payload"] == payload_of(n)
    finally:
        await pub.close()
        await sub.close()


def test_fragmented_compressed_message(server):
    ws = DeflateWS(server.port, extra_headers=OFFER)
    try:
        body = deflate(json.dumps({"id": 7, "method": "heartbeat", "pad": "y" * 500}).encode())
        ws.send_frame(OP_TEXT, body[:3], fin=False, rsv=4)
        ws.send_frame(OP_PING, b"between")
        ws.send_frame(OP_CONT, body[3:10], fin=False)
        ws.send_frame(OP_CONT, body[10:], fin=True)
        while True:
            _, raw = ws.recv_json()
            msg = json.loads(raw)
            if msg.get("requestId") == 7:
                break
        assert "result" in msg
    finally:
        ws.close()


# ---------------------------------------------------------------------------------------------------------------
# Inbound limits and misuse


@async_test(timeout=30)
async def test_decompression_bomb_is_refused_with_1009(server):
    by = await Bystander.create(server)
    victim = await Client.connect(server, compression="deflate")
    try:
        # 8 MiB of one character: a few KiB compressed, far under --max-message-size on the wire.
        await victim.conn.send('{"id":1,"method":"heartbeat","pad":"' + "a" * (8 << 20) + '"}')
        code, _ = await victim.wait_closed()
        assert code == 1009
        await by.check()
    finally:
        await by.close()


def test_inflated_size_at_the_limit_is_fine(server):
    ws = DeflateWS(server.port, extra_headers=OFFER)
    try:
        req = {"id": 3, "method": "heartbeat", "pad": ""}
        req["pad"] = "z" * (LIMIT - len(json.dumps(req)))
        text = json.dumps(req)
        assert len(text) == LIMIT
        ws.send_compressed(text)
        _, raw = ws.recv_json()
        assert json.loads(raw)["requestId"] == 3
        ws.send_compressed(text + " ")  # one byte more
        assert ws.wait_close()[0] == 1009
    finally:
        ws.close()


@pytest.mark.parametrize("name,frames,code", [
    ("rsv1_on_continuation", [(OP_TEXT, b"{", False, 0), (OP_CONT, b"}", True, 4)], 1002),
    ("rsv1_on_ping", [(OP_PING, b"", True, 4)], 1002),
    ("rsv2", [(OP_TEXT, b"{}", True, 2)], 1002),
    ("not_deflate", [(OP_TEXT, b"\x07garbage", True, 4)], 1002),
    ("invalid_utf8_inside", [(OP_TEXT, deflate(b'"\xff\xfe"'), True, 4)], 1007),
])
def test_compressed_misuse_closes(server, name, frames, code):
    ws = DeflateWS(server.port, extra_headers=OFFER)
    by = RawWS(server.port)
    try:
        for op, data, fin, rsv in frames:
            ws.send_frame(op, data, fin=fin, rsv=rsv)
        assert ws.wait_close()[0] == code
        assert "result" in by.request("heartbeat")
    finally:
        ws.close()
        by.close()


def test_rsv1_without_negotiation_is_a_protocol_error(server):
    ws = RawWS(server.port)
    try:
        ws.send_frame(OP_TEXT, deflate(b'{"id":1,"method":"heartbeat"}'), rsv=4)
        assert ws.wait_close()[0] == 1002
    finally:
        ws.close()
