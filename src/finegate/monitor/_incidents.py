"""Incidents: open, contain, roll back, revoke keys, close; every step timed, attributed, audited.

Each step writes an :class:`~finegate.store.schema.IncidentEvent` and an audit event in the
same transaction (``incident.<step>`` on object ``incident``/``<id>``). Steps that act on
another subsystem (the gateway kill switch, the registry, gateway keys) call that subsystem's
own audited function first, so the trail shows both the action and the incident it served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from finegate.errors import ConfigError, NotFoundError
from finegate.store.schema import GatewayIncident, Incident, IncidentEvent

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from finegate.governance import Principal
    from finegate.store.db import Store

__all__ = [
    "INCIDENT_KINDS",
    "INCIDENT_STATUSES",
    "SEVERITIES",
    "IncidentInfo",
    "TimelineEntry",
    "close_incident",
    "contain_incident",
    "get_incident",
    "import_gateway_incidents",
    "list_incidents",
    "note_incident",
    "open_incident",
    "revoke_incident_keys",
    "rollback_incident",
]

INCIDENT_KINDS = ("leakage", "poisoning", "policy_violation", "misuse", "drift")
"""What went wrong."""
SEVERITIES = ("low", "medium", "high", "critical")
"""How bad it is."""
INCIDENT_STATUSES = ("open", "contained", "mitigated", "closed")
"""Lifecycle: open -> contained (kill switch) -> mitigated (rollback/keys) -> closed."""


@dataclass(frozen=True)
class TimelineEntry:
    """One step of an incident's timeline."""

    at: datetime
    action: str
    actor: str
    details: dict[str, Any]
    audit_seq: int | None


