"""The monitoring files operators load (issue 19): packaging/prometheus-alerts.yml passes promtool and its unit
tests, packaging/grafana-dashboard.json is a well-formed dashboard on a templated data source, and every metric
either of them queries is one a real server exports (a node on the memory broker and one on Redis, together).

promtool comes from Debian's `prometheus` package (scripts/install-deps.sh): without it these tests fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from conftest import ROOT, start_server
from prometheus_text import Family, parse, sample_names

sys.path.insert(0, str(Path(__file__).parent / "redis"))
from redis_helpers import RedisServer, start_node, stop_all  # noqa: E402

RULES = ROOT / "packaging" / "prometheus-alerts.yml"
RULES_TEST = ROOT / "packaging" / "prometheus-alerts.test.yml"
DASHBOARD = ROOT / "packaging" / "grafana-dashboard.json"
DEPLOYMENT = ROOT / "docs" / "deployment.md"

# Series Prometheus makes itself for every target, not the server.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                "group_right", "inf", "nan"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (scripts/install-deps.sh installs Debian's prometheus package)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (also with a Grafana variable or two in it)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, which may hold anything
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges, $__rate_interval
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", expr):
        if not m.group(2) and m.group(1).lower() not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_metric_names_are_found_in_expressions():
    expr = ('sum by (le) (rate(broadcaster_request_duration_seconds_bucket{method="publish",'
            'instance=~"$instance"}[$__rate_interval])) / on(instance) group_left(version) broadcaster_build_info '
            "> 4 * 1024 and time() - process_start_time_seconds offset 5m > bool 0 or up == 0 unless x:y:rate5m")
    assert metric_names(expr) == {"broadcaster_request_duration_seconds_bucket", "broadcaster_build_info",
                                  "process_start_time_seconds", "up", "x:y:rate5m"}


def load_rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_panels(d: dict) -> list[dict]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row keeps its panels inside it
    return out


def dashboard_exprs() -> list[str]:
    d = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard_panels(d) for t in p.get("targets", [])]
    exprs += [v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
              for v in d["templating"]["list"] if v["type"] == "query"]
    return exprs


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced the way Grafana does before sending it."""
    expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
    return re.sub(r"label_values\((\w+), *\w+\)", r"\1", expr)


# ---------------------------------------------------------------------------------------------------------------
# Alert rules


def test_promtool_accepts_the_rules():
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in r.stdout, r.stdout


def test_the_rules_unit_tests_pass():
    r = promtool("test", "rules", str(RULES_TEST))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout, r.stdout


def test_the_unit_tests_make_at_least_three_alerts_fire_and_keep_them_quiet_before():
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired, quiet = set(), set()
    for t in tests:
        for case in t["alert_rule_test"]:
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert len(fired & quiet) >= 3, (fired, quiet)
    assert fired <= {r["alert"] for r in load_rules()}


def test_every_alert_has_a_for_a_severity_and_says_what_is_wrong():
    rules = load_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), names
    for r in rules:
        assert re.fullmatch(r"\d+[smh]", str(r.get("for", ""))), f"{r['alert']}: no `for`"
        assert r.get("labels", {}).get("severity") in ("critical", "warning"), r["alert"]
        assert r.get("annotations", {}).get("summary") and r["annotations"].get("description"), r["alert"]
    wanted = {"BroadcasterInstanceDown", "BroadcasterBrokerDown", "BroadcasterRedisGaps",
              "BroadcasterRedisMessagesSkipped", "BroadcasterPublishesRefusedOverloaded",
              "BroadcasterSlowConsumerDrops", "BroadcasterFileDescriptorsNearLimit", "BroadcasterMemoryHigh"}
    assert wanted <= set(names), wanted - set(names)


# ---------------------------------------------------------------------------------------------------------------
# Dashboard


def test_the_dashboard_is_a_dashboard_on_a_templated_data_source():
    d = json.loads(DASHBOARD.read_text())
    panels = dashboard_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    assert all(isinstance(i, int) and i > 0 for i in ids), ids
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    templated = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"] == templated, (p["title"], p["datasource"])
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t.get("datasource", templated) == templated, (p["title"], t)
            assert "$instance" in t["expr"], f"{p['title']}: {t['expr']} ignores the node selector"
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
    # No data source anywhere (variables, annotations) named other than through the variable, but Grafana's own.
    def datasources(node):
        if isinstance(node, dict):
            if "datasource" in node:
                yield node["datasource"]
            for v in node.values():
                yield from datasources(v)
        elif isinstance(node, list):
            for v in node:
                yield from datasources(v)
    for ds in datasources(d):
        assert ds == templated or ds == {"type": "grafana", "uid": "-- Grafana --"}, ds
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in ("connections", "subscriptions", "deliveries", "publishes", "publish latency", "slow consumers",
                  "redis gaps", "history", "cpu", "resident memory", "file descriptors"):
        assert topic in titles, f"no panel on {topic}"


