"""A strict reader of the Prometheus text exposition format 0.0.4, for tests of /metrics.

Stricter than Prometheus itself, which skips what it does not understand: every line must be a `# HELP`, a
`# TYPE` or a sample; every family is typed exactly once, before its first sample, and its samples are
contiguous; no series appears twice; a histogram's buckets are cumulative and end at +Inf, equal to its _count.
A violation raises AssertionError naming the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


@dataclass
class Family:
    name: str
    type: str
    help: str | None = None
    # (sample name, sorted label pairs) -> value
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def value(self, name: str | None = None, **labels: str) -> float:
        """The one sample called `name` (the family's name by default) with exactly these labels."""
        key = (name or self.name, tuple(sorted(labels.items())))
        assert key in self.samples, f"no sample {key} in {self.name}: {sorted(self.samples)}"
        return self.samples[key]

    def label_sets(self) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == self.name]


def _value(text: str, line: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("+", ""))
    assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text), f"bad sample value in {line!r}"
    return float(text)


def _labels(text: str, line: str) -> tuple[tuple[str, str], ...]:
    pairs, pos = [], 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, f"bad label set in {line!r} at {text[pos:]!r}"
        pairs.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(text):
            assert text[pos] == ",", f"labels must be separated by ',' in {line!r}"
            pos += 1
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names)), f"a label twice in {line!r}"
    return tuple(sorted(pairs))


def _family_of(sample: str, families: dict[str, Family]) -> Family | None:
    if sample in families and families[sample].type not in SUFFIXES:
        return families[sample]
    for kind, suffixes in SUFFIXES.items():
        for s in suffixes:
            base = sample[: -len(s)]
            if sample.endswith(s) and base in families and families[base].type == kind:
                return families[base]
    return None


def parse(text: str) -> dict[str, Family]:
    """Every family of one scrape by name, checking the format on the way."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, Family] = {}
    done: set[str] = set()  # families whose samples are over: another family's line came after them
    current: Family | None = None
    for line in text[:-1].split("\n"):
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line)
            assert m, f"only # HELP and # TYPE comments are expected: {line!r}"
            kind, name, rest = m.groups()
            assert NAME_RE.fullmatch(name), f"bad metric name in {line!r}"
            if kind == "TYPE":
                assert rest in TYPES, f"unknown type in {line!r}"
                assert name not in families or families[name].type == "", f"{name} typed twice"
                help_ = families[name].help if name in families else None
                families[name] = Family(name, rest, help_)
            else:
                assert re.fullmatch(r"(?:[^\\\n]|\\[\\n])*", rest), f"bad escape in {line!r}"
                fam = families.setdefault(name, Family(name, ""))
                assert fam.help is None, f"{name} has two # HELP lines"
                assert not fam.samples, f"# HELP of {name} after its samples"
                fam.help = rest
            if current is not None and current.name != name:
                done.add(current.name)
                current = None
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?", line)
        assert m, f"not a Prometheus sample line: {line!r}"
        name, labels_text, value_text, _timestamp = m.groups()
        fam = _family_of(name, families)
        assert fam is not None and fam.type, f"sample before its family's # TYPE line: {line!r}"
        assert fam.name not in done, f"samples of {fam.name} are not contiguous: {line!r}"
        if current is not None and current is not fam:
            done.add(current.name)
        current = fam
        key = (name, _labels(labels_text or "", line))
        assert key not in fam.samples, f"series twice: {line!r}"
        fam.samples[key] = _value(value_text, line)
    for fam in families.values():
        assert fam.type, f"{fam.name} has # HELP but no # TYPE"
        if fam.type == "histogram":
            _check_histogram(fam)
        if fam.type == "counter":
            assert all(v >= 0 for v in fam.samples.values()), f"negative counter in {fam.name}"
    return families


def _check_histogram(fam: Family):
    by_series: dict[tuple, list[tuple[float, float]]] = {}
    for (name, labels), v in fam.samples.items():
        if name == fam.name + "_bucket":
            rest = tuple(p for p in labels if p[0] != "le")
            le = dict(labels).get("le")
            assert le is not None, f"{fam.name}_bucket without le: {labels}"
            by_series.setdefault(rest, []).append((_value(le, le), v))
    assert by_series, f"histogram {fam.name} has no buckets"
    for rest, buckets in by_series.items():
        buckets.sort()
        assert buckets[-1][0] == math.inf, f"{fam.name}{rest}: no +Inf bucket"
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{fam.name}{rest}: buckets not cumulative: {buckets}"
        assert fam.samples[(fam.name + "_count", rest)] == counts[-1], f"{fam.name}{rest}: +Inf != _count"
        assert (fam.name + "_sum", rest) in fam.samples, f"{fam.name}{rest}: no _sum"


def sample_names(families: dict[str, Family]) -> set[str]:
    """Every name a query can use: family names and sample names (_bucket, _sum, _count)."""
    return set(families) | {name for fam in families.values() for (name, _) in fam.samples}
