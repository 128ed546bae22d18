"""Gateway state in the store: kill switch, review queue, request log, usage incidents.

Mutations by people (kill switch, review decisions) are role-checked and audited. The
request log is written off the hot path by `finegate.gateway.request_log`, in batches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from finegate.errors import ConfigError, NotFoundError
from finegate.gateway.request_log import LOG_FIELDS
from finegate.store.schema import (
    GatewayIncident,
    GatewayModelState,
    GatewayRequestLog,
    GatewayReview,
)

if TYPE_CHECKING:
    from finegate.governance import Principal
    from finegate.store.db import Store

__all__ = [
    "ReviewInfo",
    "create_review",
    "decide_review",
    "disabled_models",
    "get_review",
    "list_incidents",
    "list_request_log",
    "list_reviews",
    "purge_request_log",
    "record_incident",
    "set_model_enabled",
]

log = logging.getLogger(__name__)


def _authorized(store: Store, actor: Principal | None, action: str, obj: str) -> Principal:
    from finegate.governance import Action, authorize, resolve_actor

    who = resolve_actor(store, actor)
    authorize(store, who, Action(action), object_type=obj)
    return who


# -- kill switch ------------------------------------------------------------------------------


def set_model_enabled(
    store: Store,
    model: str,
    enabled: bool,
    *,
    reason: str = "",
    actor: Principal | None = None,
) -> None:
    """Disable (kill switch) or re-enable a model at every gateway using this store; audited.

    Needs ``guardrails:configure``.
    """
    from finegate.governance import append_event, write_transaction

    if not model:
        raise ConfigError("a model name is needed")
    who = _authorized(store, actor, "guardrails:configure", "gateway_model")
    with write_transaction(store) as s:
        row = s.get(GatewayModelState, model)
        before = {"disabled": bool(row.disabled) if row else False}
        if row is None:
            row = GatewayModelState(model=model)
            s.add(row)
        row.disabled = not enabled
        row.reason = reason
        row.changed_by = who.name
        row.changed_at = datetime.now(UTC)
        append_event(
            s, who, "gateway.model.enable" if enabled else "gateway.model.disable",
            "gateway_model", model, before=before, after={"disabled": not enabled},
            details={"reason": reason},
        )  # fmt: skip


def disabled_models(store: Store) -> dict[str, str]:
    """Return disabled model names and the reason given."""
    with store.session() as s:
        rows = s.execute(
            select(GatewayModelState.model, GatewayModelState.reason).where(
                GatewayModelState.disabled.is_(True)
            )
        )
        return {str(m): str(r) for m, r in rows}


# -- review queue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewInfo:
    """A held answer."""

    id: str
    key_id: str
    model: str
    status: str
    reasons: list[str]
    request: dict[str, Any]
    response: dict[str, Any]
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str

    def to_dict(self, *, content: bool = True) -> dict[str, Any]:
        """Return a JSON-able dict (``content=False`` leaves out request and response)."""
        out: dict[str, Any] = {
            "id": self.id,
            "key_id": self.key_id,
            "model": self.model,
            "status": self.status,
            "reasons": list(self.reasons),
            "created_at": self.created_at.isoformat(),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "note": self.note,
        }
        if content:
            out["request"] = self.request
            out["response"] = self.response
        return out


def _review(row: GatewayReview) -> ReviewInfo:
    from finegate.gateway.keys import _utc

    created = _utc(row.created_at)
    assert created is not None
    return ReviewInfo(
        row.id,
        row.key_id,
        row.model,
        row.status,
        [str(r) for r in row.reasons or []],
        dict(row.request or {}),
        dict(row.response or {}),
        created,
        row.decided_by,
        _utc(row.decided_at),
        row.note,
    )


def create_review(
    store: Store,
    *,
    key_id: str,
    model: str,
    reasons: Sequence[str],
    request: dict[str, Any],
    response: dict[str, Any],
) -> str:
    """Hold an answer for review; return the review id.

    ``request`` must already be redacted; ``response`` is the guarded answer the client gets
    on approval (it may contain restored PII for tiers allowed to see it, which is why reading
    reviews needs ``gateway:read-logs``).
    """
    rid = f"rev_{uuid.uuid4().hex[:20]}"
    with store.session() as s:
        s.add(
            GatewayReview(
                id=rid,
                key_id=key_id,
                model=model,
                status="pending",
                reasons=list(reasons),
                request=request,
                response=response,
                created_at=datetime.now(UTC),
                note="",
            )
        )
    return rid


def get_review(store: Store, review_id: str) -> ReviewInfo:
    """Return a review (no permission check: the gateway uses it for the owning key)."""
    with store.session() as s:
        row = s.get(GatewayReview, review_id)
        if row is None:
            raise NotFoundError(f"no review {review_id!r}")
        return _review(row)


def list_reviews(
    store: Store, *, status: str | None = "pending", actor: Principal | None = None
) -> list[ReviewInfo]:
    """Return reviews, oldest first; needs ``gateway:read-logs``."""
    _authorized(store, actor, "gateway:read-logs", "gateway_review")
    stmt = select(GatewayReview).order_by(GatewayReview.created_at)
    if status:
        stmt = stmt.where(GatewayReview.status == status)
    with store.session() as s:
        return [_review(r) for r in s.scalars(stmt)]


def decide_review(
    store: Store,
    review_id: str,
    approve: bool,
    *,
    note: str = "",
    actor: Principal | None = None,
) -> ReviewInfo:
    """Approve (release the answer to its client) or deny a pending review; audited.

    Needs ``guardrails:configure``.

    Raises:
        NotFoundError: unknown review.
        ConfigError: already decided.
    """
    from finegate.governance import append_event, write_transaction

    who = _authorized(store, actor, "guardrails:configure", "gateway_review")
    status = "approved" if approve else "denied"
    with write_transaction(store) as s:
        row = s.get(GatewayReview, review_id)
        if row is None:
            raise NotFoundError(f"no review {review_id!r}", hint="see finegate review list")
        if row.status != "pending":
            raise ConfigError(f"review {review_id} was already {row.status}")
        row.status = status
        row.decided_by = who.name
        row.decided_at = datetime.now(UTC)
        row.note = note
        append_event(
            s, who, f"gateway.review.{'approve' if approve else 'deny'}", "gateway_review",
            review_id, before={"status": "pending"}, after={"status": status},
            details={"reasons": list(row.reasons or []), "note": note, "key_id": row.key_id},
        )  # fmt: skip
        return _review(row)


# -- incidents --------------------------------------------------------------------------------


def record_incident(
    store: Store, key_id: str, kind: str, severity: str, details: dict[str, Any], throttled: bool
) -> int:
    """Store a usage incident; return its id."""
    with store.session() as s:
        row = GatewayIncident(
            key_id=key_id,
            kind=kind,
            severity=severity,
            details=details,
            throttled=throttled,
            created_at=datetime.now(UTC),
        )
        s.add(row)
        s.flush()
        return int(row.id)


def list_incidents(store: Store, key_id: str | None = None) -> list[dict[str, Any]]:
    """Return usage incidents, oldest first."""
    stmt = select(GatewayIncident).order_by(GatewayIncident.id)
    if key_id:
        stmt = stmt.where(GatewayIncident.key_id == key_id)
    with store.session() as s:
        return [
            {
                "id": r.id,
                "key_id": r.key_id,
                "kind": r.kind,
                "severity": r.severity,
                "details": r.details,
                "throttled": r.throttled,
                "created_at": r.created_at.isoformat(),
            }
            for r in s.scalars(stmt)
        ]


# -- request log (written by `finegate.gateway.request_log`) ----------------------------------


def purge_request_log(store: Store, retention_days: float) -> int:
    """Delete request-log rows older than the retention period; return how many."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    with store.session() as s:
        result = s.execute(delete(GatewayRequestLog).where(GatewayRequestLog.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


def list_request_log(
    store: Store,
    *,
    key_id: str | None = None,
    limit: int = 100,
    actor: Principal | None = None,
) -> list[dict[str, Any]]:
    """Return the newest request-log rows (redacted); needs ``gateway:read-logs``."""
    _authorized(store, actor, "gateway:read-logs", "gateway_request_log")
    stmt = select(GatewayRequestLog).order_by(GatewayRequestLog.id.desc()).limit(limit)
    if key_id:
        stmt = stmt.where(GatewayRequestLog.key_id == key_id)
    with store.session() as s:
        out = []
        for r in s.scalars(stmt):
            row = {k: getattr(r, k) for k in LOG_FIELDS}
            row["created_at"] = r.created_at.isoformat()
            out.append(row)
        return out
