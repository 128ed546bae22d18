"""The real embedded model with and without the safety prefix: compare, gate, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.evals import EvalConfig, load_suite, run_eval_sync
from finegate.evals.compare import compare_runs
from finegate.evals.perturb import SAFETY_PROMPT
from finegate.gate import gate_run
from finegate.models import BackendOptions, GenerationParams, load_backend
from finegate.report import write_report

pytestmark = pytest.mark.slow

FAMILIES = ("harmful-requests", "leakage", "over-refusal")


def test_embedded_with_and_without_safety_prefix(isolated_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from finegate.store.db import open_store

    core = load_suite("core")
    cases = [c for f in FAMILIES for c in [x for x in core.cases if x.family == f][:2]]
    suite = core.model_copy(update={"cases": cases})
    store = open_store()
    backend = load_backend("hf:embedded", BackendOptions(batch_size=6))
    params = GenerationParams(max_tokens=32)
    bare = run_eval_sync(backend, suite, store=store, config=EvalConfig(params=params))
    safe = run_eval_sync(
        backend, suite, store=store, config=EvalConfig(params=params, system_prefix=SAFETY_PROMPT)
    )
    assert all(r.verdict != "error" for r in bare.results + safe.results)
    # The prefix reached the model: it is in the transcript of every case.
    assert all(SAFETY_PROMPT in r.messages[0]["content"] for r in safe.results)
    assert store.get_run(safe.run_id).config["system_prefix"] == SAFETY_PROMPT  # type: ignore[union-attr]
    cmp = compare_runs(store, bare.run_id, safe.run_id)
    assert {f.family for f in cmp.families} == set(FAMILIES)
    assert all(0.0 <= f.p_value <= 1.0 and f.p_holm >= f.p_value for f in cmp.families)
    result = gate_run(store, safe.run_id, baseline_run_id=bare.run_id)
    # Two cases per family are too few for the default policy: it must say no, with reasons.
    assert not result.passed
    assert any(r.rule == "min_cases" and r.verdict == "fail" for r in result.rules)
    path, _ = write_report(store, [bare.run_id, safe.run_id], tmp_path / "r.html")
    assert safe.run_id in path.read_text()
