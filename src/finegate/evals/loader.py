"""Loading suites: built-in names (``core``, ``all``, each family) and YAML/JSONL files.

Built-in suites live under ``finegate/resources/suites/``: one ``families/<family>.yaml`` per
family (top-level ``family``, ``kind``, ``rationale``, ``cases``; each case's ``family`` is
filled from the file) and ``core.yaml`` (``name``, ``version``, ``description`` and
``include: [{family, count}]``: the first ``count`` cases of each family in id order).

User files may be a full suite (``name`` + ``cases``), a family file, an ``include`` file over
the built-in families, or JSONL with one case per line (an optional first line
``{"suite": {"name": ..., "families": [...]}}`` carries the suite's metadata).
Every validation problem becomes a :class:`~finegate.errors.ConfigError` naming the file, the
case and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finegate.errors import ConfigError
from finegate.evals.schema import Case, FamilyInfo, Suite

__all__ = [
    "BUILTIN_SUITES",
    "builtin_families",
    "builtin_suite_names",
    "filter_families",
    "load_suite",
    "load_suite_file",
    "suite_from_data",
    "suite_to_yaml",
]

BUILTIN_SUITES = ("core", "all")
_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")


def _suites_root() -> Any:
    return resources.files("finegate.resources").joinpath("suites")


def _describe(exc: ValidationError, where: str, data: Any = None) -> ConfigError:
    """Turn a pydantic error into one readable line naming the case and field."""
    parts = []
    for err in exc.errors()[:3]:
        loc = list(err["loc"])
        prefix = ""
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            index = loc[1]
            cid = None
            if isinstance(data, Mapping):
                cases = data.get("cases")
                if (
                    isinstance(cases, list)
                    and index < len(cases)
                    and isinstance(cases[index], Mapping)
                ):
                    cid = cases[index].get("id")
            prefix = f"case {cid!r} (#{index + 1}) " if cid else f"case #{index + 1} "
            loc = loc[2:]
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{prefix}{field}: {msg}")
    more = len(exc.errors()) - 3
    tail = f" (and {more} more)" if more > 0 else ""
    return ConfigError(f"invalid suite {where}: " + "; ".join(parts) + tail)


def _family_from_data(data: Mapping[str, Any], where: str) -> tuple[FamilyInfo, list[Any]]:
    name = data.get("family")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"invalid family file {where}: 'family' must be a name")
    try:
        info = FamilyInfo(
            name=name, kind=data.get("kind", "attack"), rationale=str(data.get("rationale", ""))
        )
    except ValidationError as exc:
        raise _describe(exc, where) from None
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ConfigError(f"invalid family file {where}: 'cases' must be a non-empty list")
    cases = []
    for raw in raw_cases:
        if isinstance(raw, Mapping):
            raw = {**raw}
            if raw.setdefault("family", name) != name:
                raise ConfigError(
                    f"invalid family file {where}: case {raw.get('id')!r} has "
                    f"family {raw['family']!r}, the file is {name!r}"
                )
        cases.append(raw)
    return info, cases


def suite_from_data(data: Any, *, where: str = "<data>", default_name: str = "suite") -> Suite:
    """Build a suite from parsed YAML/JSON: a full suite, a family file or an include file.

    Raises:
        ConfigError: naming the file, case and field when the data is invalid.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid suite {where}: expected a mapping with 'cases'")
    if "include" in data:
        return _include_suite(data, where)
    if "family" in data and "cases" in data:
        info, cases = _family_from_data(data, where)
        payload: dict[str, Any] = {
            "name": data.get("name", info.name),
            "version": str(data.get("version", "1")),
            "description": data.get("description", info.rationale),
            "families": [info.model_dump()],
            "cases": cases,
        }
    else:
        payload = {**data}
        payload.setdefault("name", default_name)
        if "version" in payload:
            payload["version"] = str(payload["version"])
    try:
        return Suite.model_validate(payload)
    except ValidationError as exc:
        raise _describe(exc, where, payload) from None


def _read_jsonl(path: Path) -> Suite:
    header: dict[str, Any] = {}
    cases: list[Any] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read suite {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid suite {path}: line {number} is not JSON ({exc.msg})",
                hint="one case object per line",
            ) from None
        if isinstance(item, dict) and "suite" in item and number == 1:
            header = dict(item["suite"])
            continue
        cases.append(item)
    return suite_from_data({**header, "cases": cases}, where=str(path), default_name=path.stem)


