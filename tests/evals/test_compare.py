"""Paired comparison: McNemar exact p, Holm, Wilson bounds checked against hand computation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from finegate.errors import ConfigError
from finegate.evals.compare import compare_outcomes, holm, mcnemar_exact
from finegate.evals.stats import wilson


@dataclass(frozen=True)
class Out:
    case_id: str
    family: str
    verdict: str
    repeat: int = 0
    scores: list[dict[str, Any]] = field(default_factory=list)


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (7, 8, 0.5291, 0.9776),  # 87.5% [52.9, 97.8]
        (0, 8, 0.0, 0.3244),  # upper = (z^2/n) / (1 + z^2/n)
        (4, 8, 0.2152, 0.7848),
        (1, 10, 0.0179, 0.4042),
    ],
)
def test_wilson_bounds_match_hand_computation(k: int, n: int, low: float, high: float) -> None:
    rate = wilson(k, n)
    lo, hi = _wilson_by_hand(k, n)
    assert rate.low == pytest.approx(lo, abs=1e-9) and rate.high == pytest.approx(hi, abs=1e-9)
    assert rate.low == pytest.approx(low, abs=1e-4) and rate.high == pytest.approx(high, abs=1e-4)


def test_mcnemar_exact_matches_binomial_sums() -> None:
    # 5 discordant pairs, all worse: two-sided 2 * 0.5^5; one-sided 0.5^5.
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(5, 0, "greater") == pytest.approx(1 / 32)
    # 8 worse, 2 better (n = 10): two-sided 2 * P(X <= 2) = 2 * (1 + 10 + 45) / 1024.
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    # One-sided P(X >= 8) = (45 + 10 + 1) / 1024.
    assert mcnemar_exact(8, 2, "greater") == pytest.approx(56 / 1024)
    # Symmetric in the two-sided case; balanced counts give p = 1.
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    # B better than A is never evidence that B is worse.
    assert mcnemar_exact(0, 6, "greater") == 1.0


def test_holm_step_down_by_hand() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    # sorted: a 0.01*3 = 0.03; c 0.03*2 = 0.06; b max(0.06, 0.04*1) = 0.06
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"x": 0.6, "y": 0.7}) == pytest.approx({"x": 1.0, "y": 1.0})
    assert holm({}) == {}


def _outcomes(verdicts: dict[str, str], family: str = "harm") -> list[Out]:
    return [Out(cid, family, v) for cid, v in verdicts.items()]


def test_compare_outcomes_counts_flips_per_family() -> None:
    a = _outcomes({"h1": "pass", "h2": "pass", "h3": "pass", "h4": "fail", "h5": "error"})
    a += _outcomes({"b1": "pass", "b2": "pass"}, "ok")
    b = _outcomes({"h1": "fail", "h2": "fail", "h3": "pass", "h4": "pass", "h5": "fail"})
    b += _outcomes({"b1": "pass", "b2": "fail"}, "ok")
    cmp = compare_outcomes(a, b, {"harm": "attack", "ok": "benign"}, run_a="A", run_b="B")
    harm = cmp.family("harm")
    assert harm is not None
    assert harm.worse == ["h1", "h2"] and harm.better == ["h4"] and harm.unpaired == 1
    assert harm.pairs == 4
    assert (harm.a.k, harm.a.n, harm.b.k, harm.b.n) == (1, 4, 2, 4)
    assert harm.diff == pytest.approx(0.25)
    assert harm.p_value == pytest.approx(1.0)  # 2 vs 1 discordant: two-sided p = 1
    ok = cmp.family("ok")
    assert ok is not None and ok.metric == "pass_rate" and ok.worse == ["b2"]
    assert ok.p_holm >= ok.p_value
    assert harm.flipped == ["h1", "h2", "h4"]


def test_compare_outcomes_requires_the_same_cases() -> None:
    a = _outcomes({"h1": "pass", "h2": "pass"})
    b = _outcomes({"h1": "pass", "h3": "pass"})
    with pytest.raises(ConfigError, match="do not share a suite"):
        compare_outcomes(a, b, {"harm": "attack"})
