"""The per-record scan: a pure function over a batch of records.

`scan_batch` takes plain dicts (``{"id", "messages"}``) and a `BatchConfig`, and returns plain
dicts, so the same function runs in-process, in worker processes or on Ray Data. All content
checks come from the detection engine (`finegate.detect`); this module only maps roles to
channels and derives record-level facts from the findings:

- an affirmative answer to a flagged request becomes ``obedience.complied_with_flagged``
  (`escalate_harmful_compliance`);
- an injection-style instruction block inside an assistant answer becomes
  ``poison.instruction_block`` (a response that teaches the model to emit instructions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finegate.data._records import CHANNEL_OF_ROLE

if TYPE_CHECKING:
    from finegate.detect import Finding, Scanner


@dataclass(frozen=True)
class BatchConfig:
    """What `scan_batch` runs (JSON-serializable so it can travel to workers)."""

    detectors: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self) -> str:
        """A stable key of this configuration (scanner cache key)."""
        text = json.dumps([list(self.detectors), self.options], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


_SCANNERS: dict[str, Scanner] = {}


def _scanner(config: BatchConfig) -> Scanner:
    key = config.key()
    scanner = _SCANNERS.get(key)
    if scanner is None:
        import finegate.detect._harm  # noqa: F401 - registers the ``harm`` detector
        from finegate.detect import Scanner

        scanner = Scanner(list(config.detectors), options=config.options)
        _SCANNERS[key] = scanner
    return scanner


def _row(f: Finding, msg: int, role: str, kind: str | None = None, **over: Any) -> dict[str, Any]:
    return {
        "kind": kind or f.kind,
        "severity": int(over.get("severity", f.severity)),
        "detail": over.get("detail", f.detail),
        "detector": f.detector,
        "message": msg,
        "role": role,
        "start": f.start,
        "end": f.end,
        "text": f.text,
    }


def scan_record(payload: Mapping[str, Any], scanner: Scanner) -> dict[str, Any]:
    """Scan one record payload with ``scanner``; see `scan_batch`."""
    from finegate.detect import Severity
    from finegate.detect._harm import escalate_harmful_compliance

    messages: Sequence[Mapping[str, str]] = payload["messages"]
    rows: list[dict[str, Any]] = []
    request: list[Finding] = []
    for i, m in enumerate(messages):
        role, content = m["role"], m["content"]
        channel = CHANNEL_OF_ROLE.get(role, "input")
        found = scanner.scan(content, channel=channel)  # type: ignore[arg-type]
        if role == "assistant":
            found = escalate_harmful_compliance(request, found)
            for f in found:
                rows.append(_row(f, i, role))
                if f.category == "injection" and f.kind != "injection.exfiltration":
                    rows.append(
                        _row(
                            f, i, role, "poison.instruction_block",
                            severity=Severity.MEDIUM,
                            detail=f"instruction block inside a response ({f.kind})",
                        )
                    )  # fmt: skip
        else:
            rows.extend(_row(f, i, role) for f in found)
            if channel == "input":
                request.extend(found)
    chars = sum(len(m["content"]) for m in messages)
    return {"id": payload["id"], "findings": rows, "chars": chars}


def scan_batch(payloads: Sequence[Mapping[str, Any]], config: BatchConfig) -> list[dict[str, Any]]:
    """Scan a batch of records: pure, deterministic, no I/O.

    Args:
        payloads: ``{"id": str, "messages": [{"role", "content"}, ...]}`` per record.
        config: Detectors and their options.

    Returns:
        One ``{"id", "findings": [...], "chars"}`` dict per record, in input order. Each
        finding has ``kind, severity (int), detail, detector, message (index), role, start,
        end, text``; spans index the message content.
    """
    scanner = _scanner(config)
    return [scan_record(p, scanner) for p in payloads]
