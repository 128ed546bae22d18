"""Selection for real: the embedded model with and without the safety prompt, ranked."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.evals.select import parse_candidates, select_models
from finegate.store import Store

pytestmark = pytest.mark.slow


def test_select_ranks_the_embedded_model_with_and_without_a_safety_prompt(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    store = Store(f"sqlite:///{tmp_path / 'fg.db'}", home=tmp_path)
    cands = parse_candidates("hf:embedded,hf:embedded::system=builtin:safety")
    result = select_models(store, cands, "selection", max_tokens=24)
    assert [c.rank for c in result.cards] == [1, 2]
    assert {c.candidate for c in result.cards} == {c.name for c in cands}
    top, second = result.cards
    assert top.total >= second.total and "ahead of" in top.why
    for card in result.cards:
        # Every dimension was measured on real replies, with evidence behind it.
        assert set(card.dimensions) >= {"task_fit", "controllability", "stability", "safety"}
        assert card.dimensions["debuggability"].score == 1.0  # greedy decoding repeats exactly
        assert card.asr and all(v is None or 0.0 <= v <= 1.0 for v in card.asr.values())
    run = store.get_run(result.select_run_id)
    assert run is not None and run.kind == "select" and len(run.summary["cards"]) == 2
