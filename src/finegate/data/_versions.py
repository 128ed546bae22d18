"""Dataset versions and lineage in the store (content-addressed, audited).

A version's id is the sha256 of its canonical JSONL (`canonical_bytes`), stored as the artifact
with the same hash. Creating a version and its audit event commit together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from finegate.data._records import Record, canonical_bytes
from finegate.errors import ConfigError, NotFoundError
from finegate.store.schema import DatasetScan, DatasetVersion

if TYPE_CHECKING:
    from finegate.data._policy import DataPolicy
    from finegate.governance import Principal
    from finegate.store.db import Store

KINDS = ("import", "scan", "clean")


@dataclass(frozen=True)
class VersionInfo:
    """A dataset version as stored (see `finegate.store.schema.DatasetVersion`)."""

    id: str
    name: str
    parent_id: str | None
    kind: str
    transformation: dict[str, Any]
    sources: list[dict[str, Any]]
    approver: str | None
    record_count: int
    artifact_sha256: str
    report_sha256: str | None
    summary: dict[str, Any]
    created_by: str
    created_at: datetime

    @property
    def short(self) -> str:
        """The first 12 hex digits of the id."""
        return self.id[:12]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id, "name": self.name, "parent_id": self.parent_id, "kind": self.kind,
            "transformation": self.transformation, "sources": self.sources,
            "approver": self.approver, "record_count": self.record_count,
            "artifact_sha256": self.artifact_sha256, "report_sha256": self.report_sha256,
            "summary": self.summary, "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }  # fmt: skip


def _info(row: DatasetVersion) -> VersionInfo:
    return VersionInfo(
        row.id, row.name, row.parent_id, row.kind, dict(row.transformation or {}),
        list(row.sources or []), row.approver, row.record_count, row.artifact_sha256,
        row.report_sha256, dict(row.summary or {}), row.created_by, row.created_at,
    )  # fmt: skip


def version_sources(
    policy: DataPolicy | None, files: Sequence[dict[str, Any]], records: Sequence[Record]
) -> list[dict[str, Any]]:
    """The source list of a version: provenance of each source with its files and counts."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.source] = counts.get(r.source, 0) + 1
    out = []
    for name in sorted(counts):
        src = policy.source_named(name) if policy else None
        entry: dict[str, Any] = (
            src.model_dump(exclude={"files"}) if src else {"name": name or "(undeclared)"}
        )
        entry["records"] = counts[name]
        entry["files"] = [
            {"name": f["name"], "sha256": f["sha256"], "records": f["records"]}
            for f in files
            if f.get("source", "") == name
        ]
        out.append(entry)
    return out


def _approver(sources: Sequence[dict[str, Any]]) -> str | None:
    names = sorted({str(s["approver"]) for s in sources if s.get("approver")})
    return ", ".join(names) or None


def create_version(
    store: Store,
    records: Sequence[Record],
    *,
    kind: str,
    actor: Principal,
    name: str = "",
    parent_id: str | None = None,
    transformation: dict[str, Any] | None = None,
    sources: Sequence[dict[str, Any]] = (),
    approver: str | None = None,
    report: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
) -> VersionInfo:
    """Store records as a content-addressed version (idempotent) and audit it.

    Returns the existing version when one with the same content exists (the audit log still
    records the attempt, with ``existing: true``).
    """
    from finegate.governance import append_event, write_transaction

    if kind not in KINDS:
        raise ConfigError(f"unknown version kind {kind!r}")
    data = canonical_bytes(records)
    sha = store.artifacts.put_bytes(
        data, kind="dataset", name=f"{name or 'dataset'}.jsonl",
        meta={"records": len(records), "kind": kind, "parent_id": parent_id},
    )  # fmt: skip
    report_sha = None
    if report is not None:
        blob = json.dumps(report, sort_keys=True, ensure_ascii=False, default=str).encode()
        report_sha = store.artifacts.put_bytes(
            blob, kind=f"dataset-{kind}-report", name=f"{sha[:12]}-{kind}-report.json"
        )
    srcs = list(sources)
    with write_transaction(store) as s:
        row = s.get(DatasetVersion, sha)
        existing = row is not None
        if row is None:
            row = DatasetVersion(
                id=sha, name=name, parent_id=parent_id if parent_id != sha else None, kind=kind,
                transformation=dict(transformation or {}), sources=srcs,
                approver=approver or _approver(srcs), record_count=len(records),
                artifact_sha256=sha, report_sha256=report_sha, summary=dict(summary or {}),
                created_by=actor.name,
            )  # fmt: skip
            s.add(row)
            s.flush()
        append_event(
            s, actor, f"data.{kind}", "dataset_version", sha, after={"id": sha},
            details={"parent_id": parent_id, "records": len(records), "existing": existing,
                     "policy_hash": (transformation or {}).get("policy_hash"),
                     "report_sha256": report_sha},
        )  # fmt: skip
        return _info(row)