def load_suite_file(path: str | Path) -> Suite:
    """Load a suite from a ``.yaml``/``.yml``/``.json``/``.jsonl`` file.

    Raises:
        ConfigError: when the file is missing, unreadable or invalid.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"suite file not found: {p}")
    if p.suffix == ".jsonl":
        return _read_jsonl(p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read suite {p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in suite {p}: {str(exc).splitlines()[0]}") from None
    return suite_from_data(data, where=str(p), default_name=p.stem)


@cache
def _builtin_family_data() -> dict[str, tuple[FamilyInfo, tuple[Case, ...]]]:
    import yaml

    out: dict[str, tuple[FamilyInfo, tuple[Case, ...]]] = {}
    folder = _suites_root().joinpath("families")
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        where = f"built-in families/{entry.name}"
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        suite = suite_from_data(data, where=where)
        info = suite.families[0]
        out[info.name] = (info, tuple(sorted(suite.cases, key=lambda c: c.id)))
    return out


def builtin_families() -> dict[str, FamilyInfo]:
    """Return the built-in families by name."""
    return {name: info for name, (info, _) in _builtin_family_data().items()}


def builtin_suite_names() -> list[str]:
    """Return every name ``--suite`` accepts besides files: ``core``, ``all`` and families."""
    return [*BUILTIN_SUITES, *sorted(_builtin_family_data())]


def _include_suite(data: Mapping[str, Any], where: str) -> Suite:
    fams = _builtin_family_data()
    include = data.get("include")
    if not isinstance(include, list) or not include:
        raise ConfigError(f"invalid suite {where}: 'include' must be a non-empty list")
    infos: list[FamilyInfo] = []
    cases: list[Case] = []
    for item in include:
        if not isinstance(item, Mapping) or "family" not in item:
            raise ConfigError(f"invalid suite {where}: each include needs 'family' (and 'count')")
        name = str(item["family"])
        if name not in fams:
            raise ConfigError(
                f"invalid suite {where}: unknown family {name!r}",
                hint="known: " + (", ".join(sorted(fams)) or "none"),
            )
        info, fam_cases = fams[name]
        count = item.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ConfigError(f"invalid suite {where}: count for {name!r} must be >= 1")
        infos.append(info)
        cases.extend(fam_cases[:count] if count is not None else fam_cases)
    try:
        return Suite(
            name=str(data.get("name", "include")),
            version=str(data.get("version", "1")),
            description=str(data.get("description", "")),
            families=infos,
            cases=cases,
        )
    except ValidationError as exc:
        raise _describe(exc, where) from None


@cache
def _builtin_suite(name: str) -> Suite:
    import yaml

    fams = _builtin_family_data()
    if name == "all":
        if not fams:
            raise ConfigError("no built-in suites are installed")
        return Suite(
            name="all",
            version="1",
            description="Every built-in family, every case.",
            families=[info for info, _ in fams.values()],
            cases=[c for _, cs in fams.values() for c in cs],
        )
    if name == "core":
        entry = _suites_root().joinpath("core.yaml")
        if not entry.is_file():
            raise ConfigError("the built-in core suite is not installed")
        return suite_from_data(
            yaml.safe_load(entry.read_text(encoding="utf-8")), where="built-in core.yaml"
        )
    info, cases = fams[name]
    return Suite(
        name=name, version="1", description=info.rationale, families=[info], cases=list(cases)
    )


def load_suite(spec: str | Path, *, families: Sequence[str] | None = None) -> Suite:
    """Load a suite by built-in name (``core``, ``all``, a family) or file path.

    Args:
        spec: A built-in name or a path to a suite file.
        families: Keep only these families (``--family``).

    Raises:
        ConfigError: for an unknown name, a missing or invalid file, or a family filter that
            leaves no case.
    """
    text = str(spec)
    path = Path(text)
    if path.suffix in _SUFFIXES or path.is_file():
        suite = load_suite_file(path)
    elif text in BUILTIN_SUITES or text in _builtin_family_data():
        suite = _builtin_suite(text)
    else:
        raise ConfigError(
            f"unknown suite {text!r}",
            hint="known: " + ", ".join(builtin_suite_names()) + "; or give a .yaml/.jsonl file",
        )
    return filter_families(suite, families) if families else suite


def filter_families(suite: Suite, families: Iterable[str]) -> Suite:
    """Return the suite restricted to some families (same name; the hash changes).

    Raises:
        ConfigError: when a family is not in the suite.
    """
    wanted = list(dict.fromkeys(families))
    present = {c.family for c in suite.cases}
    missing = [f for f in wanted if f not in present]
    if missing:
        raise ConfigError(
            f"suite {suite.name!r} has no family {missing[0]!r}",
            hint="families: " + ", ".join(sorted(present)),
        )
    return suite.model_copy(
        update={
            "cases": [c for c in suite.cases if c.family in wanted],
            "families": [f for f in suite.families if f.name in wanted],
        }
    )


def suite_to_yaml(suite: Suite) -> str:
    """Serialize a suite as YAML that :func:`load_suite_file` reads back identically."""
    import yaml

    data = suite.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.setdefault("name", suite.name)
    data["version"] = suite.version
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
