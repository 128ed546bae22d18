"""Cleaning: remove, rewrite and normalize records from a scan's findings, deterministically.

Nothing is re-scanned: every edit comes from a finding of the scan (spans into the message
text). For the same records and policy the output is byte-identical: records keep their order,
pseudonyms are keyed HMACs (key from ``$FINEGATE_PSEUDONYM_KEY``, else derived from the
policy hash), redaction numbers are per message, and the output is canonical JSONL.

Order of operations per kept message: strip hidden content (invisible characters, hidden
markup; homoglyph words folded to Latin), rewrite sensitive spans (PII, internal hosts) with
the policy's mode, then Unicode normalization (NFC or NFKC).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from finegate.data._policy import DataPolicy, matches_any
from finegate.data._records import Message, Record
from finegate.data._scan import ScanResult, _sensitive, mask


@dataclass
class CleanResult:
    """Cleaned records and the report of every removal and change."""

    records: list[Record]
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    policy_hash: str = ""
    key_source: str = ""

    def report(self) -> dict[str, Any]:
        """The cleaning report (JSON): what was removed/changed, by which rule and kind."""
        by_rule: dict[str, int] = {}
        for r in self.removed:
            by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + 1
        return {
            "policy_hash": self.policy_hash,
            "pseudonym_key": self.key_source,
            "kept": len(self.records),
            "removed_count": len(self.removed),
            "changed_count": len(self.changed),
            "removed_by_rule": dict(sorted(by_rule.items())),
            "removed": self.removed,
            "changed": self.changed,
        }


def _pseudonymizer(policy: DataPolicy) -> tuple[Any, str]:
    from finegate.detect import Pseudonymizer

    env = policy.clean.pseudonym_key_env
    key = os.environ.get(env) if env else None
    if key:
        return Pseudonymizer(key=key, namespace=policy.name), f"${env}"
    derived = hashlib.sha256(b"finegate-pseudonym\x00" + policy.hash().encode()).digest()
    return Pseudonymizer(key=derived, namespace=policy.name), "derived from the policy hash"


def _edit_message(
    text: str, found: Sequence[dict[str, Any]], policy: DataPolicy, pseudo: Any
) -> tuple[str, list[dict[str, Any]]]:
    from finegate.detect import Finding, Severity, normalize, redact

    rules = policy.clean
    edits: list[tuple[int, int, str, dict[str, Any]]] = []
    rewrite = [f for f in found if matches_any(f["kind"], rules.rewrite_kinds)]
    if rewrite:
        objs = [
            Finding(f["kind"], f["start"], f["end"], Severity(int(f["severity"])), f["detail"],
                    f.get("detector", ""), f["text"])
            for f in rewrite
        ]  # fmt: skip
        red = redact(text, objs, mode=rules.pii_mode, select=None, pseudonymizer=pseudo)
        for fobj, rep in red.replacements:
            edits.append(
                (fobj.start, fobj.end, rep,
                 {"action": f"rewrite:{rules.pii_mode}", "kind": fobj.kind,
                  "rule": f"rewrite_kinds:{matches_any(fobj.kind, rules.rewrite_kinds)}",
                  "was": mask(fobj.text) if _sensitive(fobj.kind) else fobj.text,
                  "now": rep})
            )  # fmt: skip
    if rules.strip_hidden:
        for f in found:
            if f["kind"].startswith("hidden.") and f["end"] > f["start"]:
                span = text[f["start"] : f["end"]]
                rep = normalize(span).text if f["kind"] == "hidden.homoglyph" else ""
                edits.append(
                    (f["start"], f["end"], rep,
                     {"action": "strip_hidden", "kind": f["kind"], "rule": "strip_hidden",
                      "was": span.encode("unicode_escape").decode("ascii")[:80], "now": rep})
                )  # fmt: skip
    edits.sort(key=lambda e: (e[0], -e[1]))
    out, log, pos = [], [], 0
    for s, e, rep, entry in edits:
        if s < pos:
            continue  # inside an earlier edit (a hidden span within a rewritten one)
        out.append(text[pos:s])
        out.append(rep)
        log.append(entry)
        pos = e
    out.append(text[pos:])
    new = "".join(out)
    normed = unicodedata.normalize(rules.unicode_form, new)
    if normed != new:
        log.append({"action": f"unicode:{rules.unicode_form}", "kind": "", "rule": "unicode_form",
                    "was": "", "now": ""})  # fmt: skip
    return normed, log


def clean_records(scan: ScanResult) -> CleanResult:
    """Apply the policy's cleaning rules to a scan's records.

    Args:
        scan: The result of `scan_records` (its records, findings and policy).

    Returns:
        The kept (possibly rewritten) records in their original order, and the report of
        every removed record (rule, kinds, details) and every changed one (per message:
        action, kind, rule, old and new value, sensitive old values masked).
    """
    policy = scan.policy
    pseudo, key_source = _pseudonymizer(policy)
    result = CleanResult([], policy_hash=policy.hash(), key_source=key_source)
    for i, rec in enumerate(scan.records):
        found = scan.findings.get(i, [])
        hits = [
            (f, pat)
            for f in found
            if not matches_any(f["kind"], policy.ignore_kinds)
            and (pat := matches_any(f["kind"], policy.clean.remove_kinds))
        ]
        if hits:
            first = hits[0][1]
            result.removed.append(
                {
                    "record": rec.id,
                    "source": rec.source,
                    "rule": f"remove_kinds:{first}",
                    "kinds": sorted({f["kind"] for f, _ in hits}),
                    "reasons": [
                        {"kind": f["kind"], "rule": f"remove_kinds:{p}", "detail": f["detail"],
                         "related": list(f.get("related", []))}
                        for f, p in hits
                    ],
                }
            )  # fmt: skip
            continue
        new_msgs, changes = [], []
        for k, m in enumerate(rec.messages):
            mine = [f for f in found if f["message"] == k]
            text, log = _edit_message(m.content, mine, policy, pseudo)
            new_msgs.append(Message(m.role, text))
            changes += [{"message": k, **entry} for entry in log]
        if changes:
            result.changed.append({"record": rec.id, "source": rec.source, "changes": changes})
            rec = rec.with_messages(new_msgs)
        result.records.append(rec)
    return result
