"""Weak secrets: a JWT secret under 32 bytes or an API key under 16 characters is warned about loudly at start-up
(whatever the log level) and in GET {BASE}/info, never quoted, and the node still starts and serves."""

import requests

from conftest import Client, Server, async_test, make_token

STRONG_SECRET = "s" * 32
STRONG_KEY = "k" * 16


def start(secret: str, keys: str, *args: str) -> Server:
    return Server(*args, env={"JWT_SECRET": secret, "API_KEYS": keys}, secrets=False).wait_listening()


def info(srv: Server, key: str) -> dict:
    r = requests.get(srv.url("/info"), headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def weak_lines(srv: Server) -> list[str]:
    with srv.cond:
        return [l for l in srv.out + srv.err if l and "WEAK SECRET" in l]


@async_test(timeout=30)
async def test_weak_secret_and_key_warn_at_start_and_in_info_but_the_node_serves():
    secret, short_key = "hunter2-secret", "shortkey"
    srv = start(secret, f"{STRONG_KEY},{short_key}", "--log-level", "error")
    try:
        lines = weak_lines(srv)  # logged before the listening line that wait_listening() saw
        assert any("JWT_SECRET is shorter than 32 bytes" in l for l in lines), srv.output()
        assert any("API key 2 of 2 is shorter than 16 characters" in l for l in lines), srv.output()
        assert not any("API key 1" in l for l in lines), lines
        out = srv.output()
        assert secret not in out and short_key not in out, "a secret was logged"

        warnings = info(srv, STRONG_KEY)["warnings"]
        assert len(warnings) == 2 and "JWT_SECRET" in warnings[0] and "API key 2 of 2" in warnings[1], warnings
        assert all(secret not in w and short_key not in w for w in warnings)

        c = await Client.connect(srv, make_token(secret=secret))  # it still works with what it was given
        await c.subscribe("news")
        await c.close()
        r = requests.post(srv.url("/publish"), json={"channel": "news", "event": "e", "payload": 1},
                          headers={"Authorization": f"Bearer {short_key}"}, timeout=5)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


def test_strong_secrets_give_no_warning():
    srv = start(STRONG_SECRET, STRONG_KEY)
    try:
        assert weak_lines(srv) == [], srv.output()
        assert info(srv, STRONG_KEY)["warnings"] == []
    finally:
        srv.stop()
