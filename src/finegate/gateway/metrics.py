"""A small Prometheus text-format registry (counters, gauges, histograms) for the gateway.

With several worker processes each worker counts its own requests; `GatewayMetrics.snapshot`
turns a worker's values into JSON-ready data and `GatewayMetrics.render` adds other workers'
snapshots to its own, so ``/metrics`` answers for the whole gateway whichever worker serves
the scrape (see `finegate.gateway.workers`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["Counter", "Gauge", "GatewayMetrics", "Histogram"]

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels, extra: Labels = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing value per label set."""

    kind = "counter"

    def __init__(self, name: str, help_: str) -> None:
        self.name = name
        self.help = help_
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to the series with these labels."""
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def inc_series(self, key: Labels, amount: float = 1.0) -> None:
        """`inc` for a label set already in series form: ``(name, value)`` pairs by name."""
        self.values[key] = self.values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """Current value of one series (0 when never incremented)."""
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def snapshot(self) -> list[Any]:
        """The series as JSON-ready ``[labels, value]`` pairs."""
        return [[list(map(list, k)), v] for k, v in self.values.items()]

    def render(self, others: Iterable[Any] = ()) -> list[str]:
        """Exposition lines; ``others``: other workers' `snapshot` values, added in."""
        values = dict(self.values)
        for series in others:
            for labels, v in series:
                key = tuple((str(a), str(b)) for a, b in labels)
                values[key] = values.get(key, 0.0) + float(v)
        return [f"{self.name}{_fmt(k)} {_num(v)}" for k, v in sorted(values.items())]


class Gauge:
    """A value read at scrape time from a callback."""

    kind = "gauge"

    def __init__(self, name: str, help_: str, read: Callable[[], float]) -> None:
        self.name = name
        self.help = help_
        self.read = read

    def snapshot(self) -> float:
        """The current value."""
        return self.read()

    def render(self, others: Iterable[Any] = ()) -> list[str]:
        """Exposition lines; other workers' values are added (the gateway's gauges count)."""
        return [f"{self.name} {_num(self.read() + sum(float(v) for v in others))}"]


class Histogram:
    """Observations counted into cumulative buckets per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.name = name
        self.help = help_
        self.buckets = tuple(buckets)
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        """Record one observation."""
        key = tuple(sorted(labels.items()))
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = ([0] * (len(self.buckets) + 1), [0.0])
        s[0][bisect.bisect_left(self.buckets, value)] += 1
        s[1][0] += value

    def count(self, **labels: str) -> int:
        """Number of observations of one series."""
        s = self.series.get(tuple(sorted(labels.items())))
        return sum(s[0]) if s else 0

    def snapshot(self) -> list[Any]:
        """The series as JSON-ready ``[labels, bucket counts, sum]`` triples."""
        return [[list(map(list, k)), c, t[0]] for k, (c, t) in self.series.items()]

    def render(self, others: Iterable[Any] = ()) -> list[str]:
        """Exposition lines; ``others``: other workers' `snapshot` values, added in."""
        width = len(self.buckets) + 1
        series = {k: (list(c), t[0]) for k, (c, t) in self.series.items()}
        for part in others:
            for labels, counts, total in part:
                if len(counts) != width:  # other buckets (a version mid-deploy): not mixed in
                    continue
                key = tuple((str(a), str(b)) for a, b in labels)
                mine, mine_total = series.get(key, ([0] * width, 0.0))
                series[key] = ([a + int(b) for a, b in zip(mine, counts, strict=True)],
                               mine_total + float(total))  # fmt: skip
        out = []
        for key, (counts, total) in sorted(series.items()):
            acc = 0
            for bound, c in zip((*self.buckets, float("inf")), counts, strict=True):
                acc += c
                out.append(f"{self.name}_bucket{_fmt(key, (('le', _num(bound)),))} {acc}")
            out.append(f"{self.name}_sum{_fmt(key)} {_num(total)}")
            out.append(f"{self.name}_count{_fmt(key)} {acc}")
        return out


class GatewayMetrics:
    """Every metric the gateway exports."""

    def __init__(self) -> None:
        self.requests = Counter("finegate_gateway_requests_total", "Requests by model and status.")
        self.latency = Histogram(
            "finegate_gateway_request_seconds", "Total request latency by model."
        )
        self.overhead = Histogram(
            "finegate_gateway_overhead_seconds", "Latency added by the gateway (total - upstream)."
        )
        self.upstream_latency = Histogram(
            "finegate_gateway_upstream_seconds", "Upstream model latency by model."
        )
        self.guard_actions = Counter(
            "finegate_gateway_guard_actions_total", "Guard decisions by stage, rule and action."
        )
        self.upstream_errors = Counter(
            "finegate_gateway_upstream_errors_total", "Upstream failures by model and kind."
        )
        self.rate_limited = Counter(
            "finegate_gateway_rate_limited_total", "Requests refused by a rate limit."
        )
        self.incidents = Counter(
            "finegate_gateway_incidents_total", "Usage-monitoring incidents by kind."
        )
        self.reviews = Counter("finegate_gateway_reviews_total", "Answers held for review.")
        self._all: list[Counter | Gauge | Histogram] = [
            self.requests, self.latency, self.overhead, self.upstream_latency,
            self.guard_actions, self.upstream_errors, self.rate_limited, self.incidents,
            self.reviews,
        ]  # fmt: skip

    def add_gauge(self, name: str, help_: str, read: Callable[[], float]) -> None:
        """Register a gauge read at scrape time."""
        self._all.append(Gauge(name, help_, read))

    def snapshot(self) -> dict[str, Any]:
        """Every metric's values by name, JSON-ready (what a worker shares with the others)."""
        return {m.name: m.snapshot() for m in self._all}

    def render(self, others: Sequence[dict[str, Any]] = ()) -> str:
        """The Prometheus text exposition of every metric.

        Args:
            others: Other workers' `snapshot` results, added to this process's values.
        """
        lines: list[str] = []
        for m in self._all:
            lines.append(f"# HELP {m.name} {m.help}")
            lines.append(f"# TYPE {m.name} {m.kind}")
            lines.extend(m.render(o[m.name] for o in others if m.name in o))
        return "\n".join(lines) + "\n"
