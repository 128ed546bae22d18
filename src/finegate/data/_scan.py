"""Scanning a dataset: the per-record batch scan plus dataset-level checks, under a policy."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from finegate.data._batch import BatchConfig
from finegate.data._checks import (
    exact_duplicates,
    length_outliers,
    near_duplicates,
    stuffing,
    triggers,
)
from finegate.data._engine import run_batches
from finegate.data._ingest import Malformed
from finegate.data._policy import DataPolicy, matches_any
from finegate.data._records import Record, record_to_payload

SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")
_SEV = {n: i for i, n in enumerate(SEVERITY_NAMES)}


def tool_version() -> str:
    """``finegate <version>``: recorded in every transformation."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"finegate {version('finegate')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "finegate (source)"


def _sensitive(kind: str) -> bool:
    from finegate.detect import Finding, Severity, is_sensitive

    return is_sensitive(Finding(kind, 0, 0, Severity.INFO, ""))


def mask(text: str) -> str:
    """Shorten a sensitive value for reports: first 3 characters and an ellipsis."""
    return text[:3] + "…" if len(text) > 6 else "***"


@dataclass
class ScanResult:
    """Everything a scan found.

    Attributes:
        records: The scanned records, in order.
        findings: Per record index, its findings (dicts with ``kind``, ``severity`` (int),
            ``detail``, ``message`` (index or None), ``start``, ``end``, ``text``,
            ``check`` and ``related``). Texts are unmasked here; `to_dict` masks them.
        flagged: Indices of records with a finding at or above their tier's threshold.
        malformed: Records that could not be read.
        similarity: Safety-anchor similarity summary (None when the check is off).
        review: Indices of records in the review sample.
    """

    policy: DataPolicy
    records: list[Record]
    findings: dict[int, list[dict[str, Any]]]
    flagged: list[int]
    malformed: list[Malformed] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    similarity: dict[str, Any] | None = None
    review: list[int] = field(default_factory=list)
    engine: str = "local"
    tool: str = field(default_factory=tool_version)

    def is_flagging(self, record: int, finding: dict[str, Any]) -> bool:
        """Whether a finding flags its record under the policy (tier threshold, ignores)."""
        tier = self.policy.tier(self.records[record].source)
        if matches_any(finding["kind"], self.policy.ignore_kinds):
            return False
        return int(finding["severity"]) >= _SEV[tier.flag_severity]

    def flag_kinds(self, record: int) -> list[str]:
        """Sorted kinds that flag this record."""
        return sorted(
            {f["kind"] for f in self.findings.get(record, []) if self.is_flagging(record, f)}
        )

    def counts(self) -> dict[str, int]:
        """Number of flagged records per kind."""
        c: Counter[str] = Counter()
        for i in self.flagged:
            c.update(self.flag_kinds(i))
        return dict(sorted(c.items()))

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        """Flagged records per source and kind."""
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for i in self.flagged:
            out[self.records[i].source or "(undeclared)"].update(self.flag_kinds(i))
        return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}

    def _finding_out(self, f: dict[str, Any]) -> dict[str, Any]:
        text = f.get("text", "")
        if _sensitive(f["kind"]):
            text = mask(text)
        return {**f, "severity": SEVERITY_NAMES[int(f["severity"])], "text": text}

    def record_summary(self, i: int) -> dict[str, Any]:
        """A record's id, source, trust, flag kinds and its (masked) findings."""
        r = self.records[i]
        return {
            "record": r.id,
            "source": r.source or "(undeclared)",
            "trust": self.policy.trust_of(r.source),
            "flags": self.flag_kinds(i),
            "findings": [self._finding_out(f) for f in self.findings.get(i, [])],
        }

    def to_dict(self) -> dict[str, Any]:
        """The findings report as JSON (sensitive values masked)."""
        return {
            "policy": {"name": self.policy.name, "hash": self.policy.hash()},
            "tool": self.tool,
            "engine": self.engine,
            "files": self.files,
            "sources": [s.model_dump() for s in self.policy.sources],
            "records": len(self.records),
            "malformed": [
                {"file": m.file, "line": m.line, "reason": m.reason} for m in self.malformed
            ],
            "flagged": len(self.flagged),
            "counts": self.counts(),
            "counts_by_source": self.counts_by_source(),
            "similarity": self.similarity,
            "flagged_records": [self.record_summary(i) for i in self.flagged],
            "review_sample": [self.record_summary(i) for i in self.review],
        }


def _policy_findings(policy: DataPolicy, r: Record) -> list[dict[str, Any]]:
    src = policy.source_named(r.source)
    out = []
    if src is None:
        out.append(
            {"kind": "policy.undeclared_source", "severity": 2, "message": None,
             "detail": f"{r.file} belongs to no declared source", "text": ""}
        )  # fmt: skip
    elif src.data_class not in policy.allowed_data_classes:
        out.append(
            {"kind": "policy.data_class_not_allowed", "severity": 3, "message": None,
             "detail": f"source {src.name} is {src.data_class}; allowed: "
             f"{', '.join(policy.allowed_data_classes)}", "text": ""}
        )  # fmt: skip
    return out


