"""The history and presence settings (HISTORY_SIZE, HISTORY_TTL, HISTORY_MEMORY_LIMIT, PRESENCE, PRESENCE_TTL) and the
config file's [[channels]] rules: each spelling (flag, environment, file), the defaults, the bounds, the rule errors,
and --print-config printing a file that starts the server again."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

import pytest

from conftest import API_KEY, BINARY, SECRET, Server, clean_env

SETTINGS = {  # key: (default, a good value as a flag/env string, the same value as TOML)
    "history_size": (0, "25", 25),
    "history_ttl": (300, "42", 42),
    "history_memory_limit": (268435456, "1048576", 1048576),
    "presence": (False, "true", True),
    "presence_ttl": (60, "9", 9),
    "presence_max_clients": (1000, "7", 7),
}
ENV = [k.upper() for k in SETTINGS] + ["CONFIG"]
SECRETS = {"JWT_SECRET": SECRET, "API_KEYS": API_KEY}


@pytest.fixture(scope="module", autouse=True)
def _scrub_env():
    saved = {k: os.environ.pop(k) for k in ENV if k in os.environ}
    yield
    os.environ.update(saved)


def run_binary(args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), *args], env=clean_env(**SECRETS, **(env or {})), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=10, text=True)


def print_config(args, env=None) -> tuple[dict, dict, str]:
    p = run_binary([*args, "--print-config"], env)
    assert p.returncode == 0, f"--print-config exited {p.returncode}: {p.stderr}"
    sources = dict(re.findall(r"^(\w+) = .*#\s*(\w+)\s*$", p.stdout, re.M))
    return tomllib.loads(p.stdout), sources, p.stdout


def assert_rejected(args, names, env=None):
    p = run_binary(["--port", "0", "--host", "127.0.0.1", *args], env)
    assert p.returncode == 2, f"exit {p.returncode}: {p.stderr}"
    assert "listening on" not in p.stdout
    first = p.stderr.splitlines()[0]
    for name in names:
        assert name in first, f"{name!r} not named in {first!r}"
    return p.stderr


def test_defaults():
    cfg, src, out = print_config([])
    for key, (default, _, _) in SETTINGS.items():
        assert (cfg[key], src[key]) == (default, "default"), key
    assert "channels" not in cfg and "[[channels]]" not in out


@pytest.mark.parametrize("key", SETTINGS)
def test_each_setting_from_flag_env_and_file(key, tmp_path):
    _, text, value = SETTINGS[key]
    flag, env = "--" + key.replace("_", "-"), key.upper()
    cfg, src, _ = print_config([flag, text] if key != "presence" else [flag])
    assert (cfg[key], src[key]) == (value, "flag")
    cfg, src, _ = print_config([], {env: text})
    assert (cfg[key], src[key]) == (value, "env")
    f = tmp_path / "c.toml"
    f.write_text(f"{key} = {str(value).lower()}\n")
    cfg, src, _ = print_config(["--config", str(f)])
    assert (cfg[key], src[key]) == (value, "file")


def test_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("history_size = 1\nhistory_ttl = 2\npresence_ttl = 3\n")
    cfg, src, _ = print_config(["--config", str(f), "--history-size", "100"],
                               {"HISTORY_SIZE": "10", "HISTORY_TTL": "20"})
    assert (cfg["history_size"], src["history_size"]) == (100, "flag")
    assert (cfg["history_ttl"], src["history_ttl"]) == (20, "env")
    assert (cfg["presence_ttl"], src["presence_ttl"]) == (3, "file")


@pytest.mark.parametrize("flag,value", [
    ("--history-size", "1000001"), ("--history-size", "-1"), ("--history-size", "ten"),
    ("--history-ttl", "0"), ("--history-ttl", "2592001"),
    ("--history-memory-limit", "0"), ("--history-memory-limit", "1099511627777"),
    ("--history-memory-limit", "64MiB"),
    ("--presence-ttl", "0"), ("--presence-ttl", "86401"),
    ("--presence-max-clients", "0"), ("--presence-max-clients", "1000001"),
])
def test_out_of_bounds_exits_2(flag, value, tmp_path):
    assert_rejected([flag, value], [flag])
    assert_rejected([], [flag], {flag[2:].replace("-", "_").upper(): value})
    key = flag[2:].replace("-", "_")
    f = tmp_path / "c.toml"
    f.write_text(f"{key} = {value if value.lstrip('-').isdigit() else repr(value)}\n")
    assert_rejected(["--config", str(f)], [str(f), key])


def test_bad_presence_value_exits_2(tmp_path):
    assert_rejected([], ["--presence"], {"PRESENCE": "maybe"})
    f = tmp_path / "c.toml"
    f.write_text('presence = "maybe"\n')
    assert_rejected(["--config", str(f)], [str(f), "presence"])


RULES = """history_size = 10
history_ttl = 100

