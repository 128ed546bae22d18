"""Stored gate decisions: the record a release gate leaves, which promotion checks.

The gate itself (policies, rules, comparisons) calls :func:`record_gate_decision` once per
decision. The registry accepts a promotion to ``approved``/``production`` only when the latest
decision for that exact model version (by identity hash or explicit registry link) passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from finegate.errors import ConfigError, NotFoundError
from finegate.store.schema import GateDecision, Run

if TYPE_CHECKING:
    from finegate.governance._auth import Principal
    from finegate.store.db import Store

__all__ = [
    "RULE_KEYS",
    "GateDecisionRecord",
    "get_gate_decision",
    "list_gate_decisions",
    "record_gate_decision",
]

RULE_KEYS = ("rule", "family", "value", "limit", "verdict", "reason")
"""The keys of each rule entry; missing keys are stored as None."""


@dataclass(frozen=True)
class GateDecisionRecord:
    """A stored gate decision (see :class:`finegate.store.schema.GateDecision`)."""

    id: int
    created_at: datetime
    run_id: str
    baseline_run_id: str | None
    model_hash: str
    policy_hash: str
    policy_name: str
    passed: bool
    rules: list[dict[str, Any]]
    registry_model: str | None
    registry_version: int | None
    details: dict[str, Any]
    created_by: str

    @classmethod
    def from_row(cls, row: GateDecision) -> GateDecisionRecord:
        """Build from a database row."""
        return cls(
            id=row.id,
            created_at=row.created_at,
            run_id=row.run_id,
            baseline_run_id=row.baseline_run_id,
            model_hash=row.model_hash,
            policy_hash=row.policy_hash,
            policy_name=row.policy_name,
            passed=bool(row.passed),
            rules=list(row.rules or []),
            registry_model=row.registry_model,
            registry_version=row.registry_version,
            details=dict(row.details or {}),
            created_by=row.created_by,
        )


def _rules(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or "rule" not in rule or "verdict" not in rule:
            raise ConfigError(
                f"gate rule #{i} needs at least 'rule' and 'verdict'",
                hint=f"keys: {', '.join(RULE_KEYS)}",
            )
        out.append(
            {k: rule.get(k) for k in RULE_KEYS}
            | {k: v for k, v in rule.items() if k not in RULE_KEYS}
        )
    return out


def record_gate_decision(
    store: Store,
    *,
    run_id: str,
    policy_hash: str,
    policy_name: str,
    passed: bool,
    rules: Sequence[Mapping[str, Any]],
    model_hash: str | None = None,
    baseline_run_id: str | None = None,
    registry_model: str | None = None,
    registry_version: int | None = None,
    details: Mapping[str, Any] | None = None,
    actor: Principal | None = None,
) -> GateDecisionRecord:
    """Store a gate decision and its audit event (needs the ``gate:record`` permission).

    Args:
        store: The store.
        run_id: The evaluated run the decision is about.
        policy_hash: sha256 of the policy file's canonical content.
        policy_name: The policy's name (for people).
        passed: The verdict: may the release ship?
        rules: One entry per rule: ``rule, family, value, limit, verdict, reason``.
        model_hash: The evaluated model's identity hash; defaults to the run's.
        baseline_run_id: The baseline run of relative rules, if any.
        registry_model: Optionally tie the decision to a registry version explicitly...
        registry_version: ...by name and version number.
        details: Extra JSON (e.g. per-family comparison numbers).
        actor: Who records it; defaults to the current principal.

    Raises:
        NotFoundError: when ``run_id`` (or the baseline) is not a recorded run.
        PermissionDeniedError: when the actor may not record gate decisions.
    """
    from finegate.governance._audit import append_event, write_transaction
    from finegate.governance._auth import Action, authorize, resolve_actor

    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.RECORD_GATE, object_type="run", object_id=run_id)
    clean_rules = _rules(rules)
    if (registry_model is None) != (registry_version is None):
        raise ConfigError("give both registry_model and registry_version, or neither")
    with write_transaction(store) as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id!r} to record a gate decision for")
        if baseline_run_id is not None and s.get(Run, baseline_run_id) is None:
            raise NotFoundError(f"no baseline run {baseline_run_id!r}")
        mhash = model_hash or run.model_hash
        if not mhash:
            raise ConfigError(f"run {run_id!r} has no model hash; pass model_hash")
        row = GateDecision(
            run_id=run_id,
            baseline_run_id=baseline_run_id,
            model_hash=mhash,
            policy_hash=policy_hash,
            policy_name=policy_name,
            passed=bool(passed),
            rules=clean_rules,
            registry_model=registry_model,
            registry_version=registry_version,
            details=dict(details or {}),
            created_by=actor.name,
        )
        s.add(row)
        s.flush()
        record = GateDecisionRecord.from_row(row)
        append_event(
            s,
            actor,
            "gate.decide",
            "gate_decision",
            str(row.id),
            after={
                "run_id": run_id,
                "baseline_run_id": baseline_run_id,
                "model_hash": mhash,
                "policy_hash": policy_hash,
                "passed": bool(passed),
                "rules": clean_rules,
            },
            details={
                "run_id": run_id,
                "passed": bool(passed),
                "policy": policy_name,
                "policy_hash": policy_hash,
                "model_hash": mhash,
                "registry": f"{registry_model}@{registry_version}" if registry_model else None,
            },
        )
    return record


def list_gate_decisions(
    store: Store,
    *,
    model_hash: str | None = None,
    registry_model: str | None = None,
    registry_version: int | None = None,
    run_id: str | None = None,
) -> list[GateDecisionRecord]:
    """Return decisions, newest first; the model hash OR the registry link may match."""
    stmt = select(GateDecision)
    conds = []
    if model_hash is not None:
        conds.append(GateDecision.model_hash == model_hash)
    if registry_model is not None:
        link = GateDecision.registry_model == registry_model
        if registry_version is not None:
            link = link & (GateDecision.registry_version == registry_version)
        conds.append(link)
    if conds:
        stmt = stmt.where(or_(*conds))
    if run_id is not None:
        stmt = stmt.where(GateDecision.run_id == run_id)
    stmt = stmt.order_by(GateDecision.created_at.desc(), GateDecision.id.desc())
    with store.session() as s:
        return [GateDecisionRecord.from_row(r) for r in s.scalars(stmt)]


def get_gate_decision(store: Store, decision_id: int) -> GateDecisionRecord:
    """Return one decision by id.

    Raises:
        NotFoundError: when there is none.
    """
    with store.session() as s:
        row = s.get(GateDecision, decision_id)
        if row is None:
            raise NotFoundError(f"no gate decision {decision_id}")
        return GateDecisionRecord.from_row(row)
