"""Shared helpers for the black-box integration suite.

The suite drives the real binary (build/broadcaster) over real sockets on 127.0.0.1. It needs only Debian
packages: run it with `/usr/bin/python3 -m pytest -q tests/integration`.

Pieces:
- `Server`: starts the binary with `--port 0 --host 127.0.0.1`, drains its stdout/stderr in threads, parses the
  `listening on HOST:PORT` line, stops it on teardown.
- `make_token`: HS256 (or deliberately broken) JWTs built with the standard library.
- `Client`: a thin asyncio wrapper over a `websockets` connection that knows the request/response protocol.
- `RawWS` / `http_raw`: plain-socket clients for everything a well-behaved library refuses to do (unmasked or
  binary frames, invalid UTF-8, never reading, bad handshakes).
- `async_test`: turns an `async def` test into a plain one, bounded by a hard timeout (no pytest-asyncio or
  pytest-timeout here).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import pytest
import requests
import websockets

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("BROADCASTER_BIN", ROOT / "build" / "broadcaster"))

SECRET = "integration-test-secret-0123456789abcdef"
API_KEY = "test-key-one"
API_KEY_2 = "test-key-two"
BASE = "/broadcaster"
AUD = "broadcaster"

# Every configuration variable the server reads: scrubbed from the environment we pass, so that the calling
# shell cannot change what a test sees.
CONFIG_ENV = ("PORT", "HOST", "JWT_SECRET", "API_KEYS", "BASE_PATH", "THREADS", "MAX_MESSAGE_SIZE",
              "AUTH_TIMEOUT", "IDLE_TIMEOUT", "MAX_CONNECTIONS", "MAX_SUBSCRIPTIONS", "OUTBOUND_BUFFER",
              "SLOW_CONSUMER_POLICY", "JWT_LEEWAY", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "DEV", "REDIS_URL",
              "BROKER", "HANDSHAKE_TIMEOUT", "KEEPALIVE_TIMEOUT", "ALLOWED_ORIGINS", "CONSOLE", "CONSOLE_DIR", "LOG_FORMAT", "INBOX_LIMIT",
              "HISTORY_SIZE", "HISTORY_TTL", "HISTORY_MEMORY_LIMIT", "PRESENCE", "PRESENCE_TTL",
              "PRESENCE_MAX_CLIENTS", "COMPRESSION", "COMPRESSION_MIN_SIZE", "COMPRESSION_LEVEL",
              "REDIS_WAIT_REPLICAS", "REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE",
              "REDIS_TLS_SERVER_NAME", "REDIS_TLS_INSECURE_SKIP_VERIFY", "REDIS_SENTINEL_USERNAME",
              "REDIS_SENTINEL_PASSWORD")

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LISTEN_RE = re.compile(r"listening on ([0-9.]+|\[[0-9a-fA-F:]+\]|[\w.-]+):(\d+)")

# ---------------------------------------------------------------------------------------------------------------
# Server process


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _drain(stream, sink: list, cond: threading.Condition):
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        with cond:
            sink.append(line)
            cond.notify_all()
    with cond:
        sink.append(None)  # EOF marker
        cond.notify_all()


class Server:
    """One broadcaster process. `args` are extra flags; JWT secret and API keys come from the environment."""

    def __init__(self, *args: str, env: dict | None = None, secrets: bool = True, fixed_args: bool = True):
        if not BINARY.exists():
            pytest.fail(f"server binary {BINARY} does not exist (build it: ninja -C build broadcaster)")
        extra = {"JWT_SECRET": SECRET, "API_KEYS": f"{API_KEY},{API_KEY_2}"} if secrets else {}
        extra.update(env or {})
        argv = [str(BINARY)]
        if fixed_args:
            argv += ["--port", "0", "--host", "127.0.0.1"]
        argv += list(args)
        self.argv = argv
        self.cond = threading.Condition()
        self.out: list = []
        self.err: list = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=clean_env(**extra))
        self._threads = [threading.Thread(target=_drain, args=(self.proc.stdout, self.out, self.cond), daemon=True),
                         threading.Thread(target=_drain, args=(self.proc.stderr, self.err, self.cond), daemon=True)]
        for t in self._threads:
            t.start()
        self.host = None
        self.port = None
        self.listen_stream = None

    # -- start-up -------------------------------------------------------------------------------------------
    def wait_listening(self, timeout: float = 10.0, base: str = BASE) -> "Server":
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for name, lines in (("stdout", self.out), ("stderr", self.err)):
                    for line in lines:
                        m = line and LISTEN_RE.search(line)
                        if m:
                            self.host, self.port, self.listen_stream = m.group(1).strip("[]"), int(m.group(2)), name
                            break
                    if self.port:
                        break
                if self.port:
                    break
                if self.proc.poll() is not None and None in self.out and None in self.err:
                    raise AssertionError(f"server exited with {self.proc.returncode} before listening:\n"
                                         f"{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        if not self.port:
            self.stop()  # outside the lock: the drain threads need it to finish
            raise AssertionError(f"no 'listening on HOST:PORT' line within {timeout}s:\n{self.output()}")
        self._wait_health(deadline, base)
        return self

    def _wait_health(self, deadline: float, base: str):
        last = None
        while time.monotonic() < deadline:
            try:
                r = requests.get(self.url("/health", base), timeout=2)
                if r.status_code == 200:
                    return
                last = r.status_code
            except requests.RequestException as e:  # not yet accepting
                last = e
            time.sleep(0.05)
        raise AssertionError(f"health never became 200 (last: {last})\n{self.output()}")

    # -- addresses ------------------------------------------------------------------------------------------
    def url(self, path: str, base: str = BASE) -> str:
        return f"http://127.0.0.1:{self.port}{base}{path}"

    def ws_url(self, base: str = BASE) -> str:
        return f"ws://127.0.0.1:{self.port}{base}/websocket"

    # -- teardown -------------------------------------------------------------------------------------------
    def output(self) -> str:
        with self.cond:
            out = "\n".join(l for l in self.out if l is not None)
            err = "\n".join(l for l in self.err if l is not None)
        return f"--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(2)


def start_server(*args: str, **kw) -> Server:
    return Server(*args, **kw).wait_listening()


def server_fixture(*args: str, **kw):
    """A module-scoped fixture running one server with the given flags."""

    @pytest.fixture(scope="module")
    def _fixture():
        srv = start_server(*args, **kw)
        yield srv
        crashed = not srv.alive()
        srv.stop()
        if crashed:
            pytest.fail(f"server died during the module (exit {srv.proc.returncode}):\n{srv.output()}")

    return _fixture


# The default server most modules share.
server = server_fixture("--threads", "2")


# ---------------------------------------------------------------------------------------------------------------
# Tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


DROP = object()  # pass as a claim value to remove that claim


def make_token(*, secret: str = SECRET, alg: str = "HS256", sign: str | None = "HS256", header: dict | None = None,
               now: float | None = None, **claims) -> str:
    """An HS256 JWT with sane defaults. `sign` chooses the real signature (HS256, HS512, or None for empty);
    `alg` is what the header claims. Claims set to DROP are removed."""
    now = int(time.time()) if now is None else now
    body = {"sub": "user-1", "aud": AUD, "iat": now, "exp": now + 3600,
            "authorizedChannels": ["news"], "scope": ["subscribe", "publish"]}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not DROP}
    hdr = {"alg": alg, "typ": "JWT"} if header is None else header
    signing_input = f"{b64url(json.dumps(hdr).encode())}.{b64url(json.dumps(body).encode())}"
    if sign is None:
        sig = ""
    else:
        digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[sign]
        sig = b64url(hmac.new(secret.encode(), signing_input.encode(), digest).digest())
    return f"{signing_input}.{sig}"


# ---------------------------------------------------------------------------------------------------------------
# Names

_counter = itertools.count(1)


def chan(prefix: str = "t") -> str:
    """A channel name unique to this run, so tests sharing a server never see each other's messages."""
    return f"{prefix}{next(_counter)}:{uuid.uuid4().hex[:10]}"


