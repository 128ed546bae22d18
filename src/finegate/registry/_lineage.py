"""Lineage of a version (what it is made of and what was measured) and the inventory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, or_, select

from finegate.registry._private import ModelVersionInfo, get_version, list_versions
from finegate.store.schema import Artifact, Run, StageTransition

if TYPE_CHECKING:
    from finegate.gate.decisions import GateDecisionRecord
    from finegate.store.db import Store


def _run_facts(run: Run, version_hash: str | None = None) -> dict[str, Any]:
    cfg = run.config or {}
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "model_uri": run.model_uri,
        "model_hash": run.model_hash,
        "suite": cfg.get("suite"),
        "suite_hash": cfg.get("suite_hash"),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "matches_version": (run.model_hash == version_hash) if version_hash else None,
    }


@dataclass(frozen=True)
class Lineage:
    """Everything recorded about where a version came from and what was measured on it.

    Attributes:
        training_run: The linked training record (``missing: True`` when the id is linked but
            no record exists), or None when nothing is linked.
        dataset_versions: Each linked dataset version id with whether a record was found.
        eval_runs: Evaluation runs of this version (linked, or with its identity hash).
        baseline_runs: Evaluation runs of its base model (identity hash of the base).
    """

    version: ModelVersionInfo
    adapter: dict[str, Any] | None
    training_run: dict[str, Any] | None
    dataset_versions: list[dict[str, Any]]
    eval_runs: list[dict[str, Any]]
    baseline_runs: list[dict[str, Any]]
    gate_decisions: list[GateDecisionRecord]
    transitions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        out = asdict(self)
        out["version"] = self.version.to_dict()
        out["gate_decisions"] = [
            {**asdict(d), "created_at": d.created_at.isoformat()} for d in self.gate_decisions
        ]
        return out


def _eval_runs(store: Store, ids: list[str], model_hash: str | None) -> list[Run]:
    conds: list[ColumnElement[bool]] = [Run.id.in_(ids)] if ids else []
    if model_hash:
        conds.append((Run.model_hash == model_hash) & (Run.kind == "eval"))
    if not conds:
        return []
    with store.session() as s:
        return list(s.scalars(select(Run).where(or_(*conds)).order_by(Run.started_at)))


def lineage(store: Store, ref: str) -> Lineage:
    """Collect a version's lineage from the records (nothing is inferred or invented)."""
    from finegate.gate.decisions import list_gate_decisions

    v = get_version(store, ref)
    adapter = None
    with store.session() as s:
        if v.adapter_sha256:
            art = s.get(Artifact, v.adapter_sha256)
            adapter = {
                "sha256": v.adapter_sha256,
                "size": art.size if art else None,
                "present": store.artifacts.path(v.adapter_sha256).exists(),
            }
        training = None
        if v.training_run_id:
            run = s.get(Run, v.training_run_id)
            training = (
                {**_run_facts(run), "config": run.config, "summary": run.summary}
                if run
                else {"id": v.training_run_id, "missing": True}
            )
        datasets = []
        for did in v.dataset_version_ids:
            art = s.get(Artifact, did)
            datasets.append(
                {
                    "id": did,
                    "found": art is not None,
                    "name": art.name if art else None,
                    "meta": dict(art.meta) if art else None,
                }
            )
        trans = [
            {
                "from": t.from_stage,
                "to": t.to_stage,
                "kind": t.kind,
                "actor": t.actor,
                "reason": t.reason,
                "gate_decision_id": t.gate_decision_id,
                "policy_hash": t.policy_hash,
                "override": t.override,
                "at": t.created_at.isoformat(),
            }
            for t in s.scalars(
                select(StageTransition)
                .where(StageTransition.model_name == v.name, StageTransition.version == v.version)
                .order_by(StageTransition.id)
            )
        ]
    evals = [_run_facts(r, v.model_hash) for r in _eval_runs(store, v.eval_run_ids, v.model_hash)]
    base = []
    if v.base_model_hash and v.base_model_hash != v.model_hash:
        base = [_run_facts(r, v.model_hash) for r in _eval_runs(store, [], v.base_model_hash)]
    decisions = list_gate_decisions(
        store, model_hash=v.model_hash, registry_model=v.name, registry_version=v.version
    )
    return Lineage(
        version=v,
        adapter=adapter,
        training_run=training,
        dataset_versions=datasets,
        eval_runs=evals,
        baseline_runs=base,
        gate_decisions=decisions,
        transitions=trans,
    )


@dataclass(frozen=True)
class InventoryRow:
    """One version in the inventory; ``flags`` name what a production version lacks."""

    ref: str
    stage: str
    model_uri: str
    model_hash: str
    created_at: str
    flags: list[str] = field(default_factory=list)


def inventory(store: Store) -> list[InventoryRow]:
    """List every version with its stage; flag production versions lacking evidence.

    Flags (production versions only): ``no post-tuning safety eval`` (no eval run of its
    identity), ``no passing gate decision`` (the latest decision is missing or failed; an
    override is named too), ``no guardrails configured``.
    """
    from finegate.gate.decisions import list_gate_decisions

    rows = []
    for v in list_versions(store):
        flags: list[str] = []
        if v.stage == "production":
            evals = [
                r
                for r in _eval_runs(store, v.eval_run_ids, v.model_hash)
                if r.kind == "eval" and r.model_hash == v.model_hash and r.status.startswith("done")
            ]
            if not evals:
                flags.append("no post-tuning safety eval")
            decisions = list_gate_decisions(
                store, model_hash=v.model_hash, registry_model=v.name, registry_version=v.version
            )
            if not decisions or not decisions[0].passed:
                flags.append("no passing gate decision")
            with store.session() as s:
                overridden = s.scalar(
                    select(StageTransition.id)
                    .where(
                        StageTransition.model_name == v.name,
                        StageTransition.version == v.version,
                        StageTransition.override.is_(True),
                    )
                    .limit(1)
                )
            if overridden is not None:
                flags.append("promoted by gate override")
            if not v.guardrails:
                flags.append("no guardrails configured")
        rows.append(
            InventoryRow(
                ref=v.ref,
                stage=v.stage,
                model_uri=v.model_uri,
                model_hash=v.model_hash,
                created_at=v.created_at.isoformat(),
                flags=flags,
            )
        )
    return rows
