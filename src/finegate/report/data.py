"""The content of a report: runs, their gate verdicts, comparisons and flipped cases.

:func:`build_report` gathers everything from the store into one JSON-serializable dict; the
HTML, Markdown, JSON and JUnit renderers only format it. The first run is the baseline: each
later run is compared with it (paired, per family) and gated against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError

if TYPE_CHECKING:
    from finegate.gate.policy import Policy
    from finegate.store.db import Store

__all__ = ["MAX_FLIPPED", "build_report"]

MAX_FLIPPED = 40
"""At most this many flipped cases (with traces) per comparison are put in a report."""


def _trace(result: Any) -> dict[str, Any]:
    return {
        "verdict": result.verdict,
        "reason": result.reason,
        "output": result.output,
        "messages": result.messages,
        "tool_calls": result.tool_calls,
        "scores": result.scores,
    }


def _stored_decision(
    store: Store, run_id: str, policy_hash: str, baseline: str | None
) -> dict[str, Any] | None:
    from finegate.gate.decisions import list_gate_decisions

    for d in list_gate_decisions(store, run_id=run_id):
        if d.policy_hash == policy_hash and d.baseline_run_id == baseline:
            return {
                "decision_id": d.id,
                "recorded_at": d.created_at.isoformat(),
                "recorded_by": d.created_by,
            }
    return None


def _run_entry(
    store: Store,
    run_id: str,
    policy: Policy,
    baseline: str | None,
) -> dict[str, Any]:
    from finegate.gate.gate import gate_run

    run = store.get_run(run_id)
    assert run is not None
    cfg = run.config
    gate = gate_run(store, run_id, policy=policy, baseline_run_id=baseline, record=False)
    prefix = cfg.get("system_prefix")
    stored = _stored_decision(store, run_id, gate.policy_hash, baseline)
    gate_data = gate.to_dict()
    gate_data.pop("comparison", None)
    gate_data["recorded"] = stored
    return {
        "run_id": run_id,
        "status": run.status,
        "model_uri": run.model_uri,
        "model_hash": run.model_hash,
        "model": cfg.get("model"),
        "system_prefix": prefix,
        "system_prefix_sha256": hashlib.sha256(prefix.encode()).hexdigest() if prefix else None,
        "suite": cfg.get("suite"),
        "suite_version": cfg.get("suite_version"),
        "suite_hash": cfg.get("suite_hash"),
        "cases": cfg.get("cases"),
        "seed": cfg.get("seed"),
        "repeat": cfg.get("repeat"),
        "params": cfg.get("params"),
        "judge": cfg.get("judge"),
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "summary": gate.summary.to_dict(),
        "gate": gate_data,
    }


def build_report(
    store: Store, run_ids: Sequence[str], *, policy: Policy | str | None = None
) -> dict[str, Any]:
    """Collect a report's content.

    Args:
        store: The store holding the runs.
        run_ids: Eval runs; the first is the baseline of the others.
        policy: Gate policy (default: the built-in default).

    Raises:
        ConfigError: for no runs, an unknown or unfinished run, or runs of different suites.
    """
    from finegate.evals.compare import compare_runs
    from finegate.evals.results import get_eval_run, load_results
    from finegate.gate.policy import Policy, load_policy

    if not run_ids:
        raise ConfigError("a report needs at least one run")
    if len(set(run_ids)) != len(run_ids):
        raise ConfigError("a run is listed twice")
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    for rid in run_ids:
        get_eval_run(store, rid)
    base = run_ids[0]
    runs = [_run_entry(store, rid, pol, None if rid == base else base) for rid in run_ids]
    comparisons: list[dict[str, Any]] = []
    flipped: list[dict[str, Any]] = []
    if len(run_ids) > 1:
        base_results = {(r.case_id, r.repeat): r for r in load_results(store, base)}
        for rid in run_ids[1:]:
            cmp = compare_runs(store, base, rid, alternative=pol.baseline.alternative)
            comparisons.append(cmp.to_dict())
            other = {(r.case_id, r.repeat): r for r in load_results(store, rid)}
            for fam in cmp.families:
                for way, ids in (("worse", fam.worse), ("better", fam.better)):
                    for cid in ids:
                        if len([f for f in flipped if f["run_b"] == rid]) >= MAX_FLIPPED:
                            break
                        a, b = base_results.get((cid, 0)), other.get((cid, 0))
                        flipped.append(
                            {
                                "run_a": base,
                                "run_b": rid,
                                "family": fam.family,
                                "case_id": cid,
                                "direction": way,
                                "a": _trace(a) if a else None,
                                "b": _trace(b) if b else None,
                            }
                        )
    passed = [r["gate"]["passed"] for r in runs]
    from finegate import __version__

    return {
        "title": "finegate report",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "finegate_version": __version__,
        "policy": {
            "name": pol.name,
            "version": pol.version,
            "hash": pol.content_hash(),
            "description": pol.description,
        },
        "baseline_run_id": base,
        "runs": runs,
        "comparisons": comparisons,
        "flipped": flipped,
        "max_flipped": MAX_FLIPPED,
        "verdict": {
            r["run_id"]: ("ship" if p else "do not ship") for r, p in zip(runs, passed, strict=True)
        },
    }
