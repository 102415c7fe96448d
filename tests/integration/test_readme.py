"""The README's token examples work as printed: the `broadcaster token` line, the Python and Node.js snippets
that mint a token without a library, and the one with the Python package (clients/python), each give a token
that a server with the same secret accepts."""

import base64
import json
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import BINARY, ROOT, SECRET, Client, async_test, clean_env, server  # noqa: F401

README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    found = re.findall(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)
    assert found, f"no ```{lang} block in README.md"
    return found


def block(lang: str) -> str:
    return blocks(lang)[0]


def token_from(argv: list[str], **env: str) -> str:
    p = subprocess.run(argv, env=clean_env(JWT_SECRET=SECRET, **env), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=20)
    assert p.returncode == 0, p
    token = p.stdout.decode().strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token), token
    return token


def readme_token_command() -> list[str]:
    lines = [l for b in blocks("sh") for l in b.splitlines() if l.startswith("build/broadcaster token ")]
    assert lines, "README.md has no `build/broadcaster token` line"
    line = lines[0]
    argv = shlex.split(line)
    return [str(BINARY), *argv[1:]]


async def can_subscribe(srv, token: str, channel: str):
    c = await Client.connect(srv, token)
    await c.subscribe(channel)
    await c.close()


@async_test(timeout=30)
async def test_the_token_subcommand_line(server):
    await can_subscribe(server, token_from(readme_token_command()), "chat:lobby")


@async_test(timeout=30)
async def test_the_python_snippet(server):
    await can_subscribe(server, token_from(["/usr/bin/python3", "-c", block("python")]), "news")


@async_test(timeout=30)
async def test_the_python_package_snippet(server):
    package = blocks("python")[1]
    assert "broadcaster_client" in package, "the second ```python block should use clients/python"
    token = token_from(["/usr/bin/python3", "-c", package], PYTHONPATH=str(ROOT / "clients" / "python"))
    await can_subscribe(server, token, "news")
    by_hand = token_from(["/usr/bin/python3", "-c", block("python")])
    parts = [t.split(".")[1] for t in (token, by_hand)]
    claims = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts]
    for c in claims:
        c["exp"] -= c.pop("iat")
    assert claims[0] == claims[1], "the README says the package gives the same claims as the snippet above it"


@async_test(timeout=30)
async def test_the_node_snippet(server):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/install-deps.sh installs it)")
    await can_subscribe(server, token_from([node, "-e", block("js")]), "news")
