"""SQLAlchemy models of the store. Every change here needs an Alembic migration.

The schema is portable between SQLite and PostgreSQL: JSON columns, string ids, UTC
timestamps. Large payloads (adapters, datasets, reports) are artifacts referenced by sha256.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Return the current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every finegate table."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """A unit of recorded work (an evaluation, a scan, a training run, a demo)."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    model_uri: Mapped[str | None] = mapped_column(String(512), nullable=True)
    model_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ModelCall(Base):
    """One model call: the request, the response, latency and tokens, and who answered.

    ``(model_hash, request_hash)`` is the cache key: an identical request to an identical model
    is answered from here unless caching is turned off.
    """

    __tablename__ = "model_calls"
    __table_args__ = (Index("ix_model_calls_cache", "model_hash", "request_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    model_uri: Mapped[str] = mapped_column(String(512))
    model_hash: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Artifact(Base):
    """A content-addressed file under ``$FINEGATE_HOME/artifacts/<sha256>``."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(512), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VaultEntry(Base):
    """A reversible pseudonym: ``token`` maps to the encrypted original within a namespace."""

    __tablename__ = "vault_entries"

    namespace: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvalResult(Base):
    """One evaluated case of an eval run (one repeat): the full trace and every verdict.

    ``(run_id, case_id, repeat)`` is unique, so resuming a run never duplicates a result.
    """

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "case_id", "repeat", name="uq_eval_results_case"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(64), index=True)
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[list[Any]] = mapped_column(JSON)
    output: Mapped[str] = mapped_column(Text, default="")
    tool_calls: Mapped[list[Any]] = mapped_column(JSON)
    scores: Mapped[list[Any]] = mapped_column(JSON)
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- governance: registry, principals, audit, gate decisions (migration 0003_governance) ------


class RegisteredModel(Base):
    """A named model in the registry; its versions live in ``model_versions``."""

    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """One registered version: what it is (identity, adapter), where it came from, its stage.

    ``training_run_id`` and ``dataset_version_ids`` are plain references (no foreign keys) so
    later stages can link records whose tables they own.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "version", name="uq_model_versions_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("registered_models.name", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    model_uri: Mapped[str] = mapped_column(String(1024))
    base_model_uri: Mapped[str] = mapped_column(String(1024))
    base_model_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_hash: Mapped[str] = mapped_column(String(128), index=True)
    adapter_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    intended_use: Mapped[str] = mapped_column(Text, default="")
    training_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dataset_version_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    eval_run_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    guardrails: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stage_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StageTransition(Base):
    """A stage change of a model version (promotion, supersession, rollback)."""

    __tablename__ = "stage_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    gate_decision_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    policy_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GateDecision(Base):
    """A release gate's verdict on a run (optionally versus a baseline) under a policy."""

    __tablename__ = "gate_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    baseline_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_hash: Mapped[str] = mapped_column(String(128), index=True)
    policy_hash: Mapped[str] = mapped_column(String(64))
    policy_name: Mapped[str] = mapped_column(String(128))
    passed: Mapped[bool] = mapped_column(Boolean)
    rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    registry_model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    registry_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class Principal(Base):
    """A person or service that acts on finegate, with one role."""

    __tablename__ = "principals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiToken(Base):
    """An API token of a principal: only a salted HMAC-SHA256 of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("principals.id", ondelete="CASCADE"), index=True
    )
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEvent(Base):
    """One hash-chained audit event; ``hash`` covers every field and ``prev_hash``."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(256))
    before_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    after_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's head (one row, ``id = 1``): lets ``verify`` notice events cut off the end."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


# --- gateway: API keys, kill switch, review queue, request log, incidents (0005_gateway) -----


class GatewayKey(Base):
    """A gateway API key: only the SHA-256 of the (high-entropy) key is stored, with its tier."""

    __tablename__ = "gateway_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), default="")
    tier: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rotated_from: Mapped[str | None] = mapped_column(String(32), nullable=True)


class GatewayModelState(Base):
    """Kill-switch state of one model name served by the gateway."""

    __tablename__ = "gateway_model_state"

    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    changed_by: Mapped[str] = mapped_column(String(128), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GatewayReview(Base):
    """An output or tool call held for human review; ``response`` is the guarded answer."""

    __tablename__ = "gateway_reviews"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class GatewayRequestLog(Base):
    """One gateway request, redacted before storage; purged after the retention period."""

    __tablename__ = "gateway_request_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    tier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    messages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    output: Mapped[str] = mapped_column(Text, default="")
    tool_calls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    decisions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    upstream_ms: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class GatewayIncident(Base):
    """A usage-monitoring incident raised by the gateway (e.g. extraction probing by a key)."""

    __tablename__ = "gateway_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    throttled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- end gateway ---------------------------------------------------------------------------


# --- data: dataset versions and scans (migration 0006_data) --------------------------------


class DatasetVersion(Base):
    """A content-addressed dataset version: ``id`` is the sha256 of its canonical JSONL.

    The records themselves are the artifact with the same hash (``artifact_sha256``), so the
    registry's lineage finds a model's dataset versions among the artifacts too.
    ``transformation`` holds ``kind`` (import/scan/clean), ``policy_hash``, ``policy_name`` and
    ``tool_version``; ``sources`` the declared sources with provenance and file hashes.
    """

    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="", index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    transformation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    approver: Mapped[str | None] = mapped_column(String(128), nullable=True)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    report_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetScan(Base):
    """One scan of a dataset version under a policy; the full report is an artifact."""

    __tablename__ = "dataset_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    policy_name: Mapped[str] = mapped_column(String(128))
    policy_hash: Mapped[str] = mapped_column(String(64))
    tool_version: Mapped[str] = mapped_column(String(64))
    engine: Mapped[str] = mapped_column(String(16), default="local")
    records: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    malformed: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- end data ------------------------------------------------------------------------------


# --- monitor: scheduled monitors, their runs, incidents (migration 0008_monitor) ----------


class Monitor(Base):
    """A scheduled evaluation of a deployment against its pinned release baseline run."""

    __tablename__ = "monitors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    target: Mapped[str] = mapped_column(String(512))
    suite: Mapped[str] = mapped_column(String(512))
    every_s: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str | None] = mapped_column(String(512), nullable=True)
    baseline_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MonitorRun(Base):
    """One monitor check: the eval run, the baseline it was compared with and the outcome."""

    __tablename__ = "monitor_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("monitors.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[str] = mapped_column(String(64))
    baseline_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_target: Mapped[str] = mapped_column(String(1024), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Incident(Base):
    """A safety incident: opened by a monitor, imported from the gateway, or by hand."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    source: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    monitor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    model_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    target: Mapped[str | None] = mapped_column(String(512), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_by: Mapped[str] = mapped_column(String(128), default="")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IncidentEvent(Base):
    """One step of an incident's timeline (who did what, when); mirrored in the audit log."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- end monitor ---------------------------------------------------------------------------