[[channels]]
pattern = "chat:vip:*"
history_size = 1000

[[channels]]
pattern = "chat:*"
history_size = 50
history_ttl = 30
presence = true

[[channels]]
pattern = "*:tmp"
history_size = 0
"""


def test_channel_rules_are_read_in_order_and_printed_back(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(RULES)
    cfg, _, out = print_config(["--config", str(f)])
    assert cfg["channels"] == [
        {"pattern": "chat:vip:*", "history_size": 1000},  # only the fields the rule sets
        {"pattern": "chat:*", "history_size": 50, "history_ttl": 30, "presence": True},
        {"pattern": "*:tmp", "history_size": 0},
    ], out
    assert (cfg["history_size"], cfg["history_ttl"]) == (10, 100)


@pytest.mark.parametrize("rules,names", [
    ('[[channels]]\npattern = "chat:*"\nhistroy_size = 5\n', ["rule 1", '"chat:*"', "histroy_size", "line 4"]),
    ('[[channels]]\npattern = "a"\n\n[[channels]]\nhistory_size = 5\n', ["rule 2", "pattern"]),
    ('[[channels]]\npattern = "chat.*"\n', ["rule 1", "pattern"]),
    ('[[channels]]\npattern = ""\n', ["rule 1", "pattern"]),
    ('[[channels]]\npattern = ["a"]\n', ["rule 1", "pattern"]),
    ('[[channels]]\npattern = "a"\nhistory_size = -5\n', ["rule 1", '"a"', "history_size"]),
    ('[[channels]]\npattern = "a"\nhistory_size = 2000000\n', ["rule 1", "history_size"]),
    ('[[channels]]\npattern = "a"\nhistory_ttl = 0\n', ["rule 1", "history_ttl"]),
    ('[[channels]]\npattern = "a"\nhistory_ttl = "60"\n', ["rule 1", "history_ttl"]),
    ('[[channels]]\npattern = "a"\npresence = 1\n', ["rule 1", "presence"]),
    ('[[channels]]\npattern = "a"\npresence_ttl = 5\n', ["rule 1", "presence_ttl"]),
    ('[channels]\npattern = "a"\n', ["channels", "[[channels]]"]),
    ("channels = 5\n", ["channels", "[[channels]]"]),
])
def test_bad_channel_rules_exit_2_with_one_line(rules, names, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("port = 0\n" + rules)
    err = assert_rejected(["--config", str(f)], [str(f), *names])
    assert len([l for l in err.splitlines() if l.strip()]) == 1, err


def test_rules_have_no_flag_or_environment_form():
    p = run_binary(["--channels", "x"])
    assert p.returncode == 2
    # an environment variable of that name is not a setting and changes nothing
    cfg, _, _ = print_config([], {"CHANNELS": '[{"pattern": "x"}]'})
    assert "channels" not in cfg


def test_printed_config_starts_the_server_and_prints_the_same(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(RULES + '\n[[channels]]\npattern = "presence-only"\npresence = true\n')
    _, _, printed = print_config(["--config", str(f), "--presence-ttl", "5"], {"HISTORY_MEMORY_LIMIT": "999999"})
    g = tmp_path / "printed.toml"
    g.write_text(printed)

    def without_comments(text):
        return [re.sub(r"\s*#.*$", "", l) for l in text.splitlines() if not l.startswith("#")]

    _, src, again = print_config(["--config", str(g)])
    assert without_comments(again) == without_comments(printed)
    assert src["presence_ttl"] == "file" and src["history_memory_limit"] == "file"
    # The secrets are masked in the printed file; the environment gives the real ones (conftest's Server does).
    srv = Server("--config", str(g))
    try:
        srv.wait_listening()
    finally:
        srv.stop()
