"""Loaders for public benchmark files the user already has, turned into finegate suites.

Formats (column layouts of the public releases; no benchmark text ships with finegate):

- ``advbench``: CSV ``goal,target``; every goal expects a refusal.
- ``harmbench``: behaviors CSV ``Behavior,FunctionalCategory,SemanticCategory,Tags,
  ContextString,BehaviorID``; contextual behaviors put the context above the request (as
  HarmBench does); multimodal rows are skipped (they need an image).
- ``jbb``: JailbreakBench JBB-Behaviors CSV ``Index,Goal,Target,Behavior,Category,Source``;
  the benign split (file name containing ``benign``, or ``benign=True``) expects compliance.
- ``strongreject``: CSV ``category,source,forbidden_prompt``.
- ``xstest``: CSV with ``prompt`` and ``type`` (and ``label`` in v2): safe prompts expect
  compliance (over-refusal family), unsafe contrast prompts expect a refusal.
- ``jsonl``: one object per line: a full case, or ``{"prompt", "expect"?, "family"?, "id"?}``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finegate.errors import ConfigError
from finegate.evals.schema import Case, FamilyInfo, FamilyKind, Suite

__all__ = ["IMPORT_FORMATS", "import_suite"]

_RATIONALES = {
    "advbench": "Harmful behaviors from an AdvBench-format file: direct requests a safe "
    "model must refuse.",
    "harmbench": "Harmful behaviors from a HarmBench-format file, grouped by semantic "
    "category; contextual behaviors include their context.",
    "jbb": "Harmful behaviors from a JailbreakBench JBB-Behaviors file: requests a safe "
    "model must refuse.",
    "jbb-benign": "Benign behaviors from a JailbreakBench JBB-Behaviors file: topically "
    "similar requests a helpful model should answer (over-refusal check).",
    "strongreject": "Forbidden prompts from a StrongREJECT-format file: requests a safe model "
    "must refuse; pair with the LLM judge for graded scores.",
    "xstest-safe": "Safe prompts from an XSTest-format file that superficially resemble "
    "unsafe ones: refusing them is over-refusal.",
    "xstest-unsafe": "Unsafe contrast prompts from an XSTest-format file: a safe model "
    "refuses them.",
    "imported": "Cases imported from a JSONL file; each keeps the expectations it declares.",
}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", text.strip()).strip("-").lower()[:60] or "x"


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                raise ConfigError(
                    f"{path}: missing column(s) {', '.join(missing)}",
                    hint="found: " + (", ".join(columns) or "no header"),
                )
            for number, row in enumerate(reader, 2):
                yield number, {(k or "").strip(): (v or "").strip() for k, v in row.items()}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise ConfigError(f"{path}: malformed CSV ({exc})") from None


def _case(
    prefix: str, index: int, family: str, prompt: str, expect: str, tags: list[str], notes: str = ""
) -> dict[str, Any]:
    return {
        "id": f"{prefix}-{index:04d}",
        "family": family,
        "tags": tags,
        "messages": [{"role": "user", "content": prompt}],
        "expect": expect,
        "notes": notes,
    }


def _advbench(path: Path, benign: bool | None) -> list[dict[str, Any]]:
    return [
        _case("advbench", i, "advbench", row["goal"], "refuse", [])
        for i, (_, row) in enumerate(_rows(path, ("goal",)), 1)
        if row["goal"]
    ]


def _harmbench(path: Path, benign: bool | None) -> list[dict[str, Any]]:
    out = []
    for i, (_, row) in enumerate(_rows(path, ("Behavior",)), 1):
        tags = [t.strip() for t in row.get("Tags", "").split(",") if t.strip()]
        if "multimodal" in tags or not row["Behavior"]:
            continue
        prompt = row["Behavior"]
        if row.get("ContextString"):
            prompt = f"{row['ContextString']}\n\n---\n\n{prompt}"
        category = row.get("SemanticCategory") or "uncategorized"
        family = f"harmbench-{_slug(category)}"
        cid = _slug(row.get("BehaviorID") or "") or f"{i:04d}"
        out.append(
            {
                **_case(
                    "harmbench",
                    i,
                    family,
                    prompt,
                    "refuse",
                    [*tags, row.get("FunctionalCategory", "")][:8],
                ),
                "id": f"harmbench-{cid}",
            }
        )
    for c in out:
        c["tags"] = [t for t in c["tags"] if t]
    return out


def _jbb(path: Path, benign: bool | None) -> list[dict[str, Any]]:
    is_benign = benign if benign is not None else "benign" in path.name.lower()
    family, expect = ("jbb-benign", "comply") if is_benign else ("jbb", "refuse")
    return [
        _case(
            family,
            i,
            family,
            row["Goal"],
            expect,
            [_slug(row.get("Category", "")) or "uncategorized"],
            notes=row.get("Behavior", ""),
        )
        for i, (_, row) in enumerate(_rows(path, ("Goal",)), 1)
        if row["Goal"]
    ]


def _strongreject(path: Path, benign: bool | None) -> list[dict[str, Any]]:
    return [
        _case(
            "strongreject",
            i,
            "strongreject",
            row["forbidden_prompt"],
            "refuse",
            [_slug(row.get("category", "")) or "uncategorized"],
        )
        for i, (_, row) in enumerate(_rows(path, ("forbidden_prompt",)), 1)
        if row["forbidden_prompt"]
    ]


def _xstest(path: Path, benign: bool | None) -> list[dict[str, Any]]:
    out = []
    for i, (_, row) in enumerate(_rows(path, ("prompt", "type")), 1):
        if not row["prompt"]:
            continue
        label = row.get("label", "").lower()
        unsafe = label == "unsafe" if label else row["type"].startswith("contrast")
        family = "xstest-unsafe" if unsafe else "xstest-safe"
        out.append(
            _case(
                "xstest",
                i,
                family,
                row["prompt"],
                "refuse" if unsafe else "comply",
                [_slug(row["type"])],
            )
        )
    return out


def _jsonl(path: Path, benign: bool | None) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: line {number} is not an object")
        if "messages" not in item:
            if not isinstance(item.get("prompt"), str):
                raise ConfigError(f"{path}: line {number} needs 'messages' or 'prompt'")
            item = {
                "id": item.get("id", f"jsonl-{number:04d}"),
                "family": item.get("family", "imported"),
                "tags": item.get("tags", []),
                "system": item.get("system"),
                "messages": [{"role": "user", "content": item["prompt"]}],
                "expect": item.get("expect", "refuse"),
            }
        item.setdefault("family", "imported")
        item.setdefault("id", f"jsonl-{number:04d}")
        out.append(item)
    return out


IMPORT_FORMATS: dict[str, Callable[[Path, bool | None], list[dict[str, Any]]]] = {
    "advbench": _advbench,
    "harmbench": _harmbench,
    "jbb": _jbb,
    "strongreject": _strongreject,
    "xstest": _xstest,
    "jsonl": _jsonl,
}


def import_suite(
    path: str | Path, fmt: str, *, name: str | None = None, benign: bool | None = None
) -> Suite:
    """Read a benchmark file in one of :data:`IMPORT_FORMATS` and return a suite.

    Args:
        path: The file.
        fmt: The format name.
        name: Suite name (default: the file's stem).
        benign: For ``jbb``: force the benign (True) or harmful (False) split.

    Raises:
        ConfigError: for an unknown format, a missing column, or no usable row.
    """
    if fmt not in IMPORT_FORMATS:
        raise ConfigError(
            f"unknown import format {fmt!r}", hint="known: " + ", ".join(IMPORT_FORMATS)
        )
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"file not found: {p}")
    raw = IMPORT_FORMATS[fmt](p, benign)
    if not raw:
        raise ConfigError(f"{p}: no usable rows for format {fmt!r}")
    families = []
    for fam in dict.fromkeys(str(c["family"]) for c in raw):
        base = (
            fam
            if fam in _RATIONALES
            else ("harmbench" if fam.startswith("harmbench") else "imported")
        )
        kind: FamilyKind = "benign" if fam in ("jbb-benign", "xstest-safe") else "attack"
        if base == "imported":
            exps = {json.dumps(c.get("expect")) for c in raw if c["family"] == fam}
            kind = "benign" if exps == {json.dumps("comply")} else "attack"
        families.append(FamilyInfo(name=fam, kind=kind, rationale=_RATIONALES[base]))
    try:
        return Suite(
            name=name or _slug(p.stem),
            version="1",
            description=f"Imported from {p.name} ({fmt}).",
            families=families,
            cases=[Case.model_validate(c) for c in raw],
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{p}: invalid case ({loc}: {first['msg']})") from None
