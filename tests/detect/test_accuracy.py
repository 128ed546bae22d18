"""Accuracy floors a little below the measured figures (see docs/detect.md)."""

from __future__ import annotations

import pytest

FLOORS = {  # measured on the generated corpus: all 1.00 except injection 0.97
    "secret": 0.97,
    "pii (structured)": 0.97,
    "injection": 0.93,
    "hidden": 0.97,
    "malware": 0.95,
    "leak": 0.95,
    "obedience": 0.95,
    "network.url": 0.95,
    "network.internal": 0.95,
}
HELDOUT_FLOORS = {  # hand-written, never tuned on; small, so floors are loose
    "secret": 0.95,
    "pii (structured)": 0.85,
    "injection": 0.85,
    "hidden": 0.95,
}


@pytest.fixture(scope="module")
def corpus_scores(accuracy_bench):  # type: ignore[no-untyped-def]
    return accuracy_bench.evaluate(accuracy_bench.load())["scores"]


@pytest.mark.parametrize("group", sorted(FLOORS))
def test_corpus_f1_floor(corpus_scores, group: str) -> None:  # type: ignore[no-untyped-def]
    assert corpus_scores[group]["labels"] >= 20  # enough labels for the figure to mean something
    assert corpus_scores[group]["f1"] >= FLOORS[group], corpus_scores[group]


def test_heldout_floors(accuracy_bench) -> None:  # type: ignore[no-untyped-def]
    scores = accuracy_bench.evaluate(accuracy_bench.load(accuracy_bench.HELDOUT))["scores"]
    for group, floor in HELDOUT_FLOORS.items():
        assert scores[group]["f1"] >= floor, (group, scores[group])


def test_corpus_is_substantial(accuracy_bench) -> None:  # type: ignore[no-untyped-def]
    records = accuracy_bench.load()
    assert len(records) >= 500
    negatives = [r for r in records if not r["labels"]]
    assert len(negatives) >= 150  # hard negatives carry no labels
    assert {r["context"] for r in records} >= {"chat", "ticket", "code", "email", "webpage"}