def parse_ts(ts: str) -> dt.datetime:
    assert isinstance(ts, str) and TIMESTAMP_RE.match(ts), f"not an RFC 3339 UTC millisecond timestamp: {ts!r}"
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def assert_recent(ts: str, slack: float = 5.0):
    when = parse_ts(ts)
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - when).total_seconds()) < slack, f"timestamp {ts} is not close to now ({now.isoformat()})"


# ---------------------------------------------------------------------------------------------------------------
# Async test runner


def async_test(timeout: float = 20.0):
    """Decorator: run an async test with asyncio.run under a hard time limit."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            async def bounded():
                return await asyncio.wait_for(fn(*args, **kwargs), timeout)

            return asyncio.run(bounded())

        return wrapper

    return deco


# ---------------------------------------------------------------------------------------------------------------
# WebSocket client (websockets library)

NO = object()  # "leave this field out of the request"


class Client:
    """A protocol-aware client. Broadcasts that arrive while waiting for a reply are kept for next_broadcast()."""

    def __init__(self, conn):
        self.conn = conn
        self.broadcasts: deque = deque()
        self._ids = itertools.count(1000)

    @classmethod
    async def connect(cls, srv: Server, token: str | None = None, *, base: str = BASE, **kw) -> "Client":
        opts = dict(open_timeout=5, close_timeout=2, ping_interval=None, max_size=None, compression=None)
        opts.update(kw)
        conn = await websockets.connect(srv.ws_url(base), **opts)
        c = cls(conn)
        if token is not None:
            await c.auth(token)
        return c

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, msg):
        await self.conn.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    async def recv(self, timeout: float = 5.0) -> dict:
        """The next frame from the wire, parsed (ignores the broadcast stash)."""
        try:
            raw = await asyncio.wait_for(self.conn.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no frame within {timeout}s") from None
        assert isinstance(raw, str), f"server sent a binary frame: {raw[:100]!r}"
        try:
            msg = strict_json(raw)
        except ValueError as e:
            raise AssertionError(f"server sent invalid JSON ({e}): {raw[:300]!r}") from None
        assert isinstance(msg, dict), f"frame is not a JSON object: {raw[:200]}"
        return msg

    async def request(self, method, params=NO, id=NO, timeout: float = 5.0) -> dict:
        """Send a request and return its reply (the first non-broadcast frame, which must carry our id)."""
        if id is NO:
            id = self.next_id()
        req = {"id": id, "method": method}
        if params is not NO:
            req["params"] = params
        await self.send(req)
        return await self.reply(id, timeout)

    async def reply(self, id, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.05, deadline - time.monotonic()))
            if msg.get("method") == "broadcast":
                self.broadcasts.append(msg)
                continue
            assert msg.get("requestId") == id, f"expected the reply to request {id!r}, got {msg}"
            assert ("result" in msg) != ("error" in msg), f"reply must have exactly one of result/error: {msg}"
            return msg

    async def ok(self, method, params=NO, **kw) -> dict:
        msg = await self.request(method, params, **kw)
        assert "result" in msg, f"{method} {params} failed: {msg}"
        return msg["result"]

    async def err(self, method, params=NO, code: str | tuple | None = None, **kw) -> dict:
        msg = await self.request(method, params, **kw)
        assert "error" in msg, f"{method} {params} should have failed with {code}, got {msg}"
        check_error(msg["error"], code)
        return msg["error"]

    async def auth(self, token: str) -> dict:
        res = await self.ok("auth", {"token": token})
        assert res == {"success": True}, res
        return res

    async def subscribe(self, channel: str, **extra) -> dict:
        res = await self.ok("subscribe", {"channel": channel, **extra})
        assert isinstance(res.get("subscriptionId"), str) and res["subscriptionId"], res  # PROTOCOL: a string
        return res

    async def publish(self, channel: str, payload=None, event: str = "ev") -> dict:
        return await self.ok("publish", {"channel": channel, "event": event, "payload": payload})

    async def next_broadcast(self, timeout: float = 5.0) -> dict:
        if self.broadcasts:
            msg = self.broadcasts.popleft()
        else:
            msg = await self.recv(timeout)
        assert msg.get("method") == "broadcast", f"expected a broadcast, got {msg}"
        assert isinstance(msg.get("params"), dict), msg
        return msg["params"]

    async def quiet(self, timeout: float = 5.0):
        """Prove nothing is pending: a heartbeat's reply must be the very next frame."""
        assert not self.broadcasts, f"unexpected broadcasts: {list(self.broadcasts)}"
        id = self.next_id()
        await self.send({"id": id, "method": "heartbeat"})
        msg = await self.recv(timeout)
        assert msg.get("requestId") == id and "result" in msg, f"expected only the heartbeat reply, got {msg}"

    async def alive(self):
        res = await self.ok("heartbeat")
        parse_ts(res["timestamp"])

    async def wait_closed(self, timeout: float = 5.0):
        """Wait for the server to close; returns (code, reason)."""
        try:
            await asyncio.wait_for(self.conn.wait_closed(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"connection not closed within {timeout}s") from None
        return self.conn.close_code, self.conn.close_reason

    async def close(self):
        await self.conn.close()


def same_json(a, b) -> bool:
    """JSON value equality: numbers compare by value (2 == 2.0), but booleans are not numbers."""
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if num(a) and num(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity and anything else outside RFC 8259."""
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def check_error(error, code):
    assert isinstance(error, dict), f"error must be an object: {error!r}"
    assert isinstance(error.get("code"), str), f"error.code missing: {error}"
    assert isinstance(error.get("message"), str) and error["message"], f"error.message missing or empty: {error}"
    if code is not None:
        codes = (code,) if isinstance(code, str) else code
        assert error["code"] in codes, f"expected error code {codes}, got {error}"


# ---------------------------------------------------------------------------------------------------------------
# REST


def rest_publish(srv: Server, channel, event="ev", payload=None, *, key: str | None = API_KEY,
                 body=NO, headers: dict | None = None, timeout: float = 5.0) -> requests.Response:
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    if body is NO:
        body = json.dumps({"channel": channel, "event": event, "payload": payload})
    return requests.post(srv.url("/publish"), data=body, headers=h, timeout=timeout)


def rest_ok(srv: Server, channel, event="ev", payload=None) -> dict:
    r = rest_publish(srv, channel, event, payload)
    assert r.status_code == 200, f"REST publish failed: {r.status_code} {r.text}"
    res = r.json()
    assert set(res) >= {"id", "createTime"}, res
    return res


def check_rest_error(r: requests.Response, status: int, code: str | None):
    assert r.status_code == status, f"expected HTTP {status}, got {r.status_code}: {r.text[:300]}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {r.text[:300]!r}") from None
    assert isinstance(body, dict) and "error" in body, f"error body must be {{'error': ...}}: {body}"
    check_error(body["error"], code)
    return body["error"]


# ---------------------------------------------------------------------------------------------------------------
# Raw sockets


def http_raw(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read one HTTP response; returns (status, lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        return read_http_response(s)


def read_http_response(s: socket.socket, buf: bytes = b"") -> tuple[int, dict, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a full HTTP response: {buf[:300]!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:n] if "content-length" in headers else body


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The peer closed the TCP connection (EOF or reset)."""


class RawWS:
    """A hand-rolled WebSocket client over a plain socket."""

    def __init__(self, port: int, path: str = BASE + "/websocket", *, rcvbuf: int | None = None,
                 timeout: float = 5.0, handshake: bool = True, extra_headers: str = ""):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.port = port
        self.path = path
        self.status = None
        self.headers: dict = {}
        self.body = b""
        self._ids = itertools.count(5000)
        if handshake:
            self.handshake(extra_headers)

    def handshake(self, extra_headers: str = "", expect: int | None = 101):
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"{extra_headers}\r\n")
        self.sock.sendall(req.encode())
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 101:
            n = int(self.headers.get("content-length", "0") or 0)
            self.body = self._read_exact(n) if n else b""
        if expect is not None:
            assert self.status == expect, f"handshake: expected {expect}, got {self.status} {self.headers} {self.body!r}"
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                      .digest()).decode()
            assert self.headers.get("sec-websocket-accept") == accept, f"bad Sec-WebSocket-Accept: {self.headers}"
        return self.status

    # -- low level ------------------------------------------------------------------------------------------
    def _fill(self):
        try:
            chunk = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e)) from None
        if not chunk:
            raise Closed("eof")
        self.buf += chunk

    def _read_until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(sep)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, key)
            head += key
        self.sock.sendall(head + payload)

    def recv_frame(self, timeout: float | None = None) -> tuple[bool, int, bytes]:
        if timeout is not None:
            self.sock.settimeout(timeout)
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        assert not (b1 & 0x80), "server frames must not be masked"
        return bool(b0 & 0x80), b0 & 0x0F, self._read_exact(n)

    # -- messages -------------------------------------------------------------------------------------------
    def send_text(self, text: str | bytes):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def recv_msg(self, timeout: float = 5.0, *, answer_pings: bool = True) -> dict:
        """Next data message as JSON; control frames are handled (pings answered); a close raises."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no message")
            fin, op, data = self.recv_frame(left)
            if op == OP_PING:
                if answer_pings:
                    self.send_frame(OP_PONG, data)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                raise Closed(f"close frame {parse_close(data)}")
            parts.append(data)
            if fin:
                return json.loads(b"".join(parts).decode())

    def request(self, method, params=NO, timeout: float = 5.0) -> dict:
        id = next(self._ids)
        req = {"id": id, "method": method}
        if params is not NO:
            req["params"] = params
        self.send_json(req)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv_msg(max(0.05, deadline - time.monotonic()))
            if msg.get("requestId") == id:
                return msg

    def wait_close(self, timeout: float = 5.0) -> tuple:
        """Read until the server closes. Returns (code, reason) of its close frame, or ('eof', None) when the
        TCP connection ended without one. Data frames and pings before it are skipped."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"server did not close within {timeout}s")
                try:
                    _, op, data = self.recv_frame(left)
                except socket.timeout:
                    raise AssertionError(f"server did not close within {timeout}s") from None
                if op == OP_CLOSE:
                    return parse_close(data)
        except Closed:
            return ("eof", None)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def parse_close(data: bytes) -> tuple:
    if len(data) < 2:
        return (None, "")
    return (struct.unpack("!H", data[:2])[0], data[2:].decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------------------------
# Bystander: a second connection that must stay undisturbed by another connection's bad input.


class Bystander:
    def __init__(self, srv: Server, client: Client, channel: str):
        self.srv, self.client, self.channel = srv, client, channel

    @classmethod
    async def create(cls, srv: Server) -> "Bystander":
        ch = chan("bys")
        c = await Client.connect(srv, make_token(sub="bystander", authorizedChannels=[ch]))
        await c.subscribe(ch)
        return cls(srv, c, ch)

    async def check(self):
        """The bystander still answers and still receives broadcasts."""
        await self.client.alive()
        res = await asyncio.to_thread(rest_ok, self.srv, self.channel, "check", {"ok": True})
        b = await self.client.next_broadcast()
        assert b["id"] == res["id"] and b["payload"] == {"ok": True}, b
        await self.client.quiet()
        assert self.srv.alive(), "server process died"

    async def close(self):
        await self.client.close()