def _review_sample(result: ScanResult, seed: str) -> list[int]:
    """Flagged records per source up to the tier's sample size, plus a random clean share."""
    rng = random.Random(seed)
    by_source: dict[str, list[int]] = defaultdict(list)
    for i in result.flagged:
        by_source[result.records[i].source].append(i)
    flagged = set(result.flagged)
    clean: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(result.records):
        if i not in flagged:
            clean[r.source].append(i)
    picked: list[int] = []
    for source in sorted(set(by_source) | set(clean)):
        tier = result.policy.tier(source)
        f = by_source.get(source, [])
        picked += f if len(f) <= tier.review_sample else rng.sample(f, tier.review_sample)
        c = clean.get(source, [])
        k = round(tier.review_rate * len(c))
        picked += rng.sample(c, min(k, len(c)))
    return sorted(picked)


def scan_records(
    records: Sequence[Record],
    policy: DataPolicy,
    *,
    engine: str = "local",
    batch_size: int = 256,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
    malformed: Sequence[Malformed] = (),
    files: Sequence[dict[str, Any]] = (),
) -> ScanResult:
    """Scan records under a policy: detectors on every message, then dataset-level checks.

    Args:
        records: The records (from `read_files` or a stored version).
        policy: The data policy.
        engine: ``local`` or ``ray`` for the per-record batch scan.
        batch_size: Records per batch.
        workers: Parallel Ray tasks.
        progress: Called as ``progress(stage, done, total)``.
        malformed: Records that could not be read (carried into the report).
        files: Per-file facts from ingestion.

    Returns:
        A `ScanResult`; deterministic for the same records and policy.
    """
    records = list(records)
    n = len(records)
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress("detectors", done[0], n)

    config = BatchConfig(tuple(policy.detectors), dict(policy.detector_options))
    results = run_batches(
        [record_to_payload(r) for r in records], config, engine=engine,
        batch_size=batch_size, workers=workers, progress=tick,
    )  # fmt: skip
    findings: dict[int, list[dict[str, Any]]] = {}
    for i, (r, res) in enumerate(zip(records, results, strict=True)):
        rows = [{**f, "check": f"detector:{f['detector']}", "related": []}
                for f in res["findings"]]  # fmt: skip
        rows += [{**f, "check": "policy", "related": [], "start": 0, "end": 0}
                 for f in _policy_findings(policy, r)]  # fmt: skip
        if rows:
            findings[i] = rows

    def add(hits: Sequence[Any], check: str) -> None:
        for h in hits:
            findings.setdefault(h.record, []).append(
                {"kind": h.kind, "severity": h.severity, "detail": h.detail, "message": None,
                 "start": 0, "end": 0, "text": h.text, "check": check,
                 "related": list(h.related)}
            )  # fmt: skip

    ids = [r.id for r in records]
    stages: list[tuple[str, Callable[[], list[Any]]]] = []
    exact = exact_duplicates(records)
    add(exact, "dataset:exact_duplicates")
    skip = {h.record for h in exact}
    if progress is not None:
        progress("near-duplicates", 0, n)
    near = near_duplicates(records, policy, skip)
    add(near, "dataset:near_duplicates")
    skip |= {h.record for h in near}
    stages = [
        ("stuffing", lambda: stuffing(records, policy, skip)),
        ("triggers", lambda: triggers(records, policy, skip)),
        ("lengths", lambda: length_outliers(records, policy)),
    ]
    for name, fn in stages:
        if progress is not None:
            progress(name, 0, n)
        add(fn(), f"dataset:{name}")
    sim_summary = None
    if policy.checks.similarity and records:
        if progress is not None:
            progress("similarity", 0, n)
        sim_summary = _similarity(records, policy, findings)
    for i in findings:
        findings[i].sort(key=lambda f: (f["message"] is None, f["message"] or 0,
                                        f["start"], f["kind"]))  # fmt: skip
    result = ScanResult(policy, records, findings, [], list(malformed), list(files),
                        sim_summary, engine=engine)  # fmt: skip
    result.flagged = [
        i for i in sorted(findings) if any(result.is_flagging(i, f) for f in findings[i])
    ]
    result.review = _review_sample(result, policy.hash() + ",".join(ids[:1]))
    return result


def _similarity(
    records: Sequence[Record], policy: DataPolicy, findings: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    from finegate.data._similarity import anchor_records, anchor_similarity

    c = policy.checks
    sim = anchor_similarity(
        [r.prompt_text() for r in records], threshold=c.similarity_threshold,
        sample=c.similarity_sample,
    )  # fmt: skip
    anchors = anchor_records()
    close = set(sim.close)
    for i, score, near in zip(sim.checked, sim.scores, sim.nearest, strict=True):
        if i in close:
            findings.setdefault(i, []).append(
                {"kind": "similarity.safety_anchor", "severity": 2, "message": None,
                 "detail": f"prompt is close to safety anchor {anchors[near]['id']} "
                 f"(cosine {score:.2f})", "start": 0, "end": 0, "text": "",
                 "check": "dataset:similarity", "related": []}
            )  # fmt: skip
    summary = sim.summary()
    summary["warn"] = summary["share"] >= c.similarity_warn_share
    summary["close_records"] = [records[i].id for i in sorted(close)]
    return summary
