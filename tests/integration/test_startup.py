"""Start-up, configuration, --help, --dev, health."""

import pathlib
import re
import subprocess
import time

import pytest
import requests

from conftest import (API_KEY, API_KEY_2, BINARY, SECRET, Client, Server, async_test, clean_env, make_token,
                      start_server, check_rest_error)

FLAGS = ["--port", "--host", "--jwt-secret", "--api-keys", "--base-path", "--dev", "--threads", "--max-message-size",
         "--auth-timeout", "--idle-timeout", "--max-connections", "--max-subscriptions", "--outbound-buffer",
         "--slow-consumer-policy", "--jwt-leeway", "--log-level", "--shutdown-timeout"]


def run_binary(args, env, timeout=10):
    if not BINARY.exists():
        pytest.fail(f"server binary {BINARY} does not exist")
    return subprocess.run([str(BINARY), *args], env=clean_env(**env), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def test_help_lists_every_flag():
    p = run_binary(["--help"], {})
    assert p.returncode == 0, p
    text = (p.stdout + p.stderr).decode()
    missing = [f for f in FLAGS if f not in text]
    assert not missing, f"--help does not mention {missing}:\n{text}"


@pytest.mark.parametrize("missing,present", [("JWT_SECRET", {"API_KEYS": API_KEY}),
                                             ("API_KEYS", {"JWT_SECRET": SECRET})])
def test_missing_required_setting_exits_2(missing, present):
    p = run_binary(["--port", "0", "--host", "127.0.0.1"], present)
    err = p.stderr.decode()
    assert p.returncode == 2, f"exit code {p.returncode}, stderr: {err!r}"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    flag = "--" + missing.lower().replace("_", "-")
    assert missing in lines[0] or flag in lines[0], f"stderr line does not name {missing}: {lines[0]!r}"
    assert b"listening on" not in p.stdout


@pytest.mark.parametrize("args,names", [
    (["--broker", "redis", "--redis-url", "http://:hunter22@r:6379"], ["REDIS_URL", "redis://"]),
    (["--broker", "redis", "--redis-url", "redis://:hunter22@r:99999"], ["REDIS_URL", "port"]),
    (["--broker", "redis", "--redis-url", "redis://admin:hunter22@"], ["REDIS_URL", "host"]),
    (["--broker", "redis", "--redis-url", "redis://r1,,redis://:hunter22@r3"], ["REDIS_URL", "entry 2"]),
    (["--broker", "redis", "--redis-url", "redis+sentinel://:hunter22@s1:26379,s2"], ["REDIS_URL", "master name"]),
    (["--broker", "redis", "--redis-url", "redis+sentinel://:hunter22@s1:0/m"], ["REDIS_URL", "port"]),
    ({"HOST": "localhost"}, ["HOST", "localhost"]),
    ({"HOST": "300.1.1.1"}, ["HOST"]),
])
def test_bad_value_exits_2_with_one_line_before_binding(args, names):
    # Exit 2 is the one the systemd unit does not restart on: restarting cannot fix a typo in the configuration.
    env = {"JWT_SECRET": SECRET, "API_KEYS": API_KEY, "HOST": "127.0.0.1"}
    if isinstance(args, dict):
        env, args = env | args, []
    p = run_binary(["--port", "0", *args], env)
    err = p.stderr.decode()
    assert p.returncode == 2, f"exit code {p.returncode}, stderr: {err!r}"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    for name in names:
        assert name in lines[0], f"{name!r} not named in {lines[0]!r}"
    assert "hunter22" not in err + p.stdout.decode(), "the Redis password was printed"
    assert b"listening on" not in p.stdout


def test_unknown_flag_fails():
    p = run_binary(["--port", "0", "--host", "127.0.0.1", "--no-such-flag"], {"JWT_SECRET": SECRET,
                                                                             "API_KEYS": API_KEY})
    assert p.returncode != 0
    assert b"listening on" not in p.stdout


def test_listening_line_on_stdout_and_health():
    srv = start_server()
    try:
        assert srv.listen_stream == "stdout", "the 'listening on HOST:PORT' line must be printed on stdout"
        assert srv.host == "127.0.0.1"
        r = requests.get(srv.url("/health"), timeout=5)
        assert r.status_code == 200
        assert r.text.strip() == "ok"
    finally:
        srv.stop()


def test_configuration_by_environment():
    srv = Server(fixed_args=False, env={"PORT": "0", "HOST": "127.0.0.1", "BASE_PATH": "/custom",
                                        "MAX_MESSAGE_SIZE": "2000"})
    try:
        srv.wait_listening(base="/custom")
        assert srv.host == "127.0.0.1"
        r = requests.get(srv.url("/health", base="/custom"), timeout=5)
        assert r.status_code == 200 and r.text.strip() == "ok"
        assert requests.get(srv.url("/health"), timeout=5).status_code == 404, "BASE_PATH not applied"
        # API_KEYS is comma-separated: both keys work
        for key in (API_KEY, API_KEY_2):
            r = requests.post(srv.url("/publish", base="/custom"), json={"channel": "a", "event": "e", "payload": 1},
                              headers={"Authorization": f"Bearer {key}"}, timeout=5)
            assert r.status_code == 200, r.text
        # MAX_MESSAGE_SIZE is also the REST body limit
        r = requests.post(srv.url("/publish", base="/custom"),
                          json={"channel": "a", "event": "e", "payload": "x" * 3000},
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
        assert r.status_code == 413, r.status_code
    finally:
        srv.stop()


@async_test()
async def test_flags_override_environment():
    srv = Server("--base-path", "/flagged", "--jwt-secret", "flag-secret", "--api-keys", "flag-key",
                 env={"BASE_PATH": "/fromenv", "JWT_SECRET": "env-secret", "API_KEYS": "env-key"})
    try:
        srv.wait_listening(base="/flagged")

        def pub(key):
            return requests.post(srv.url("/publish", base="/flagged"),
                                 json={"channel": "a", "event": "e", "payload": 1},
                                 headers={"Authorization": f"Bearer {key}"}, timeout=5)

        assert pub("flag-key").status_code == 200
        check_rest_error(pub("env-key"), 401, "Unauthenticated")
        c = await Client.connect(srv, base="/flagged")
        await c.auth(make_token(secret="flag-secret", authorizedChannels=["a"]))
        c2 = await Client.connect(srv, base="/flagged")
        await c2.err("auth", {"token": make_token(secret="env-secret", authorizedChannels=["a"])},
                     code="Unauthenticated")
        await c.close()
        await c2.close()
    finally:
        srv.stop()


@async_test()
async def test_dev_mode_prints_working_token_and_curl():
    srv = Server("--dev", secrets=False)
    try:
        srv.wait_listening()
        deadline = time.monotonic() + 5
        # the sample token and curl command are printed around start-up; wait until both are there
        while True:
            text = "\n".join(l for l in srv.out + srv.err if l)
            jwt = re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", text)
            curl = re.search(r"curl .*", text)
            if jwt and curl or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert jwt, f"--dev printed no sample JWT:\n{srv.output()}"
        assert curl, f"--dev printed no curl command:\n{srv.output()}"
        c = await Client.connect(srv)
        await c.auth(jwt.group(0))
        await c.close()
        key = re.search(r"Bearer ([^\s'\"\\]+)", curl.group(0))
        assert key, f"the curl command carries no API key: {curl.group(0)}"
        r = requests.post(srv.url("/publish"), json={"channel": "news", "event": "e", "payload": 1},
                          headers={"Authorization": f"Bearer {key.group(1)}"}, timeout=5)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_listening_line_printed_at_quiet_log_level(how):
    """With --port 0 the listening line is the only way to learn the port: it must survive a quiet log level."""
    srv = Server("--log-level", "warn") if how == "flag" else Server(env={"LOG_LEVEL": "warn"})
    try:
        srv.wait_listening(timeout=3)
    finally:
        srv.stop()


def test_worker_threads_are_named_for_top_and_perf():
    srv = start_server("--threads", "3")
    try:
        names = sorted(comm.read_text().strip() for comm in pathlib.Path(f"/proc/{srv.proc.pid}/task").glob("*/comm"))
        workers = [n for n in names if n.startswith("bc-worker-")]
        assert workers == ["bc-worker-0", "bc-worker-1", "bc-worker-2"], names
    finally:
        srv.stop()