def record_scan(store: Store, version_id: str, report: dict[str, Any], actor: Principal) -> int:
    """Store a scan report (artifact + row) for a version and audit it; return the scan id."""
    from finegate.governance import append_event, write_transaction

    blob = json.dumps(report, sort_keys=True, ensure_ascii=False, default=str).encode()
    sha = store.artifacts.put_bytes(blob, kind="dataset-scan-report",
                                    name=f"{version_id[:12]}-scan.json")  # fmt: skip
    with write_transaction(store) as s:
        row = DatasetScan(
            version_id=version_id, policy_name=report["policy"]["name"],
            policy_hash=report["policy"]["hash"], tool_version=report["tool"][:64],
            engine=report["engine"], records=report["records"], flagged=report["flagged"],
            malformed=len(report["malformed"]), counts=report["counts"], report_sha256=sha,
            created_by=actor.name,
        )  # fmt: skip
        s.add(row)
        s.flush()
        append_event(
            s, actor, "data.scan", "dataset_version", version_id, after={"scan_report": sha},
            details={"policy_hash": report["policy"]["hash"], "flagged": report["flagged"],
                     "malformed": len(report["malformed"]), "report_sha256": sha},
        )  # fmt: skip
        return int(row.id)


def get_version(store: Store, ref: str) -> VersionInfo:
    """Return a version by id or unique id prefix (at least 6 hex digits).

    Raises:
        NotFoundError: when no version (or more than one) matches.
    """
    ref = ref.strip().lower()
    with store.session() as s:
        row = s.get(DatasetVersion, ref)
        if row is None and len(ref) >= 6:
            rows = list(s.scalars(select(DatasetVersion).where(DatasetVersion.id.like(f"{ref}%"))))
            if len(rows) > 1:
                raise NotFoundError(f"dataset version prefix {ref!r} is ambiguous",
                                    hint="give more digits")  # fmt: skip
            row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no dataset version {ref!r}", hint="see finegate data versions")
        return _info(row)


def list_versions(store: Store, *, name: str | None = None) -> list[VersionInfo]:
    """All versions, oldest first (optionally only those named ``name``)."""
    with store.session() as s:
        stmt = select(DatasetVersion).order_by(DatasetVersion.created_at, DatasetVersion.id)
        if name:
            stmt = stmt.where(DatasetVersion.name == name)
        return [_info(r) for r in s.scalars(stmt)]


def list_scans(store: Store, version_id: str) -> list[dict[str, Any]]:
    """Scans recorded for a version, oldest first."""
    with store.session() as s:
        rows = s.scalars(select(DatasetScan).where(DatasetScan.version_id == version_id)
                         .order_by(DatasetScan.id))  # fmt: skip
        return [
            {"id": r.id, "policy_name": r.policy_name, "policy_hash": r.policy_hash,
             "records": r.records, "flagged": r.flagged, "malformed": r.malformed,
             "counts": r.counts, "report_sha256": r.report_sha256, "engine": r.engine,
             "created_by": r.created_by, "created_at": r.created_at.isoformat()}
            for r in rows
        ]  # fmt: skip


def read_records(store: Store, ref: str) -> list[Record]:
    """Load a version's records, verifying the artifact still matches its address.

    This is what the fine-tuning stage calls; ``[r.to_row()["messages"] for r in ...]`` gives
    chat-format training examples.
    """
    from finegate.errors import StoreError

    v = get_version(store, ref)
    if not store.artifacts.verify(v.artifact_sha256):
        raise StoreError(f"dataset version {v.short} does not match its content hash")
    path = store.artifacts.get(v.artifact_sha256)
    with path.open(encoding="utf-8") as fh:
        return [Record.from_row(json.loads(line)) for line in fh if line.strip()]


def read_report(store: Store, sha: str | None) -> dict[str, Any] | None:
    """Load a stored JSON report artifact (None when ``sha`` is None)."""
    if sha is None:
        return None
    data: dict[str, Any] = json.loads(store.artifacts.get(sha).read_text(encoding="utf-8"))
    return data


def lineage(store: Store, ref: str) -> list[dict[str, Any]]:
    """The chain of versions from the root to ``ref``, with each step's report and scans.

    Each entry is the version's `VersionInfo.to_dict` plus ``scans`` and, for cleaned
    versions, ``removed``/``changed`` (record id, rule, kinds) from the cleaning report.
    """
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    cur: str | None = get_version(store, ref).id
    while cur and cur not in seen:
        seen.add(cur)
        v = get_version(store, cur)
        entry = v.to_dict()
        entry["scans"] = list_scans(store, v.id)
        if v.kind == "clean":
            rep = read_report(store, v.report_sha256) or {}
            entry["removed"] = [
                {"record": r["record"], "rule": r["rule"], "kinds": r["kinds"]}
                for r in rep.get("removed", [])
            ]
            entry["changed"] = [
                {"record": c["record"],
                 "changes": sorted({f"{x['action']} {x['kind']}".strip() for x in c["changes"]})}
                for c in rep.get("changed", [])
            ]  # fmt: skip
        chain.append(entry)
        cur = v.parent_id
    return list(reversed(chain))
