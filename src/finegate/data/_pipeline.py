"""The governed operations: scan files into a version, clean a scan into a child version.

Both check the actor's permission (``data:scan``) first and record audit events for every
version and scan they create.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate.data._clean import CleanResult, clean_records
from finegate.data._ingest import read_files, write_quarantine
from finegate.data._policy import DataPolicy
from finegate.data._scan import ScanResult, scan_records
from finegate.data._versions import VersionInfo, create_version, record_scan, version_sources

if TYPE_CHECKING:
    from finegate.governance import Principal
    from finegate.store.db import Store


@dataclass
class ScanOutcome:
    """A scan and what was recorded for it."""

    result: ScanResult
    version: VersionInfo | None
    scan_id: int | None
    quarantine: Path | None


@dataclass
class CleanOutcome:
    """A cleaning and the version it produced."""

    clean: CleanResult
    version: VersionInfo | None


def _actor(store: Store, actor: Principal | None) -> Principal:
    from finegate.governance import Action, authorize, resolve_actor

    who = resolve_actor(store, actor)
    authorize(store, who, Action.SCAN_DATA, object_type="dataset")
    return who


def scan_files(
    paths: Sequence[Path],
    policy: DataPolicy,
    *,
    store: Store | None = None,
    actor: Principal | None = None,
    name: str = "",
    engine: str = "local",
    batch_size: int = 256,
    workers: int = 2,
    quarantine: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScanOutcome:
    """Read files, scan them under ``policy`` and (with a store) record a ``scan`` version.

    Args:
        paths: Input files (JSONL chat or prompt/completion, CSV, Parquet).
        policy: The data policy.
        store: Where to record the version, the scan report and audit events; nothing is
            recorded when None.
        actor: Who acts (default: the current principal); needs ``data:scan``.
        name: Dataset name for the version.
        engine: ``local`` or ``ray``.
        batch_size: Records per batch.
        workers: Ray tasks.
        quarantine: Where to write malformed records (JSONL); written when any exist.
        progress: ``progress(stage, done, total)``.
    """
    who = _actor(store, actor) if store is not None else None

    def source_of(file_name: str) -> str:
        src = policy.source_for(file_name)
        return src.name if src else ""

    ing = read_files(paths, source_of=source_of)
    qpath = None
    if ing.malformed and quarantine is not None:
        qpath = write_quarantine(ing.malformed, quarantine)
    result = scan_records(
        ing.records, policy, engine=engine, batch_size=batch_size, workers=workers,
        progress=progress, malformed=ing.malformed, files=ing.files,
    )  # fmt: skip
    if store is None or who is None:
        return ScanOutcome(result, None, None, qpath)
    report = result.to_dict()
    version = create_version(
        store, result.records, kind="scan", actor=who, name=name or _default_name(paths),
        transformation=_transformation("scan", policy, result.tool, engine),
        sources=version_sources(policy, ing.files, result.records),
        summary={"records": len(result.records), "malformed": len(ing.malformed),
                 "flagged": len(result.flagged), "counts": result.counts()},
    )  # fmt: skip
    scan_id = record_scan(store, version.id, report, who)
    return ScanOutcome(result, version, scan_id, qpath)


def _default_name(paths: Sequence[Path]) -> str:
    return Path(paths[0]).stem if paths else "dataset"


def _transformation(kind: str, policy: DataPolicy, tool: str, engine: str) -> dict[str, Any]:
    return {"kind": kind, "policy_name": policy.name, "policy_hash": policy.hash(),
            "tool_version": tool, "engine": engine}  # fmt: skip


def clean_scan(
    scan: ScanResult,
    *,
    store: Store | None = None,
    actor: Principal | None = None,
    parent: VersionInfo | None = None,
    name: str = "",
) -> CleanOutcome:
    """Clean a scan's records under its policy and (with a store) record a ``clean`` version.

    The version's parent is ``parent`` (the scanned version), its transformation names the
    policy hash and tool version, and its report (every removal and change) is stored with it.
    """
    who = _actor(store, actor) if store is not None else None
    cleaned = clean_records(scan)
    if store is None or who is None:
        return CleanOutcome(cleaned, None)
    sources = parent.sources if parent else version_sources(scan.policy, scan.files,
                                                           cleaned.records)  # fmt: skip
    counts: dict[str, int] = {}
    for r in cleaned.records:
        counts[r.source] = counts.get(r.source, 0) + 1
    sources = [{**s, "records_after_clean": counts.get(s.get("name", ""), 0)} for s in sources]
    report = cleaned.report()
    version = create_version(
        store, cleaned.records, kind="clean", actor=who,
        name=name or (parent.name if parent else "dataset"),
        parent_id=parent.id if parent else None,
        transformation=_transformation("clean", scan.policy, scan.tool, "local"),
        sources=sources, report=report,
        summary={"records": len(cleaned.records), "removed": len(cleaned.removed),
                 "changed": len(cleaned.changed), "removed_by_rule": report["removed_by_rule"]},
    )  # fmt: skip
    return CleanOutcome(cleaned, version)