def test_the_dashboard_queries_are_valid_promql(tmp_path):
    # promtool has no PromQL checker of its own: the queries become recording rules, which it parses.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": as_promql(e)}
                                                        for i, e in enumerate(dashboard_exprs())]}]}
    f = tmp_path / "dashboard-rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------------------------
# Every metric queried exists


@pytest.fixture(scope="module")
def exported() -> dict[str, Family]:
    """Every family of a node on the memory broker and of one on Redis."""
    families = {}
    redis = RedisServer()
    memory_node = redis_node = None
    try:
        memory_node = start_server("--threads", "2")
        redis_node = start_node(redis.url)
        for node, broker in ((memory_node, "memory"), (redis_node, "redis")):
            m = parse(requests.get(node.url("/metrics"), timeout=5).text)
            assert m["broadcaster_build_info"].label_sets()[0]["broker"] == broker
            families.update(m)
    finally:
        stop_all(memory_node, redis_node, redis)
    return families


@pytest.fixture(scope="module")
def exported_names(exported) -> set[str]:
    return sample_names(exported)


def test_every_metric_the_rules_use_is_exported(exported_names):
    used = set().union(*(metric_names(r["expr"]) for r in load_rules()))
    assert {"broadcaster_broker_up", "broadcaster_redis_gaps_total", "process_open_fds"} <= used, used
    missing = used - exported_names - PROMETHEUS_OWN
    assert not missing, f"the rules query series no server exports: {sorted(missing)}"


def test_every_metric_the_dashboard_uses_is_exported(exported_names):
    used = set().union(*(metric_names(as_promql(e)) for e in dashboard_exprs()))
    assert {"broadcaster_connections", "broadcaster_request_duration_seconds_bucket",
            "broadcaster_redis_skipped_total", "process_cpu_seconds_total"} <= used, used
    missing = used - exported_names - PROMETHEUS_OWN
    assert not missing, f"the dashboard queries series no server exports: {sorted(missing)}"


# ---------------------------------------------------------------------------------------------------------------
# docs/deployment.md#monitoring


def monitoring_tables() -> list[list[list[str]]]:
    """The tables of the Monitoring section, as rows of cells (header and rule lines left out)."""
    text = DEPLOYMENT.read_text()
    section = text[text.index("\n## Monitoring\n"):]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    tables, rows = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
        elif rows:
            tables.append(rows[2:])
            rows = []
    return tables


def test_every_exported_series_is_documented_with_its_type_and_labels(exported):
    documented = {}
    for row in next(t for t in monitoring_tables() if t and t[0][0].startswith("`broadcaster_build_info")):
        m = re.fullmatch(r"`([a-z_:]+)(?:\{([a-z_,]+)\})?`", row[0])
        assert m, f"a series cell is `name` or `name{{label,...}}`: {row[0]}"
        assert m.group(1) not in documented, f"{m.group(1)} documented twice"
        documented[m.group(1)] = (row[1], set((m.group(2) or "").split(",")) - {""})
    exported_doc = {name: (f.type, {k for _, labels in f.samples for k, _ in labels} - {"le"})
                    for name, f in exported.items()}
    assert documented.keys() == exported_doc.keys(), (
        f"undocumented: {sorted(exported_doc.keys() - documented.keys())}, "
        f"documented but not exported: {sorted(documented.keys() - exported_doc.keys())}")
    wrong = {n: (documented[n], exported_doc[n]) for n in documented if documented[n] != exported_doc[n]}
    assert not wrong, f"documented (type, labels) differ from the exported ones: {wrong}"


def test_every_alert_is_documented():
    table = next(t for t in monitoring_tables() if t and t[0][0].startswith("`Broadcaster"))
    documented = {row[0].strip("`"): row[1] for row in table}
    rules = {r["alert"]: r["labels"]["severity"] for r in load_rules()}
    assert documented == rules, (documented, rules)
