"""Reading training data: chat JSONL, prompt/completion JSONL, CSV and Parquet.

Every record keeps its file and line. A record that cannot be read (bad JSON, bad UTF-8,
missing or empty fields, unknown roles) becomes a `Malformed` entry naming file, line and
reason; it is never dropped silently, and `write_quarantine` keeps its raw text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finegate.data._records import ROLES, Message, Record
from finegate.errors import ConfigError

FORMATS = ("auto", "chat", "prompt-completion", "csv", "parquet")
_PROMPT_KEYS = ("prompt", "instruction", "question", "input")
_COMPLETION_KEYS = ("completion", "response", "answer", "output")
_MAX_RAW = 20000  # characters of a malformed record kept in the quarantine file


class _Bad(Exception):
    """A record-level problem (becomes a `Malformed` entry)."""


@dataclass(frozen=True)
class Malformed:
    """A record that could not be read.

    Attributes:
        file: The file.
        line: 1-based line (row number for Parquet).
        reason: What was wrong.
        raw: The raw text of the record (truncated), for the quarantine file.
    """

    file: str
    line: int
    reason: str
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict."""
        return {"file": self.file, "line": self.line, "reason": self.reason, "raw": self.raw}


@dataclass
class Ingested:
    """Result of reading files: good records, malformed ones, and per-file facts."""

    records: list[Record] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping):
            raise _Bad(f"message {i} is not an object")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise _Bad(f"message {i} has unknown role {role!r}")
        if not isinstance(content, str):
            raise _Bad(f"message {i} content must be a string")
        if not content.strip():
            raise _Bad(f"message {i} content is empty")
        out.append(Message(str(role), content))
    if not any(m.role == "assistant" for m in out):
        raise _Bad("no assistant message")
    return tuple(out)


def _first(obj: Mapping[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    for k in keys:
        if k in obj and obj[k] is not None:
            return k, obj[k]
    return None, None


def parse_object(obj: Any) -> tuple[tuple[Message, ...], dict[str, Any]]:
    """Turn one decoded record (chat or prompt/completion) into messages plus extra fields.

    Raises:
        _Bad: when the object is not a valid record.
    """
    if not isinstance(obj, Mapping):
        raise _Bad("record is not a JSON object")
    if "messages" in obj:
        msgs = obj["messages"]
        if isinstance(msgs, str):
            try:
                msgs = json.loads(msgs)
            except ValueError:
                raise _Bad("'messages' is not valid JSON") from None
        extra = {k: v for k, v in obj.items() if k != "messages"}
        return _messages(list(msgs) if isinstance(msgs, tuple) else msgs), extra
    pk, prompt = _first(obj, _PROMPT_KEYS)
    ck, completion = _first(obj, _COMPLETION_KEYS)
    if pk is None or ck is None:
        raise _Bad("needs 'messages' or a prompt and a completion field")
    msgs_list: list[dict[str, Any]] = []
    system = obj.get("system")
    if system:
        msgs_list.append({"role": "system", "content": system})
    msgs_list += [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    extra = {k: v for k, v in obj.items() if k not in (pk, ck, "system")}
    return _messages(msgs_list), extra


def _jsonable(value: Any) -> Any:
    """Make a Parquet/CSV value JSON-serializable (numpy scalars, bytes...)."""
    return json.loads(json.dumps(value, default=str))


class _Reader:
    def __init__(self, out: Ingested, name: str, source_of: Callable[[str], str]) -> None:
        self.out, self.name, self.source = out, name, source_of(name)
        self.count = 0

    def add(self, line: int, obj: Any, raw: str) -> None:
        try:
            messages, extra = parse_object(obj)
        except _Bad as exc:
            self.bad(line, str(exc), raw)
            return
        self.out.records.append(
            Record(f"{self.name}:{line}", messages, self.source, self.name, line, extra)
        )
        self.count += 1

    def bad(self, line: int, reason: str, raw: str) -> None:
        self.out.malformed.append(Malformed(self.name, line, reason, raw[:_MAX_RAW]))


def _read_jsonl(path: Path, r: _Reader) -> None:
    with path.open("rb") as fh:
        for n, raw_bytes in enumerate(fh, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                r.bad(
                    n, f"not valid UTF-8 (byte {exc.start})", raw_bytes.decode("utf-8", "replace")
                )
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                r.bad(n, f"invalid JSON: {exc}", raw.rstrip("\n"))
                continue
            r.add(n, obj, raw.rstrip("\n"))


def _read_csv(path: Path, r: _Reader) -> None:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid UTF-8 (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise ConfigError(f"{path} has no header row")
    start = 2
    for row in reader:
        line, start = start, reader.line_num + 1
        if None in row:
            r.bad(line, "more fields than the header", json.dumps(row, default=str))
            continue
        if any(v is None for v in row.values()):
            r.bad(line, "fewer fields than the header", json.dumps(row, default=str))
            continue
        r.add(line, dict(row), json.dumps(row, ensure_ascii=False))


def _read_parquet(path: Path, r: _Reader) -> None:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad files
        raise ConfigError(f"cannot read Parquet file {path}: {exc}") from None
    for n, row in enumerate(table.to_pylist(), start=1):
        row = _jsonable(row)
        r.add(n, row, json.dumps(row, ensure_ascii=False))


def detect_format(path: Path) -> str:
    """Guess the format from the file suffix (``.jsonl``/``.json`` are JSON lines)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ConfigError(
        f"cannot tell the format of {path.name}", hint="use .jsonl, .csv or .parquet files"
    )


def read_files(paths: Iterable[Path], *, source_of: Callable[[str], str] | None = None) -> Ingested:
    """Read training files into records (chat or prompt/completion, JSONL/CSV/Parquet).

    Args:
        paths: Files to read, in order.
        source_of: Maps a file name to its policy source name (``""`` when undeclared).

    Returns:
        The records in file order, the malformed entries, and per-file facts (name, path,
        sha256, format, record and malformed counts).

    Raises:
        ConfigError: for a missing file, an unknown format, or a file that is unreadable as a
            whole (a CSV without header, a corrupt Parquet file).
    """
    from finegate.store.artifacts import sha256_file

    out = Ingested()
    names: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"no such file: {path}")
        fmt = detect_format(path)
        name = path.name if names.get(path.name, path) == path else str(path)
        names[name] = path
        reader = _Reader(out, name, source_of or (lambda _n: ""))
        before = len(out.malformed)
        {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}[fmt](path, reader)
        out.files.append(
            {
                "name": name,
                "path": str(path),
                "sha256": sha256_file(path),
                "format": fmt,
                "source": reader.source,
                "records": reader.count,
                "malformed": len(out.malformed) - before,
            }
        )
    return out


def write_quarantine(malformed: Sequence[Malformed], path: Path) -> Path:
    """Write malformed records as JSONL (file, line, reason, raw) to ``path``; return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for m in malformed:
            fh.write(json.dumps(m.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
    return path
