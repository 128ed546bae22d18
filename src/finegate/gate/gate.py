"""The release gate: a run (and optionally a baseline) judged by a policy, and recorded.

::

    from finegate.gate import gate_run, load_policy

    result = gate_run(store, "eval-...", policy=load_policy(), baseline_run_id="eval-...")
    print(result.passed, [r.reason for r in result.failed])

The stored decision (:func:`~finegate.gate.decisions.record_gate_decision`) carries every rule
with its value, limit and verdict, the policy's hash and both run ids; the registry's promotion
check reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError
from finegate.gate.policy import Policy, load_policy
from finegate.gate.rules import RuleResult, evaluate_rules

if TYPE_CHECKING:
    from finegate.evals.compare import Comparison
    from finegate.evals.stats import Summary
    from finegate.governance import Principal
    from finegate.store.db import Store

__all__ = ["GateResult", "gate_run"]

_FINISHED = ("done", "done_with_errors")


@dataclass(frozen=True)
class GateResult:
    """The outcome of :func:`gate_run`.

    Attributes:
        passed: May the release ship? (every rule passed)
        rules: Every rule with its value, limit, verdict and reason.
        comparison: The paired comparison with the baseline, if one was given.
        decision_id: The stored decision's id (None when not recorded).
    """

    run_id: str
    baseline_run_id: str | None
    policy_name: str
    policy_hash: str
    passed: bool
    rules: list[RuleResult]
    summary: Summary
    comparison: Comparison | None = None
    model_uri: str = ""
    model_hash: str = ""
    suite: str = ""
    suite_hash: str = ""
    system_prefix: str | None = None
    decision_id: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        """The rules that failed."""
        return [r for r in self.rules if r.verdict != "pass"]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (``finegate gate --json``, reports)."""
        return {
            "run_id": self.run_id,
            "baseline_run_id": self.baseline_run_id,
            "policy": self.policy_name,
            "policy_hash": self.policy_hash,
            "passed": self.passed,
            "verdict": "ship" if self.passed else "do not ship",
            "rules": [r.to_dict() for r in self.rules],
            "model_uri": self.model_uri,
            "model_hash": self.model_hash,
            "suite": self.suite,
            "suite_hash": self.suite_hash,
            "system_prefix": self.system_prefix,
            "decision_id": self.decision_id,
            "warnings": self.warnings,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }


def _finished_run(store: Store, run_id: str, what: str) -> Any:
    from finegate.evals.results import get_eval_run

    run = get_eval_run(store, run_id)
    if run.status not in _FINISHED:
        raise ConfigError(
            f"{what} {run_id!r} is {run.status}, not finished",
            hint=f"finish it first: finegate eval {run.model_uri} --resume {run_id}",
        )
    return run


def gate_run(
    store: Store,
    run_id: str,
    *,
    policy: Policy | str | Path | None = None,
    baseline_run_id: str | None = None,
    record: bool = True,
    actor: Principal | None = None,
) -> GateResult:
    """Judge a finished eval run by a policy and (by default) store the decision.

    Args:
        store: The store.
        run_id: The candidate's eval run.
        policy: A policy, a policy file, or None for the built-in default.
        baseline_run_id: A run of the same suite to compare against (relative rules).
        record: Store the decision (audited; needs the ``gate:record`` permission).
        actor: Who records it (default: the current principal).

    Raises:
        ConfigError: for a missing or unfinished run, a baseline of another suite, or an
            invalid policy.
    """
    from finegate.evals.results import load_results

    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    run = _finished_run(store, run_id, "run")
    kinds: dict[str, str] = dict(run.config.get("kinds") or {})
    outcomes = load_results(store, run_id)
    if not outcomes:
        raise ConfigError(f"run {run_id!r} has no results")
    comparison = None
    warnings: list[str] = []
    if baseline_run_id is not None:
        from finegate.evals.compare import compare_runs

        _finished_run(store, baseline_run_id, "baseline run")
        comparison = compare_runs(
            store, baseline_run_id, run_id, alternative=pol.baseline.alternative
        )
        warnings.extend(comparison.warnings)
    rules = evaluate_rules(pol, outcomes, kinds, comparison=comparison)
    passed = all(r.verdict == "pass" for r in rules)
    from finegate.evals.stats import summarize

    summary = summarize(outcomes, kinds)
    cfg = run.config
    result = GateResult(
        run_id=run_id,
        baseline_run_id=baseline_run_id,
        policy_name=pol.name,
        policy_hash=pol.content_hash(),
        passed=passed,
        rules=rules,
        summary=summary,
        comparison=comparison,
        model_uri=run.model_uri or "",
        model_hash=run.model_hash or "",
        suite=str(cfg.get("suite", "")),
        suite_hash=str(cfg.get("suite_hash", "")),
        system_prefix=cfg.get("system_prefix"),
        warnings=warnings,
    )
    if not record:
        return result
    from dataclasses import replace

    from finegate.gate.decisions import record_gate_decision

    details: dict[str, Any] = {
        "policy_version": pol.version,
        "policy": pol.model_dump(mode="json"),
        "suite": result.suite,
        "suite_hash": result.suite_hash,
        "system_prefix": result.system_prefix,
        "warnings": warnings,
    }
    if comparison is not None:
        details["comparison"] = [
            {
                "family": f.family,
                "a": f.a.rate,
                "b": f.b.rate,
                "diff": f.diff,
                "p_value": f.p_value,
                "p_holm": f.p_holm,
                "worse": f.worse,
                "better": f.better,
            }
            for f in comparison.families
        ]
    decision = record_gate_decision(
        store,
        run_id=run_id,
        policy_hash=result.policy_hash,
        policy_name=pol.name,
        passed=passed,
        rules=[r.to_dict() for r in rules],
        baseline_run_id=baseline_run_id,
        details=details,
        actor=actor,
    )
    return replace(result, decision_id=decision.id)
