"""`broadcaster token` and `--version`: a token minted by the binary itself is accepted by a server reading the
same secret (flag, JWT_SECRET or the config file), and lets its holder subscribe and publish as its claims say."""

import base64
import json
import re
import subprocess

import pytest

from conftest import (BINARY, SECRET, Client, async_test, chan, clean_env, rest_ok, start_server)


def mint(*args, env=None):
    if not BINARY.exists():
        pytest.fail(f"server binary {BINARY} does not exist")
    p = subprocess.run([str(BINARY), "token", *args], env=clean_env(**(env or {})), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_version_prints_the_version():
    p = subprocess.run([str(BINARY), "--version"], env=clean_env(), capture_output=True, timeout=10)
    assert p.returncode == 0, p
    assert re.fullmatch(r"\d+\.\d+\.\d+", p.stdout.decode().strip()), p.stdout


@async_test(timeout=30)
async def test_a_minted_token_subscribes_and_publishes_on_a_real_server():
    room = chan("chat:")
    code, out, err = mint("--sub", "alice", "--channels", f"news,{room}", "--scope", "subscribe,publish",
                          "--ttl", "1h", "--info", '{"name":"Alice"}', env={"JWT_SECRET": SECRET})
    assert code == 0, err
    token = out.strip()
    assert out.endswith("\n") and "\n" not in token
    c = claims(token)
    assert c["sub"] == "alice" and c["aud"] == "broadcaster" and c["exp"] - c["iat"] == 3600
    assert c["authorizedChannels"] == ["news", room] and c["scope"] == ["subscribe", "publish"]
    assert c["info"] == {"name": "Alice"}

    srv = start_server()  # JWT_SECRET=SECRET, as the token above
    try:
        alice = await Client.connect(srv, token)
        await alice.subscribe(room)
        rest_ok(srv, room, "hello", {"text": "hi"})
        got = await alice.next_broadcast()
        assert got["channel"] == room and got["payload"] == {"text": "hi"}
        await alice.publish(room, {"text": "from alice"})
        got = await alice.next_broadcast()
        assert got["payload"] == {"text": "from alice"}
        await alice.err("subscribe", {"channel": chan("other:")}, code="PermissionDenied")
        await alice.close()
    finally:
        srv.stop()


@async_test(timeout=30)
async def test_the_secret_comes_from_the_config_file_like_the_servers(tmp_path):
    conf = tmp_path / "broadcaster.toml"
    conf.write_text(f'jwt_secret = "{SECRET}"\napi_keys = ["a-long-enough-api-key-0123"]\n')
    code, out, err = mint("--sub", "bob", "--channels", "news", "--config", str(conf))
    assert code == 0, err
    srv = start_server("--config", str(conf), secrets=False)
    try:
        bob = await Client.connect(srv, out.strip())
        await bob.subscribe("news")
        await bob.close()
    finally:
        srv.stop()
    # A token signed with another secret is refused by the same server: the test above can fail.
    code, other, err = mint("--sub", "bob", "--channels", "news", "--jwt-secret", "x" * 40)
    assert code == 0, err
    srv = start_server("--config", str(conf), secrets=False)
    try:
        bob = await Client.connect(srv)
        await bob.err("auth", {"token": other.strip()}, code="Unauthenticated")
    finally:
        srv.stop()


def test_without_a_secret_it_exits_2_naming_the_setting():
    code, out, err = mint("--sub", "alice", "--channels", "news")
    assert code == 2 and out == ""
    assert "JWT_SECRET" in err and len(err.strip().splitlines()) == 1, err


def test_help_mentions_the_token_subcommand():
    p = subprocess.run([str(BINARY), "--help"], env=clean_env(), capture_output=True, timeout=10)
    assert p.returncode == 0 and b"broadcaster token" in p.stdout + p.stderr
