"""Stage changes: gated promotion, supersession and rollback, each with its audit event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from finegate.errors import ConfigError, GateRequiredError, NotFoundError
from finegate.governance._audit import append_event, audit_event, write_transaction
from finegate.governance._auth import Action, Principal, authorize, resolve_actor
from finegate.registry._private import GATED_STAGES, STAGES, _row, _state
from finegate.store.schema import ModelVersion, StageTransition

if TYPE_CHECKING:
    from finegate.gate.decisions import GateDecisionRecord
    from finegate.store.db import Store

_ALLOWED: dict[str, tuple[str, ...]] = {
    "candidate": ("approved", "production", "retired"),
    "approved": ("production", "retired"),
    "production": ("retired",),
    "retired": ("approved", "production"),
}


def _latest_decision(store: Store, row: ModelVersion) -> GateDecisionRecord | None:
    from finegate.gate.decisions import list_gate_decisions

    found = list_gate_decisions(
        store,
        model_hash=row.model_hash,
        registry_model=row.model_name,
        registry_version=row.version,
    )
    return found[0] if found else None


@dataclass(frozen=True)
class Transition:
    """One stage change the registry made."""

    ref: str
    from_stage: str
    to_stage: str
    kind: str
    gate_decision_id: int | None = None
    policy_hash: str | None = None
    override: bool = False
    reason: str = ""
    superseded: list[str] = field(default_factory=list)


def _move(
    s: Session,
    actor: Principal,
    row: ModelVersion,
    to: str,
    kind: str,
    *,
    reason: str = "",
    decision: GateDecisionRecord | None = None,
    override: bool = False,
) -> None:
    before = _state(row)
    frm = row.stage
    row.stage = to
    row.stage_changed_at = datetime.now(UTC)
    if kind == "rollback" and frm == "production":
        row.meta = {**(row.meta or {}), "rolled_back": True}
    elif kind == "promote" and to == "production" and (row.meta or {}).get("rolled_back"):
        row.meta = {k: v for k, v in row.meta.items() if k != "rolled_back"}
    s.add(
        StageTransition(
            model_name=row.model_name,
            version=row.version,
            from_stage=frm,
            to_stage=to,
            kind=kind,
            actor=actor.name,
            reason=reason,
            gate_decision_id=decision.id if decision else None,
            policy_hash=decision.policy_hash if decision else None,
            override=override,
        )
    )
    s.flush()
    append_event(
        s,
        actor,
        f"registry.{kind}",
        "model_version",
        f"{row.model_name}@{row.version}",
        before=before,
        after=_state(row),
        details={
            "from": frm,
            "to": to,
            "reason": reason or None,
            "gate_decision_id": decision.id if decision else None,
            "policy_hash": decision.policy_hash if decision else None,
            "gate_passed": decision.passed if decision else None,
            "override": override,
        },
    )


def promote(
    store: Store,
    ref: str,
    to_stage: str,
    *,
    override: bool = False,
    reason: str = "",
    actor: Principal | None = None,
) -> Transition:
    """Move a version to ``to_stage``; ``approved``/``production`` need a passing gate.

    The latest gate decision for the version's identity hash (or linked to it explicitly)
    must have passed; its id and policy hash are recorded with the promotion. An actor with
    ``registry:override-gate`` may promote without one when it gives ``override=True`` and a
    reason; the override is recorded. Promoting to production retires the previous production
    version. A denied promotion is recorded in the audit log too.

    Raises:
        PermissionDeniedError: when the actor lacks the permission.
        GateRequiredError: when no passing gate decision exists and there is no override.
        ConfigError: for an unknown stage or a transition that is not allowed.
    """
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.PROMOTE, object_type="model_version", object_id=ref)
    if to_stage not in STAGES or to_stage == "candidate":
        raise ConfigError(
            f"cannot promote to {to_stage!r}", hint="stages: approved, production, retired"
        )
    if override:
        authorize(store, actor, Action.OVERRIDE_GATE, object_type="model_version", object_id=ref)
        if not reason.strip():
            raise ConfigError("an override needs a reason", hint="pass --reason TEXT")
    with store.session() as s:
        row = _row(s, ref)
    vref = f"{row.model_name}@{row.version}"
    if to_stage not in _ALLOWED[row.stage]:
        raise ConfigError(
            f"{vref} is {row.stage}; it cannot move to {to_stage}",
            hint=f"allowed: {', '.join(_ALLOWED[row.stage]) or 'none'}",
        )
    decision = _latest_decision(store, row) if to_stage in GATED_STAGES else None
    if to_stage in GATED_STAGES and not override and (decision is None or not decision.passed):
        why = (
            "no gate decision is recorded for it"
            if decision is None
            else f"its latest gate decision (#{decision.id}, policy {decision.policy_name}) failed"
        )
        audit_event(
            store,
            actor,
            "registry.promote_denied",
            "model_version",
            vref,
            details={
                "to": to_stage,
                "reason": why,
                "gate_decision_id": decision.id if decision else None,
            },
        )
        raise GateRequiredError(
            f"cannot promote {vref} to {to_stage}: {why}",
            hint="run the release gate on this version, or have an admin use --override --reason",
        )
    superseded: list[str] = []
    with write_transaction(store) as s:
        row = _row(s, vref)
        if to_stage not in _ALLOWED[row.stage]:  # changed since we looked
            raise ConfigError(f"{vref} is now {row.stage}; it cannot move to {to_stage}")
        if to_stage == "production":
            current = s.scalars(
                select(ModelVersion).where(
                    ModelVersion.model_name == row.model_name, ModelVersion.stage == "production"
                )
            )
            for other in list(current):
                _move(s, actor, other, "retired", "supersede", reason=f"replaced by {vref}")
                superseded.append(f"{other.model_name}@{other.version}")
        frm = row.stage
        _move(
            s,
            actor,
            row,
            to_stage,
            "promote" if to_stage != "retired" else "retire",
            reason=reason,
            decision=decision,
            override=override and (decision is None or not decision.passed),
        )
    return Transition(
        ref=vref,
        from_stage=frm,
        to_stage=to_stage,
        kind="promote" if to_stage != "retired" else "retire",
        gate_decision_id=decision.id if decision else None,
        policy_hash=decision.policy_hash if decision else None,
        override=override and (decision is None or not decision.passed),
        reason=reason,
        superseded=superseded,
    )


def _rollback_target(s: Session, name: str, current: ModelVersion) -> ModelVersion | None:
    history = s.scalars(
        select(StageTransition)
        .where(StageTransition.model_name == name, StageTransition.to_stage == "production")
        .order_by(StageTransition.id.desc())
    )
    for t in history:
        if t.version == current.version:
            continue
        row = s.scalar(
            select(ModelVersion).where(
                ModelVersion.model_name == name, ModelVersion.version == t.version
            )
        )
        if row is not None and not (row.meta or {}).get("rolled_back"):
            return row
    return None


def rollback(
    store: Store, name: str, *, reason: str = "", actor: Principal | None = None
) -> Transition:
    """Return ``name``'s production to the previous production version, in one step.

    The current production version is retired and marked rolled back (so a later rollback
    never returns to it); the previous one goes back to production without a new gate (it
    passed one when it was first promoted). Needs ``registry:rollback``.

    Raises:
        NotFoundError: when there is no production version or no earlier one to return to.
    """
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.ROLLBACK, object_type="registered_model", object_id=name)
    with write_transaction(store) as s:
        current = s.scalar(
            select(ModelVersion).where(
                ModelVersion.model_name == name, ModelVersion.stage == "production"
            )
        )
        if current is None:
            raise NotFoundError(f"model {name!r} has no production version to roll back")
        target = _rollback_target(s, name, current)
        if target is None:
            raise NotFoundError(
                f"{name}@{current.version} is the first production version; "
                "there is nothing to roll back to",
                hint="retire it with promote --to retired instead",
            )
        why = reason or f"rollback from {name}@{current.version}"
        _move(s, actor, current, "retired", "rollback", reason=why)
        frm = target.stage
        _move(s, actor, target, "production", "restore", reason=why)
        return Transition(
            ref=f"{name}@{target.version}",
            from_stage=frm,
            to_stage="production",
            kind="rollback",
            reason=why,
            superseded=[f"{name}@{current.version}"],
        )
