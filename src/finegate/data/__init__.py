"""Dataset governance: ingest, scan, clean, version and trace fine-tuning data.

Quick use::

    from finegate.data import load_policy, scan_files, clean_scan, read_records, lineage
    from finegate.store import open_store

    store = open_store()
    policy = load_policy("policy.yaml")
    scan = scan_files([Path("train.jsonl")], policy, store=store)   # records a "scan" version
    cleaned = clean_scan(scan.result, store=store, parent=scan.version)
    records = read_records(store, cleaned.version.id)             # what fine-tuning trains on
    chain = lineage(store, cleaned.version.id)                    # root -> this, with reasons

Scanning is a pure function over record batches (`scan_batch`), so it runs the same in-process
and on Ray Data (``engine="ray"``). Every content check comes from `finegate.detect`.
"""

from __future__ import annotations

from finegate.data._batch import BatchConfig, scan_batch
from finegate.data._clean import CleanResult, clean_records
from finegate.data._ingest import FORMATS, Ingested, Malformed, read_files, write_quarantine
from finegate.data._pipeline import CleanOutcome, ScanOutcome, clean_scan, scan_files
from finegate.data._policy import (
    DATA_CLASSES,
    TRUST_TIERS,
    Checks,
    CleanRules,
    DataPolicy,
    Source,
    TierRules,
    load_policy,
)
from finegate.data._records import Message, Record, canonical_bytes, content_hash
from finegate.data._scan import ScanResult, scan_records
from finegate.data._versions import (
    VersionInfo,
    create_version,
    get_version,
    lineage,
    list_scans,
    list_versions,
    read_records,
    read_report,
)

__all__ = [
    "DATA_CLASSES",
    "FORMATS",
    "TRUST_TIERS",
    "BatchConfig",
    "Checks",
    "CleanOutcome",
    "CleanResult",
    "CleanRules",
    "DataPolicy",
    "Ingested",
    "Malformed",
    "Message",
    "Record",
    "ScanOutcome",
    "ScanResult",
    "Source",
    "TierRules",
    "VersionInfo",
    "canonical_bytes",
    "clean_records",
    "clean_scan",
    "content_hash",
    "create_version",
    "get_version",
    "lineage",
    "list_scans",
    "list_versions",
    "load_policy",
    "read_files",
    "read_records",
    "read_report",
    "scan_batch",
    "scan_files",
    "scan_records",
    "write_quarantine",
]
