"""The `Scanner`: a configured set of detectors run over texts in one pass each."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from finegate.detect._actions import _span_order
from finegate.detect._base import RuleDetector
from finegate.detect._normalize import normalize
from finegate.detect._rules import Engine, Override, Rule, RuleSet
from finegate.detect._types import Channel, Detector, Finding, Severity
from finegate.detect._window import ByteMap, windowed

DEFAULT_DETECTORS: tuple[str, ...] = (
    "secrets", "pii", "injection", "hidden", "network", "malware", "obedience",
)  # fmt: skip
"""Detectors a `Scanner` runs when none are named (``leakage`` joins when configured)."""

DEFAULT_CHUNK = 1 << 20
DEFAULT_OVERLAP = 16384  # longer than any single rule match except whole key blocks
WINDOW_MIN = 4096
"""Texts at least this long (characters) verify rules only around hyperscan's match ends.

Measured (2026-12-02): at 2 KB whole-text verification is faster on prose and on text dense
with findings alike (63 vs 82 us, 642 vs 828 us); from 4 KB windows win on dense text
(1.30 vs 1.38 ms at 4 KB, 35 vs 45 ms at 64 KB) and lose about 25% on prose."""
SPARSE = 64
"""Runs-ending rules get windows only in texts with fewer than one other end per SPARSE chars."""


def build_detector(name: str, options: Mapping[str, Any] | None = None) -> Detector:
    """Instantiate the registered detector ``name`` with keyword ``options``.

    Raises:
        ConfigError: for an unknown name or options the detector does not accept.
    """
    from finegate.errors import ConfigError
    from finegate.plugins import lookup

    factory = lookup("detector", name)
    try:
        det = factory(**dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"bad options for detector {name!r}: {exc}") from None
    return det  # type: ignore[no-any-return]


def resolve_overlaps(findings: list[Finding], priority: Mapping[str, int]) -> list[Finding]:
    """Keep one finding per overlapping group within a category.

    The winner has the higher rule priority, then the longer span. Different categories may
    overlap (an email inside a URL is both PII and a link).

    Args:
        findings: Findings of one text, any order.
        priority: Priority by kind (missing kinds count as 0).

    Returns:
        The kept findings sorted by ``(start, end, kind)``.
    """
    if len(findings) < 2:
        return list(findings)
    # Most texts: nothing overlaps and no two start together; the span order is the answer.
    ordered = sorted(findings, key=_span_order)
    last_start, last_end = -1, -1
    for f in ordered:
        if f.start <= last_start or f.start < last_end:
            break
        last_start, last_end = f.start, f.end
    else:
        return ordered
    by_cat: dict[str, list[Finding]] = {}
    for f in findings:
        by_cat.setdefault(f.category, []).append(f)
    kept: list[Finding] = []
    for group in by_cat.values():
        group.sort(key=lambda f: (f.start, -f.end))
        last: Finding | None = None
        for f in group:
            if last is not None and f.start < last.end:
                if (priority.get(f.kind, 0), f.end - f.start) > (
                    priority.get(last.kind, 0),
                    last.end - last.start,
                ):
                    last = f
                continue
            if last is not None:
                kept.append(last)
            last = f
        if last is not None:
            kept.append(last)
    kept.sort(key=lambda f: (f.start, f.end, f.kind))
    return kept


class Scanner:
    """Runs a configured set of detectors over texts.

    Built-in detectors contribute regex rules that share one prefilter pass (hyperscan when
    installed); other detectors are called through the `Detector` protocol. Texts longer than
    ``chunk_size`` are scanned in overlapping windows so that a match on a boundary is found.

    Args:
        detectors: Detector names (from the registry) or instances; default
            `DEFAULT_DETECTORS`, plus ``leakage`` when ``options`` configures it.
        options: Keyword options per detector name, e.g.
            ``{"network": {"internal_domains": ["corp.example"]}, "leakage": {"canaries": [...]}}``.
        engine: Prefilter backend: ``auto`` (hyperscan if importable), ``hyperscan``, ``python``.
        min_severity: Drop findings below this severity.
        chunk_size: Window size in characters for long texts.
        overlap: Overlap between windows; a match shorter than this is never split.

    Example:
        >>> from finegate.detect import Scanner
        >>> [f.kind for f in Scanner(["pii"]).scan("mail me: jane.roe@acme-mail.com")]
        ['pii.email']
    """

    def __init__(
        self,
        detectors: Sequence[str | Detector] | None = None,
        *,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        engine: Engine = "auto",
        min_severity: Severity | str = Severity.INFO,
        chunk_size: int = DEFAULT_CHUNK,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        from finegate.errors import ConfigError

        options = dict(options or {})
        if detectors is None:
            detectors = list(DEFAULT_DETECTORS)
            if "leakage" in options:
                detectors.append("leakage")
        if chunk_size <= 2 * overlap:
            raise ConfigError("chunk_size must be more than twice the overlap")
        self.chunk_size = chunk_size
        self.overlap = overlap
        self.min_severity = Severity.parse(min_severity)
        self.detectors: list[Detector] = []
        for d in detectors:
            if isinstance(d, str):
                self.detectors.append(build_detector(d, options.get(d)))
            else:
                self.detectors.append(d)
        unknown = set(options) - {d.name for d in self.detectors}
        if unknown:
            raise ConfigError(f"options given for detectors not selected: {sorted(unknown)}")
        self._rule_dets = [d for d in self.detectors if isinstance(d, RuleDetector)]
        self._other_dets = [d for d in self.detectors if not isinstance(d, RuleDetector)]
        # Only detectors that override `extra` (hidden, leakage) need the call per text.
        self._extra_dets = [d for d in self._rule_dets if type(d).extra is not RuleDetector.extra]
        rules: list[Rule] = []
        owners: list[str] = []
        for d in self._rule_dets:
            for r in d.rules():
                rules.append(r)
                owners.append(d.name)
        self._owners = owners
        self._ruleset = RuleSet(rules, engine)
        self._priority = {r.kind: r.priority for r in rules}
        first: dict[tuple[str, int], int] = {}
        self._same_pattern = [
            first.setdefault((r.pattern, r.flags), i) for i, r in enumerate(rules)
        ]
        self._reach = self._ruleset.reach
        self._window_min = WINDOW_MIN

    @property
    def engine(self) -> str:
        """The prefilter backend in use: ``hyperscan`` or ``python``."""
        return self._ruleset.engine

    @property
    def names(self) -> list[str]:
        """Names of the configured detectors."""
        return [d.name for d in self.detectors]

    # -- one window -------------------------------------------------------------------------

    def _matches(self, folded: str, channel: Channel) -> Iterator[tuple[int, list[re.Match[str]]]]:
        """Yield ``(rule index, matches)`` for every rule of ``channel`` that may match.

        The matches are always those of ``rule.regex.finditer(folded)``. On long texts with
        hyperscan they are computed only around the prefilter's match ends (`windowed`);
        rules sharing one pattern (public and private IPs) share one computation.
        """
        rules = self._ruleset.rules
        same = self._same_pattern
        memo: dict[int, list[re.Match[str]]] = {}
        if self._ruleset.has_ends and len(folded) >= self._window_min:
            ruleset = self._ruleset
            ends = ruleset.ends(folded)
            cands = []
            for i in sorted(ends):
                chans = rules[i].channels
                if chans is None or channel in chans:
                    cands.append(i)
            dense = ruleset.dense
            if any(dense[i] for i in cands):
                # Rules whose ends come at every character of a run: collect those ends only
                # when the text looks sparse (fewer than one other end per SPARSE chars).
                if sum(len(ends[i]) for i in cands if not dense[i]) * SPARSE < len(folded):
                    ends.update(ruleset.ends(folded, dense=True))
                else:
                    dense = [False] * len(rules)  # verify them on the whole text
            bmap = None if folded.isascii() else ByteMap(folded)
            for i in cands:
                key = same[i]
                ms = memo.get(key)
                if ms is None:
                    reach = self._reach[i]
                    if reach is not None and (not reach.dense_ends or dense[i]):
                        ms = windowed(rules[i].regex, folded, ends[i], reach, bmap)
                    if ms is None:
                        ms = list(rules[i].regex.finditer(folded))
                    memo[key] = ms
                yield i, ms
            return
        for i in self._ruleset.candidates(folded):
            chans = rules[i].channels
            if chans is not None and channel not in chans:
                continue
            key = same[i]
            ms = memo.get(key)
            if ms is None:
                rule = rules[i]
                finder = rule.finder
                ms = finder(rule.regex, folded) if finder else list(rule.regex.finditer(folded))
                memo[key] = ms
            yield i, ms

    def _scan_window(self, text: str, channel: Channel) -> list[Finding]:
        norm = normalize(text)
        folded = norm.text
        identity = norm.is_identity
        out: list[Finding] = []
        rules = self._ruleset.rules
        owners = self._owners
        for i, matches in self._matches(folded, channel):
            if not matches:
                continue
            rule = rules[i]
            validate, group = rule.validate, rule.group
            for m in matches:
                verdict: Override | bool = True
                if validate is not None:
                    verdict = validate(m, channel)
                    if verdict is False:
                        continue
                s, e = m.span(group)
                kind, sev, detail, meta = rule.kind, rule.severity, rule.detail, None
                if isinstance(verdict, Override):
                    if verdict.span is not None:
                        s, e = verdict.span
                    if verdict.kind and verdict.kind != kind:
                        kind = verdict.kind
                        self._priority.setdefault(kind, rule.priority)
                    sev = verdict.severity if verdict.severity is not None else sev
                    detail = verdict.detail or detail
                    meta = verdict.meta
                if e <= s:
                    continue
                if not identity:
                    s, e = norm.to_original(s, e)
                out.append(Finding(kind, s, e, sev, detail, owners[i], text[s:e], meta or {}))
        for d in self._extra_dets:
            out.extend(d.extra(norm, channel))
        for o in self._other_dets:
            out.extend(o.scan(text, channel=channel))
        return out

    # -- public -------------------------------------------------------------------------------

    def scan(self, text: str, *, channel: Channel = "input") -> list[Finding]:
        """Return the findings in ``text`` sorted by position.

        Args:
            text: Any string; spans refer to it.
            channel: Where the text comes from.
        """
        if not isinstance(text, str):
            from finegate.errors import ConfigError

            raise ConfigError(
                f"Scanner.scan expects str, got {type(text).__name__}",
                hint="decode bytes first, e.g. data.decode('utf-8', 'replace')",
            )
        if len(text) <= self.chunk_size:
            found = self._scan_window(text, channel)
            return self._finish(found)
        return list(self.scan_stream([text], channel=channel))

    def scan_batch(
        self, texts: Iterable[str], *, channel: Channel = "input"
    ) -> list[list[Finding]]:
        """Scan many texts; returns one findings list per text, in order."""
        return [self.scan(t, channel=channel) for t in texts]

    def scan_stream(self, parts: Iterable[str], *, channel: Channel = "input") -> Iterator[Finding]:
        """Scan a text given as consecutive parts (e.g. file reads) of any total length.

        Windows of ``chunk_size`` overlap by ``overlap`` characters, so a match shorter than
        the overlap that crosses a window boundary is still found once, with offsets into the
        whole concatenated text.
        """
        size, step = self.chunk_size, self.chunk_size - self.overlap
        buf, base = "", 0  # buf holds text from global offset `base`
        emitted: list[Finding] = []  # findings reaching into the region still in `buf`
        parts_iter = iter(parts)
        done = False
        while True:
            while not done and len(buf) < size:
                try:
                    buf += next(parts_iter)
                except StopIteration:
                    done = True
            last = done and len(buf) <= size
            window = buf[:size]
            raw = self._scan_window(window, channel)
            found = self._finish(raw, shift=base)
            limit = base + (len(window) if last else step)
            keep: list[Finding] = []
            for f in found:
                if f.start >= limit:
                    continue  # the next window sees it whole
                if any(
                    f.category == g.category and f.start < g.end and g.start < f.end
                    for g in emitted
                ):
                    continue  # a truncated re-find of something already reported
                keep.append(f)
            yield from keep
            if last:
                return
            emitted = [f for f in emitted + keep if f.end > base + step]
            buf = buf[step:]
            base += step

    def _finish(self, found: list[Finding], shift: int = 0) -> list[Finding]:
        if self.min_severity > Severity.INFO:
            found = [f for f in found if f.severity >= self.min_severity]
        kept = resolve_overlaps(found, self._priority)
        if shift:
            kept = [
                Finding(
                    f.kind,
                    f.start + shift,
                    f.end + shift,
                    f.severity,
                    f.detail,
                    f.detector,
                    f.text,
                    f.meta,
                )
                for f in kept
            ]
        return kept
