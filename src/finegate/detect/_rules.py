r"""Regex rules and the prefilter that decides which rules can match a text.

Every rule carries one authoritative Python pattern; spans always come from it. A prefilter
only says which rules *may* match, so both prefilter backends give identical findings:

- ``hyperscan``: all rules compiled into one automaton in prefilter mode (a superset of the
  Python semantics) with single-match ids; one pass over the text returns the candidate rules.
- ``python``: per-rule required literals (``str in`` is memchr-fast); rules without literals
  always run.

Patterns are compiled with ``re.ASCII`` so ``\\d``, ``\\w``, ``\\s`` and ``\\b`` mean the same in
both engines (the folded text has fullwidth digits etc. already mapped to ASCII).
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from finegate.detect._screens import Chain, chain_set
from finegate.detect._types import Channel, Severity
from finegate.detect._window import Reach, analyse

Engine = Literal["auto", "hyperscan", "python"]


@dataclass(frozen=True, slots=True)
class Override:
    """What a validator may change about a match (``None`` keeps the rule's value)."""

    kind: str | None = None
    severity: Severity | None = None
    detail: str | None = None
    span: tuple[int, int] | None = None
    meta: dict[str, Any] | None = None


Validator = Callable[[re.Match[str], Channel], "Override | bool"]
Finder = Callable[[re.Pattern[str], str], list[re.Match[str]]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of a detector.

    Attributes:
        kind: Finding kind produced (``secret.github_token``).
        pattern: The authoritative Python regex.
        severity: Default severity of its findings.
        detail: Default short reason.
        flags: ``re.IGNORECASE`` / ``re.MULTILINE`` / ``re.DOTALL`` (``re.ASCII`` is implied).
        hs: A hyperscan pattern matching a superset of ``pattern``; defaults to ``pattern``.
        literals: For the Python prefilter: lowercase strings of which at least one occurs in
            every match. Empty means "always run this rule".
        group: The regex group whose span is the finding.
        validate: Optional check of a match: ``False`` drops it, an `Override` adjusts it.
        priority: Wins overlaps with other findings of the same category.
        channels: Channels the rule applies to (``None``: all).
        finder: An exact, faster equivalent of ``list(regex.finditer(text))`` for this rule
            (it gets the regex and the text), used on texts too short for windows.
        screen: A `Chain` equivalent to ``hs``: where the C extension is built, the
            hyperscan backend asks it (with the rule set's other chains, in one call)
            instead of compiling ``hs`` into its candidates database.
    """

    kind: str
    pattern: str
    severity: Severity
    detail: str
    flags: int = 0
    hs: str | None = None
    literals: tuple[str, ...] = ()
    group: int = 0
    validate: Validator | None = None
    priority: int = 0
    channels: frozenset[str] | None = None
    finder: Finder | None = field(default=None, compare=False)
    screen: Chain | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern, self.flags | re.ASCII))


def hyperscan_available() -> bool:
    """Return True when the ``hyperscan`` package can be imported."""
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_engine(engine: Engine) -> Literal["hyperscan", "python"]:
    """Pick the prefilter backend; ``FINEGATE_DETECT_ENGINE`` overrides ``auto``."""
    if engine == "auto":
        env = os.environ.get("FINEGATE_DETECT_ENGINE", "").strip().lower()
        if env in ("hyperscan", "python"):
            engine = env  # type: ignore[assignment]
        else:
            return "hyperscan" if hyperscan_available() else "python"
    if engine == "hyperscan" and not hyperscan_available():
        from finegate.errors import ConfigError

        raise ConfigError(
            "detect engine 'hyperscan' requested but hyperscan is not installed",
            hint="pip install 'finegate[fast]' or use engine='python'",
        )
    return engine  # type: ignore[return-value]


class _PythonPrefilter:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self._always = [i for i, r in enumerate(rules) if not r.literals]
        self._lits = [(i, r.literals) for i, r in enumerate(rules) if r.literals]

    def candidates(self, text: str) -> list[int]:
        out = list(self._always)
        if self._lits:
            low = text.lower()
            out.extend(i for i, lits in self._lits if any(lit in low for lit in lits))
        return out


_HS_CACHE: dict[tuple[str, ...], Any] = {}
_BOUNDED = re.compile(r"(?<!\\)\{(\d+),(\d+)\}")


def relax(pattern: str, limit: int = 24) -> str:
    r"""Turn large bounded repeats ``{m,n}`` into unbounded ``{m,}``.

    The result matches a superset, which is all a prefilter needs, and hyperscan compiles
    unbounded repeats in milliseconds where ``[^\\n]{0,300}`` takes minutes.
    """

    def sub(m: re.Match[str]) -> str:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < limit:
            return m.group(0)
        return "*" if lo == 0 else f"{{{lo},}}"

    return _BOUNDED.sub(sub, pattern)


_HS_LOCK = threading.Lock()


def _cache_file(key: tuple[str, ...], hs_version: str) -> Path:
    import hashlib

    digest = hashlib.sha256("\x01".join((hs_version, *key)).encode()).hexdigest()[:32]
    home = Path(os.environ.get("FINEGATE_HOME", Path.home() / ".finegate"))
    return home / "cache" / "hyperscan" / f"{digest}.db"


def _load_cached(hyperscan: Any, key: tuple[str, ...]) -> Any:
    """Load a compiled database saved by an earlier process (compiling takes ~2 s)."""
    if os.environ.get("FINEGATE_HS_CACHE", "1") == "0":
        return None
    try:
        path = _cache_file(key, str(getattr(hyperscan, "__version__", "")))
        if path.is_file():
            return hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
    except Exception:  # noqa: BLE001 - a bad cache file only costs a recompile
        return None
    return None


def _store_cached(hyperscan: Any, key: tuple[str, ...], db: Any) -> None:
    if os.environ.get("FINEGATE_HS_CACHE", "1") == "0":
        return
    try:
        path = _cache_file(key, str(getattr(hyperscan, "__version__", "")))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(hyperscan.dumpb(db))
        tmp.replace(path)  # atomic: concurrent processes never read a half-written file
    except Exception:  # noqa: BLE001, S110 - caching is best effort (read-only home etc.)
        pass


def _collect(rule_id: int, _from: int, _to: int, _flags: int, hits: object) -> None:
    hits.append(rule_id)  # type: ignore[attr-defined]  # hits is the list passed as context


def _collect_ends(rule_id: int, _from: int, to: int, _flags: int, hits: object) -> None:
    hits[rule_id].append(to)  # type: ignore[index]  # hits is a defaultdict(list)


def _compile(
    hyperscan: Any,
    rules: Sequence[Rule],
    single: bool,
    all_ends: Sequence[bool] = (),
    ids: Sequence[int] | None = None,
) -> Any:
    """Compile (or load from the caches) the prefilter database of ``rules``.

    ``single``: one report per rule of its ``hs`` pattern (enough to pick candidates).
    Otherwise the rule's own ``pattern`` is compiled and, where ``all_ends[i]``, every match
    end is reported, which windowed verification needs: in prefilter mode that is a superset
    of the Python match ends, where an ``hs`` fragment only promises to match where a
    *valid* finding is. ``ids``: the rule indices reported (default ``0..n-1``).
    """
    ids = list(range(len(rules))) if ids is None else list(ids)
    source = [(r.hs or r.pattern) if single else r.pattern for r in rules]
    every = [not single and bool(all_ends) and all_ends[i] for i in range(len(rules))]
    key = tuple(
        f"{r.flags}\x00{int(e)}\x00{src}" for r, e, src in zip(rules, every, source, strict=True)
    )
    if not single:
        key = ("\x00ends", ",".join(map(str, ids)), *key)
    elif ids != list(range(len(rules))):  # some rules are screened instead
        key = ("\x00ids", ",".join(map(str, ids)), *key)
    with _HS_LOCK:
        db = _HS_CACHE.get(key)
        if db is None and rules:
            db = _load_cached(hyperscan, key)
        if db is None:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            exprs, flags = [], []
            for r, e, src in zip(rules, every, source, strict=True):
                exprs.append(relax(src).encode())
                f = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_UTF8
                if not e:
                    f |= hyperscan.HS_FLAG_SINGLEMATCH
                if r.flags & re.IGNORECASE:
                    f |= hyperscan.HS_FLAG_CASELESS
                if r.flags & re.MULTILINE:
                    f |= hyperscan.HS_FLAG_MULTILINE
                if r.flags & re.DOTALL:
                    f |= hyperscan.HS_FLAG_DOTALL
                flags.append(f)
            if exprs:
                db.compile(
                    expressions=exprs,
                    ids=ids,
                    elements=len(exprs),
                    flags=flags,
                )
                _store_cached(hyperscan, key, db)
            _HS_CACHE[key] = db
    return db


class _HyperscanPrefilter:
    def __init__(self, rules: Sequence[Rule], every: Sequence[bool], dense: Sequence[bool]) -> None:
        import hyperscan

        self._rules = rules
        self._every = every
        self._dense_ids = [i for i, d in enumerate(dense) if d]
        # Rules with a screen are asked in one call; the automaton holds the others.
        chains = [(i, r.screen) for i, r in enumerate(rules) if r.screen is not None]
        self._screens = chain_set(chains) if chains else None
        screened = {i for i, _ in chains} if self._screens is not None else set()
        scanned = [i for i in range(len(rules)) if i not in screened]
        self._db = (
            _compile(hyperscan, [rules[i] for i in scanned], single=True, ids=scanned)
            if scanned
            else None
        )
        self._ends_db: Any = None  # compiled on first use (long texts only)
        self._dense_db: Any = None
        self._hs = hyperscan
        self._local = threading.local()

    def candidates(self, text: str) -> list[int]:
        # Lone surrogates never reach here: normalization replaced them with U+FFFD.
        data = text.encode("utf-8")
        hits = self._screens(data) if self._screens is not None else []
        if self._db is None:
            return hits
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._db)
        self._db.scan(data, match_event_handler=_collect, context=hits, scratch=scratch)
        return hits

    def ends(self, text: str, dense: bool = False) -> dict[int, list[int]]:
        """UTF-8 byte offsets of prefilter match ends, per rule, in offset order.

        ``dense=False``: all rules, every end of the rules marked ``every``, one of the
        others. ``dense=True``: every end of the rules marked ``dense`` only.
        """
        if not self._rules or (dense and not self._dense_ids):
            return {}
        name = "dense" if dense else "ends"
        db = self._dense_db if dense else self._ends_db
        if db is None:
            if dense:
                subset = [self._rules[i] for i in self._dense_ids]
                db = self._dense_db = _compile(
                    self._hs, subset, False, [True] * len(subset), self._dense_ids
                )
            else:
                db = self._ends_db = _compile(self._hs, self._rules, False, self._every)
        scratch = getattr(self._local, name, None)
        if scratch is None:
            scratch = self._hs.Scratch(db)
            setattr(self._local, name, scratch)
        hits: defaultdict[int, list[int]] = defaultdict(list)
        db.scan(
            text.encode("utf-8"), match_event_handler=_collect_ends, context=hits, scratch=scratch
        )
        return hits


class RuleSet:
    """A compiled set of rules with a prefilter backend."""

    def __init__(self, rules: Sequence[Rule], engine: Engine = "auto") -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.engine: Literal["hyperscan", "python"] = resolve_engine(engine)
        self._pre: _PythonPrefilter | _HyperscanPrefilter
        # How far each rule's matches reach (None: no windows for it); `dense`: the rule's
        # hyperscan ends come at every character of long runs, so they are collected only
        # for texts that turn out sparse (`ends(text, dense=True)`).
        self.reach: list[Reach | None] = [analyse(r.pattern, r.flags) for r in self.rules]
        self.dense = [r is not None and r.dense_ends for r in self.reach]
        if self.engine == "hyperscan":
            every = [r is not None and not d for r, d in zip(self.reach, self.dense, strict=True)]
            self._pre = _HyperscanPrefilter(self.rules, every, self.dense)
        else:
            self._pre = _PythonPrefilter(self.rules)

    def candidates(self, text: str) -> list[int]:
        """Return indices of the rules that may match ``text`` (ascending)."""
        return sorted(self._pre.candidates(text))

    @property
    def has_ends(self) -> bool:
        """True when the backend reports match offsets (windowed verification possible)."""
        return isinstance(self._pre, _HyperscanPrefilter)

    def ends(self, text: str, dense: bool = False) -> dict[int, list[int]]:
        """UTF-8 byte offsets of prefilter match ends per candidate rule (hyperscan only).

        Every end is listed for rules with a `reach` that are not `dense`; the others get
        one, marking a candidate. With ``dense=True``: every end of the `dense` rules.
        """
        assert isinstance(self._pre, _HyperscanPrefilter)
        return self._pre.ends(text, dense)
