"""The tamper-evident audit log: append-only, hash-chained events.

Each event's ``hash`` is the sha256 of the canonical JSON of all its fields plus the previous
event's hash, so changing, deleting or reordering any stored event breaks the chain at that
point. A one-row head (``audit_head``) records the last sequence number and hash, so cutting
events off the end is noticed too (unless the head is rewritten as well: for that, record
``finegate audit head`` somewhere outside the database and pass it to ``verify``).

Appends are serialized so two writers can never fork the chain: on PostgreSQL a transaction-
scoped advisory lock, on SQLite an immediate (write-locking) transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from finegate.store.schema import AuditEvent, AuditHead

if TYPE_CHECKING:
    from finegate.governance._auth import Principal
    from finegate.store.db import Store

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

# An arbitrary fixed key: every finegate audit append in one PostgreSQL database takes it.
_PG_LOCK_KEY = 0x46474155  # "FGAU"


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def state_hash(state: Mapping[str, Any] | str | None) -> str | None:
    """Return the sha256 of an object's state (canonical JSON), or pass a hash through.

    Args:
        state: A JSON-able mapping (hashed), an already computed hash (returned as is) or
            None (no state: the object did not exist before, or no longer exists after).
    """
    if state is None or isinstance(state, str):
        return state
    return hashlib.sha256(canonical_json(state).encode()).hexdigest()


def _timestamp(value: datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event: AuditEvent, *, seq: int | None = None) -> str:
    """Recompute an event's hash from its fields (optionally as if it had another ``seq``)."""
    payload = {
        "seq": event.seq if seq is None else seq,
        "created_at": _timestamp(event.created_at),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before_hash": event.before_hash,
        "after_hash": event.after_hash,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def lock_chain(session: Session) -> None:
    """Take the audit chain's write lock for the rest of ``session``'s transaction.

    PostgreSQL: ``pg_advisory_xact_lock`` (released at commit or rollback). SQLite: start an
    immediate transaction when none is open yet; a transaction that has already written holds
    SQLite's single write lock anyway. Safe to call more than once.
    """
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def write_transaction(store: Store) -> Iterator[Session]:
    """Yield a session whose transaction holds the audit lock from its start; commit at the end.

    Use it for a mutation and its audit event together, so both commit or neither does and
    concurrent mutations are serialized (e.g. two registrations cannot pick the same version).
    """
    with Session(store.engine, expire_on_commit=False) as session:
        try:
            lock_chain(session)
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _actor_name(actor: Principal | str) -> str:
    return actor if isinstance(actor, str) else actor.name


def append_event(
    session: Session,
    actor: Principal | str,
    action: str,
    object_type: str,
    object_id: str,
    *,
    before: Mapping[str, Any] | str | None = None,
    after: Mapping[str, Any] | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside ``session``'s transaction (commits with the caller's change).

    Args:
        session: An open session; the chain lock is taken in it (see :func:`lock_chain`).
        actor: The principal (or its name) who did it.
        action: A dotted verb, e.g. ``registry.promote`` or ``data.clean``.
        object_type: What kind of object changed, e.g. ``model_version``.
        object_id: Which one, e.g. ``support-bot@3``.
        before: The object's state before (a mapping is hashed; a string is taken as a hash).
        after: The object's state after (likewise).
        details: Small JSON facts worth keeping in the log itself (reason, policy hash, ...).

    Returns:
        The new event (flushed, with its ``seq`` and ``hash``).
    """
    lock_chain(session)
    head = session.get(AuditHead, 1)
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last is not None else (1, GENESIS)
    if head is not None and head.seq >= seq:
        # Events were cut off the end; keep numbering after the head so the gap stays visible.
        seq = head.seq + 1
    event = AuditEvent(
        seq=seq,
        created_at=datetime.now(UTC),
        actor=_actor_name(actor),
        action=action,
        object_type=object_type,
        object_id=object_id,
        before_hash=state_hash(before),
        after_hash=state_hash(after),
        # Store exactly what is hashed: round-trip through canonical JSON first.
        details=json.loads(canonical_json(dict(details or {}))),
        prev_hash=prev,
        hash="",
    )
    event.hash = event_hash(event)
    session.add(event)
    if head is None:
        session.add(AuditHead(id=1, seq=seq, hash=event.hash))
    else:
        head.seq, head.hash = seq, event.hash
    session.flush()
    return event


def audit_event(
    store: Store,
    actor: Principal | str,
    action: str,
    object_type: str,
    object_id: str,
    *,
    before: Mapping[str, Any] | str | None = None,
    after: Mapping[str, Any] | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event in its own transaction; see :func:`append_event` for arguments.

    Every mutating action of every stage records one of these. When the change itself is a
    database write, prefer :func:`write_transaction` + :func:`append_event` so the change and
    its event commit together.
    """
    with write_transaction(store) as session:
        return append_event(
            session,
            actor,
            action,
            object_type,
            object_id,
            before=before,
            after=after,
            details=details,
        )


def list_events(
    store: Store,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    object_prefix: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Return events in chain order (oldest first), optionally filtered.

    ``object_prefix`` matches ids starting with it (``support-bot@`` selects every version);
    ``limit`` keeps the newest ``limit`` events.
    """
    stmt = select(AuditEvent)
    if object_type is not None:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    if object_prefix is not None:
        stmt = stmt.where(AuditEvent.object_id.startswith(object_prefix, autoescape=True))
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    stmt = stmt.order_by(AuditEvent.seq.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with store.session() as s:
        return list(reversed(list(s.scalars(stmt))))


@dataclass(frozen=True)
class ChainProblem:
    """One place where the chain does not hold.

    Attributes:
        seq: The sequence number concerned.
        kind: ``modified``, ``deleted``, ``reordered``, ``broken`` or ``head``.
        message: A sentence naming the event and what is wrong.
    """

    seq: int
    kind: str
    message: str


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify_chain`."""

    events: int
    head_seq: int
    head_hash: str
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chain verified with no problem."""
        return not self.problems


_REORDER_WINDOW = 64


def _recorded_seq(row: AuditEvent) -> int | None:
    """Return the nearby seq under which a moved event's hash still verifies, if any."""
    for k in range(max(1, row.seq - _REORDER_WINDOW), row.seq + _REORDER_WINDOW + 1):
        if k != row.seq and event_hash(row, seq=k) == row.hash:
            return k
    return None


def verify_chain(store: Store, *, expect_head: str | None = None) -> ChainReport:
    """Recompute every hash and link; name each modified, deleted or reordered event.

    Args:
        store: The store to check.
        expect_head: A head hash recorded earlier outside the database; when given, it must
            still be in the chain (catches a rewritten tail plus rewritten head row).
    """
    with store.session() as s:
        rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        head = s.get(AuditHead, 1)
        head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
        total = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
    problems: list[ChainProblem] = []
    known_hashes = {r.hash for r in rows}
    prev_hash, expected, prev_flagged = GENESIS, 1, False
    for row in rows:
        if row.seq > expected:
            gap = f"{expected}" if row.seq == expected + 1 else f"{expected}-{row.seq - 1}"
            problems.append(
                ChainProblem(
                    expected,
                    "deleted",
                    f"event(s) {gap} deleted: seq {row.seq} follows seq {expected - 1}",
                )
            )
        original = None if event_hash(row) == row.hash else _recorded_seq(row)
        if original is not None:
            problems.append(
                ChainProblem(
                    row.seq,
                    "reordered",
                    f"event at seq {row.seq} ({row.action} "
                    f"{row.object_id}) was recorded as seq {original}: "
                    "events were reordered",
                )
            )
        elif event_hash(row) != row.hash:
            problems.append(
                ChainProblem(
                    row.seq,
                    "modified",
                    f"event {row.seq} ({row.action} {row.object_id}) was "
                    "modified: its content no longer matches its hash",
                )
            )
        elif row.prev_hash != prev_hash and row.seq == expected and not prev_flagged:
            problems.append(
                ChainProblem(
                    row.seq,
                    "broken",
                    f"event {row.seq} does not link to event {row.seq - 1} (prev_hash mismatch)",
                )
            )
        prev_flagged = (
            bool(problems)
            and problems[-1].seq == row.seq
            and problems[-1].kind in ("reordered", "modified")
        )
        prev_hash, expected = row.hash, row.seq + 1
    last_seq = rows[-1].seq if rows else 0
    if head_seq > last_seq:
        gap = f"{last_seq + 1}" if head_seq == last_seq + 1 else f"{last_seq + 1}-{head_seq}"
        problems.append(
            ChainProblem(
                last_seq + 1,
                "deleted",
                f"event(s) {gap} deleted from the end of the log (head says seq {head_seq})",
            )
        )
    elif rows and (head_seq != last_seq or head_hash != rows[-1].hash):
        problems.append(
            ChainProblem(
                last_seq,
                "head",
                f"head (seq {head_seq}) does not match the last event (seq {last_seq})",
            )
        )
    if expect_head is not None and expect_head not in known_hashes:
        problems.append(
            ChainProblem(
                head_seq,
                "head",
                f"expected head {expect_head[:16]}… is not in the chain: "
                "events recorded up to it were changed or removed",
            )
        )
    return ChainReport(events=int(total), head_seq=head_seq, head_hash=head_hash, problems=problems)
