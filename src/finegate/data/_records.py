"""Training records: chat messages with their provenance, and their canonical serialization."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
"""Roles a chat message may have."""

CHANNEL_OF_ROLE: dict[str, str] = {
    "system": "input",
    "user": "input",
    "assistant": "output",
    "tool": "tool",
}
"""The detection channel each message role is scanned on."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        """Return ``{"role": ..., "content": ...}``."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Record:
    """One training example and where it came from.

    Attributes:
        id: Stable reference ``FILE:LINE`` (file name as ingested, 1-based line or row).
        messages: The conversation.
        source: Name of the policy source it belongs to (``""`` when undeclared).
        file: The file it was read from.
        line: 1-based line (JSONL, CSV) or row number (Parquet).
        meta: Extra fields of the input record, kept as they were.
    """

    id: str
    messages: tuple[Message, ...]
    source: str = ""
    file: str = ""
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def texts(self, roles: Iterable[str] | None = None) -> list[str]:
        """Return the contents of the messages with these roles (all when None)."""
        want = set(roles) if roles is not None else None
        return [m.content for m in self.messages if want is None or m.role in want]

    def prompt_text(self) -> str:
        """All system and user contents joined by newlines."""
        return "\n".join(self.texts(("system", "user")))

    def response_text(self) -> str:
        """All assistant contents joined by newlines."""
        return "\n".join(self.texts(("assistant",)))

    def to_row(self) -> dict[str, Any]:
        """Return the canonical row (what a dataset version stores)."""
        row: dict[str, Any] = {
            "id": self.id,
            "messages": [m.to_dict() for m in self.messages],
            "source": self.source,
        }
        if self.meta:
            row["meta"] = self.meta
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Record:
        """Rebuild a record from `to_row` output."""
        rid = str(row["id"])
        file, _, line = rid.rpartition(":")
        return cls(
            id=rid,
            messages=tuple(Message(str(m["role"]), str(m["content"])) for m in row["messages"]),
            source=str(row.get("source", "")),
            file=file,
            line=int(line) if line.isdigit() else 0,
            meta=dict(row.get("meta") or {}),
        )

    def with_messages(self, messages: Iterable[Message]) -> Record:
        """Return a copy with other messages (same provenance)."""
        return Record(self.id, tuple(messages), self.source, self.file, self.line, self.meta)


def canonical_line(record: Record) -> str:
    """Return the record's canonical JSON line (sorted keys, compact, UTF-8, no newline)."""
    return json.dumps(record.to_row(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(records: Iterable[Record]) -> bytes:
    """Return the canonical JSONL bytes of ``records`` (one line each, trailing newline)."""
    return "".join(canonical_line(r) + "\n" for r in records).encode("utf-8", "surrogatepass")


def content_hash(records: Iterable[Record]) -> str:
    """Return the sha256 of `canonical_bytes` without building it in one piece."""
    digest = hashlib.sha256()
    for r in records:
        digest.update((canonical_line(r) + "\n").encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def record_to_payload(record: Record) -> dict[str, Any]:
    """Plain-dict form used to ship records to batch workers (Ray, processes)."""
    return {"id": record.id, "messages": [m.to_dict() for m in record.messages]}