@dataclass(frozen=True)
class IncidentInfo:
    """An incident with its timeline, as the library returns it."""

    id: int
    title: str
    kind: str
    severity: str
    status: str
    source: str
    source_ref: str | None
    monitor_id: int | None
    model_name: str | None
    target: str | None
    details: dict[str, Any]
    opened_by: str
    opened_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    timeline: list[TimelineEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (timestamps as ISO text)."""
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "source": self.source,
            "source_ref": self.source_ref,
            "monitor_id": self.monitor_id,
            "model_name": self.model_name,
            "target": self.target,
            "details": self.details,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at.isoformat(),
            "closed_by": self.closed_by,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "timeline": [
                {
                    "at": t.at.isoformat(),
                    "action": t.action,
                    "actor": t.actor,
                    "details": t.details,
                    "audit_seq": t.audit_seq,
                }
                for t in self.timeline
            ],
        }


def _state(row: Incident) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "kind": row.kind,
        "severity": row.severity,
        "status": row.status,
        "model_name": row.model_name,
    }


def _info(s: Session, row: Incident) -> IncidentInfo:
    events = s.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == row.id).order_by(IncidentEvent.id)
    )
    return IncidentInfo(
        id=row.id,
        title=row.title,
        kind=row.kind,
        severity=row.severity,
        status=row.status,
        source=row.source,
        source_ref=row.source_ref,
        monitor_id=row.monitor_id,
        model_name=row.model_name,
        target=row.target,
        details=dict(row.details or {}),
        opened_by=row.opened_by,
        opened_at=row.opened_at,
        closed_by=row.closed_by,
        closed_at=row.closed_at,
        timeline=[
            TimelineEntry(e.created_at, e.action, e.actor, dict(e.details or {}), e.audit_seq)
            for e in events
        ],
    )


def record_step(
    s: Session,
    actor: Principal | str,
    row: Incident,
    action: str,
    details: Mapping[str, Any] | None = None,
    *,
    before: Mapping[str, Any] | None = None,
) -> None:
    """Append one timeline event and its audit event inside ``s`` (used by the monitor too)."""
    from finegate.governance import append_event

    name = actor if isinstance(actor, str) else actor.name
    event = append_event(
        s,
        actor,
        f"incident.{action}",
        "incident",
        str(row.id),
        before=before,
        after=_state(row),
        details=dict(details or {}),
    )
    s.add(
        IncidentEvent(
            incident_id=row.id,
            action=action,
            actor=name,
            details=dict(details or {}),
            audit_seq=event.seq,
            created_at=event.created_at,
        )
    )


def _check(kind: str, severity: str) -> None:
    if kind not in INCIDENT_KINDS:
        raise ConfigError(f"unknown incident kind {kind!r}", hint=", ".join(INCIDENT_KINDS))
    if severity not in SEVERITIES:
        raise ConfigError(f"unknown severity {severity!r}", hint=", ".join(SEVERITIES))


def new_incident(
    s: Session,
    actor: Principal | str,
    *,
    title: str,
    kind: str,
    severity: str,
    source: str,
    source_ref: str | None = None,
    monitor_id: int | None = None,
    model_name: str | None = None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Incident:
    """Insert an incident and its ``open`` event inside ``s`` (no permission check)."""
    _check(kind, severity)
    row = Incident(
        title=title[:256],
        kind=kind,
        severity=severity,
        status="open",
        source=source,
        source_ref=source_ref,
        monitor_id=monitor_id,
        model_name=model_name,
        target=target,
        details=dict(details or {}),
        opened_by=actor if isinstance(actor, str) else actor.name,
        opened_at=datetime.now(UTC),
    )
    s.add(row)
    s.flush()
    record_step(s, actor, row, "open", {"source": source, "source_ref": source_ref})
    return row


def open_incident(
    store: Store,
    title: str,
    *,
    kind: str,
    severity: str = "medium",
    model_name: str | None = None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    actor: Principal | None = None,
) -> IncidentInfo:
    """Open an incident by hand; any principal that can read runs may report one.

    Raises:
        ConfigError: for an unknown kind or severity.
    """
    from finegate.governance import Action, authorize, resolve_actor, write_transaction

    who = resolve_actor(store, actor)
    authorize(store, who, Action.READ_RUNS, object_type="incident", object_id="new")
    with write_transaction(store) as s:
        row = new_incident(
            s,
            who,
            title=title,
            kind=kind,
            severity=severity,
            source="manual",
            model_name=model_name,
            target=target,
            details=details,
        )
        return _info(s, row)


def get_incident(store: Store, incident_id: int) -> IncidentInfo:
    """Return one incident with its timeline.

    Raises:
        NotFoundError: when there is no such incident.
    """
    with store.session() as s:
        row = s.get(Incident, incident_id)
        if row is None:
            raise NotFoundError(f"no incident #{incident_id}", hint="see finegate incident list")
        return _info(s, row)


def list_incidents(
    store: Store, *, status: str | None = None, open_only: bool = False
) -> list[IncidentInfo]:
    """Return incidents, newest first (``open_only``: every status but closed)."""
    stmt = select(Incident).order_by(Incident.id.desc())
    if status is not None:
        stmt = stmt.where(Incident.status == status)
    if open_only:
        stmt = stmt.where(Incident.status != "closed")
    with store.session() as s:
        return [_info(s, r) for r in s.scalars(stmt)]


def _step(
    store: Store,
    incident_id: int,
    who: Principal,
    action: str,
    details: Mapping[str, Any],
    *,
    status: str | None = None,
) -> IncidentInfo:
    from finegate.governance import write_transaction

    with write_transaction(store) as s:
        row = s.get(Incident, incident_id)
        if row is None:
            raise NotFoundError(f"no incident #{incident_id}")
        before = _state(row)
        if status is not None and row.status != "closed":
            # Never move backwards: contained -> mitigated, not mitigated -> contained.
            if INCIDENT_STATUSES.index(status) > INCIDENT_STATUSES.index(row.status):
                row.status = status
        if status == "closed":
            row.closed_by, row.closed_at = who.name, datetime.now(UTC)
        record_step(s, who, row, action, details, before=before)
        s.flush()
        return _info(s, row)


def _open_row(store: Store, incident_id: int) -> IncidentInfo:
    info = get_incident(store, incident_id)
    if info.status == "closed":
        raise ConfigError(f"incident #{incident_id} is closed", hint="open a new one")
    return info


def contain_incident(
    store: Store,
    incident_id: int,
    *,
    gateway_model: str | None = None,
    reason: str = "",
    actor: Principal | None = None,
) -> IncidentInfo:
    """Disable the affected model at every gateway (kill switch); needs ``guardrails:configure``.

    Args:
        store: The store.
        incident_id: The incident.
        gateway_model: The model name the gateway serves (default: the incident's model).
        reason: Why (recorded with the kill switch and the incident).
        actor: Who acts (default: the current principal).
    """
    from finegate.gateway import set_model_enabled
    from finegate.governance import resolve_actor

    who = resolve_actor(store, actor)
    info = _open_row(store, incident_id)
    model = gateway_model or info.details.get("gateway_model") or info.model_name
    if not model:
        raise ConfigError(f"incident #{incident_id} names no model", hint="pass --model")
    why = reason or f"incident #{incident_id}: {info.title}"
    set_model_enabled(store, str(model), False, reason=why, actor=who)
    return _step(store, incident_id, who, "contain", {"gateway_model": model, "reason": why},
                 status="contained")  # fmt: skip


def rollback_incident(
    store: Store,
    incident_id: int,
    *,
    model_name: str | None = None,
    reenable: str | None = None,
    reason: str = "",
    actor: Principal | None = None,
) -> IncidentInfo:
    """Roll the registry's production version back; needs ``registry:rollback``.

    Args:
        store: The store.
        incident_id: The incident.
        model_name: The registry name (default: the incident's model).
        reenable: A gateway model name to re-enable after the rollback (undoes ``contain``).
        reason: Why.
        actor: Who acts.
    """
    from finegate.gateway import set_model_enabled
    from finegate.governance import resolve_actor
    from finegate.registry import rollback

    who = resolve_actor(store, actor)
    info = _open_row(store, incident_id)
    name = model_name or info.model_name
    if not name:
        raise ConfigError(f"incident #{incident_id} names no registry model", hint="pass --model")
    why = reason or f"incident #{incident_id}: {info.title}"
    t = rollback(store, name, reason=why, actor=who)
    details: dict[str, Any] = {"model": name, "from": t.ref, "kind": t.kind,
                               "superseded": list(t.superseded), "reason": why}  # fmt: skip
    if reenable:
        set_model_enabled(store, reenable, True, reason=f"rolled back ({why})", actor=who)
        details["reenabled"] = reenable
    return _step(store, incident_id, who, "rollback", details, status="mitigated")


def revoke_incident_keys(
    store: Store,
    incident_id: int,
    key_ids: Sequence[str] = (),
    *,
    rotate: bool = False,
    actor: Principal | None = None,
) -> tuple[IncidentInfo, dict[str, str]]:
    """Revoke (or rotate) gateway keys; default: the keys the incident names. Needs ``auth:manage``.

    Returns:
        The incident and, when rotating, old key id -> new key (shown once, never stored).
    """
    from finegate.gateway import revoke_key, rotate_key
    from finegate.governance import resolve_actor

    who = resolve_actor(store, actor)
    info = _open_row(store, incident_id)
    keys = list(key_ids) or [str(k) for k in info.details.get("key_ids", [])]
    if not keys:
        raise ConfigError(f"incident #{incident_id} names no keys", hint="pass --key KEY_ID")
    new: dict[str, str] = {}
    for kid in keys:
        if rotate:
            _, secret = rotate_key(store, kid, actor=who)
            new[kid] = secret
        else:
            revoke_key(store, kid, actor=who)
    step = "rotate_keys" if rotate else "revoke_keys"
    return _step(store, incident_id, who, step, {"keys": keys}, status="mitigated"), new


def note_incident(
    store: Store, incident_id: int, text: str, *, actor: Principal | None = None
) -> IncidentInfo:
    """Add a note to the timeline."""
    from finegate.governance import Action, authorize, resolve_actor

    who = resolve_actor(store, actor)
    authorize(store, who, Action.READ_RUNS, object_type="incident", object_id=str(incident_id))
    return _step(store, incident_id, who, "note", {"text": text})


def close_incident(
    store: Store,
    incident_id: int,
    *,
    resolution: str,
    actor: Principal | None = None,
) -> IncidentInfo:
    """Close an incident with a resolution; needs ``guardrails:configure`` (operator, admin).

    Raises:
        ConfigError: without a resolution, or when already closed.
    """
    from finegate.governance import Action, authorize, resolve_actor

    who = resolve_actor(store, actor)
    authorize(store, who, Action.CONFIGURE_GUARDRAILS, object_type="incident",
              object_id=str(incident_id))  # fmt: skip
    if not resolution.strip():
        raise ConfigError("closing an incident needs a resolution")
    _open_row(store, incident_id)
    return _step(store, incident_id, who, "close", {"resolution": resolution}, status="closed")


_GATEWAY_SEVERITY = {"low": "low", "medium": "medium", "high": "high", "critical": "critical"}


def import_gateway_incidents(store: Store, *, actor: Principal | None = None) -> list[int]:
    """Open one incident (kind ``misuse``) per gateway probing incident not imported yet.

    The gateway detects (e.g. extraction probing by a key); this links each detection to the
    incident process instead of detecting twice. Idempotent: ``source_ref`` is
    ``gateway:<id>``.

    Returns:
        The ids of the incidents opened.
    """
    from finegate.governance import Action, authorize, resolve_actor, write_transaction

    who = resolve_actor(store, actor)
    authorize(store, who, Action.READ_RUNS, object_type="incident", object_id="import")
    opened: list[int] = []
    with write_transaction(store) as s:
        seen = set(s.scalars(select(Incident.source_ref).where(Incident.source == "gateway")))
        for g in s.scalars(select(GatewayIncident).order_by(GatewayIncident.id)):
            ref = f"gateway:{g.id}"
            if ref in seen:
                continue
            row = new_incident(
                s,
                who,
                title=f"gateway: {g.kind} by key {g.key_id}",
                kind="misuse",
                severity=_GATEWAY_SEVERITY.get(g.severity, "medium"),
                source="gateway",
                source_ref=ref,
                details={
                    "key_ids": [g.key_id],
                    "gateway": dict(g.details or {}),
                    "throttled": bool(g.throttled),
                },  # fmt: skip
            )
            opened.append(row.id)
    return opened
