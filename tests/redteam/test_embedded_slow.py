"""A real red-team campaign against the embedded model: attacks break resisted seeds, and the
whole campaign replays from the call cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.evals import EvalConfig, load_suite
from finegate.models import BackendOptions, GenerationParams, load_backend
from finegate.redteam import RedteamConfig, export_attacks, run_redteam_sync
from finegate.store import Store

pytestmark = pytest.mark.slow


def test_embedded_redteam_breaks_resisted_seeds_and_replays(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    store = Store(f"sqlite:///{tmp_path / 'fg.db'}", home=tmp_path)
    seeds = load_suite("core", families=["injection-direct"])
    config = RedteamConfig(
        strategies=("roleplay", "fiction"),
        budget=10,
        eval=EvalConfig(params=GenerationParams(max_tokens=96), batch_size=16),
    )
    target = load_backend("hf:embedded", BackendOptions(batch_size=16))
    first = run_redteam_sync(target, seeds, store=store, config=config)
    assert first.seeds == 8 and first.resisted >= 1
    assert 0 < first.queries <= 10
    # The acceptance claim: generated attacks succeed where the seed cases had failed.
    assert first.new_breaks, first.per_strategy()
    assert all(r.output.strip() for r in first.run.results)

    again = run_redteam_sync(target, seeds, store=store, config=config)
    assert again.model_calls == 0
    assert [(r.case_id, r.verdict, r.output) for r in again.run.results] == [
        (r.case_id, r.verdict, r.output) for r in first.run.results
    ]
    found = export_attacks(store, first.run.run_id, only_new=True)
    assert found.suite is not None and len(found.training) == len(first.new_breaks)
