"""/metrics for operators (issue 19): the whole exposition in the strict text format, broadcaster_build_info,
and the standard process_* series measured on the real process: descriptors follow WebSocket connections, the
start time is when the test started the binary, the descriptor limit is the one the server raised itself to."""

from __future__ import annotations

import asyncio
import re
import resource
import subprocess
import time

import pytest
import requests

from conftest import BINARY, Client, async_test, clean_env, start_server
from prometheus_text import Family, parse

PROCESS_FAMILIES = {"process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
                    "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge",
                    "process_max_fds": "gauge", "process_start_time_seconds": "gauge"}


@pytest.fixture(scope="module")
def node():
    before = time.time()
    srv = start_server("--threads", "2")
    srv.started_between = (before, time.time())
    yield srv
    crashed = not srv.alive()
    srv.stop()
    if crashed:
        pytest.fail(f"server died during the module (exit {srv.proc.returncode}):\n{srv.output()}")


def scrape(srv, session: requests.Session | None = None) -> dict[str, Family]:
    r = (session or requests).get(srv.url("/metrics"), timeout=5)
    assert r.status_code == 200, r.status_code
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    return parse(r.text)


def gauge(families: dict[str, Family], name: str) -> float:
    return families[name].value()


def test_the_exposition_is_strictly_valid_and_holds_the_operator_series(node):
    m = scrape(node)
    for name, kind in PROCESS_FAMILIES.items():
        assert name in m, f"{name} missing"
        assert m[name].type == kind, (name, m[name].type)
        assert m[name].help, f"{name} has no # HELP"
        assert list(m[name].samples) == [(name, ())], f"{name}: one unlabelled sample, got {m[name].samples}"
    assert m["broadcaster_build_info"].type == "gauge"
    assert all(f.help for f in m.values()), [n for n, f in m.items() if not f.help]


def test_build_info_names_the_version_the_binary_prints_the_commit_and_the_broker(node):
    version = subprocess.run([str(BINARY), "--version"], env=clean_env(), capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
    info = scrape(node)["broadcaster_build_info"]
    (labels,) = info.label_sets()
    assert set(labels) == {"version", "commit", "broker"}, labels
    assert labels["version"] == version, (labels, version)
    assert labels["broker"] == "memory"
    assert re.fullmatch(r"[A-Za-z0-9._+-]+", labels["commit"]), labels  # git, BROADCASTER_COMMIT or "unknown"
    assert info.value(**labels) == 1


def test_start_time_is_when_the_binary_was_started(node):
    start = gauge(scrape(node), "process_start_time_seconds")
    before, after = node.started_between
    # btime in /proc/stat is in whole seconds (truncated), the start offset in 1/100 s.
    assert before - 1.5 <= start <= after + 0.5, (before, start, after)


def test_memory_cpu_and_limits_are_sane(node):
    m = scrape(node)
    rss, vsz = gauge(m, "process_resident_memory_bytes"), gauge(m, "process_virtual_memory_bytes")
    assert 1 << 20 < rss <= vsz, (rss, vsz)
    assert rss < 4 << 30, rss  # an idle test node is nowhere near 4 GiB
    cpu = gauge(m, "process_cpu_seconds_total")
    assert 0 <= cpu < 600, cpu
    # At start the server raises its soft descriptor limit to the hard one, which it inherited from us.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert gauge(m, "process_max_fds") == (hard if hard != resource.RLIM_INFINITY else soft)
    assert 0 < gauge(m, "process_open_fds") < gauge(m, "process_max_fds")
    for _ in range(20):
        scrape(node)  # the scrapes themselves cost CPU: the counter never goes back
    assert gauge(scrape(node), "process_cpu_seconds_total") >= cpu


def wait_for(srv, session, pred, what: str, timeout: float = 10.0) -> dict[str, Family]:
    """Scrape until pred(families) holds: descriptors close after the client's side does, with no event to
    await from out here."""
    deadline = time.monotonic() + timeout
    while not pred(m := scrape(srv, session)):
        assert time.monotonic() < deadline, f"{what} within {timeout}s: open_fds {gauge(m, 'process_open_fds')}"
        time.sleep(0.02)
    return m


@async_test(timeout=60)
async def test_open_fds_follow_fifty_websocket_connections(node):
    # One kept-alive connection for every scrape, so that the scrapes themselves hold a constant one descriptor.
    with requests.Session() as session:
        base = await asyncio.to_thread(scrape, node, session)
        fds0 = gauge(base, "process_open_fds")
        clients = [await Client.connect(node) for _ in range(50)]
        # Each handshake is complete: the server holds the 50 sockets now.
        now = await asyncio.to_thread(scrape, node, session)
        assert gauge(now, "broadcaster_connections") == gauge(base, "broadcaster_connections") + 50
        assert gauge(now, "process_open_fds") >= fds0 + 50, (fds0, gauge(now, "process_open_fds"))
        assert gauge(now, "process_open_fds") <= fds0 + 50 + 5, "about one descriptor per connection"
        for c in clients:
            await c.close()
        await asyncio.to_thread(wait_for, node, session, lambda m: gauge(m, "process_open_fds") <= fds0,
                                "descriptors back to where they were")


@pytest.mark.parametrize("text", [
    "# TYPE a counter\n# TYPE a counter\na 1\n",                      # typed twice
    "a 1\n# TYPE a counter\n",                                        # sample before # TYPE
    "# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 1\n",  # a's samples split
    "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",                    # series twice
    "# TYPE a gauge\na{x=1} 1\n",                                     # unquoted label value
    "# TYPE a gauge\na one\n",                                        # not a number
    "# TYPE a gauge\n# a comment\na 1\n",                             # neither HELP nor TYPE
    "# TYPE a gauge\na 1",                                            # no final newline
    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  # not cumulative
    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
])
def test_the_reader_refuses_what_prometheus_would_not_take_as_meant(text):
    with pytest.raises(AssertionError):
        parse(text)
