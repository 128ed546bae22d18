r"""Windowed verification: run a rule's regex only around its hyperscan hits.

On long texts a rule that matches once would otherwise scan the whole text with its Python
regex. Hyperscan reports where its (superset) pattern ends; every Python match contains or
touches such an end, so the Python match must start within ``reach`` characters before it.

Exactness rests on how ``re`` treats ``pattern.search(text, pos, endpos)``:

- ``pos`` changes nothing about the match semantics: lookbehinds, ``\b`` and ``^`` still see
  the characters before ``pos``; only start positions below ``pos`` are skipped.
- ``endpos`` truncates the string, so a match attempt is unchanged only if it never inspects
  a character at or after ``endpos``. `analyse` bounds how far an attempt can look from its
  start (its *reach*): fixed parts count their width, lookaheads count as consumed. Repeats
  that are unbounded or long (``\s*``, ``[^\n]{0,300}``) consume only characters of one set
  ``U`` (the union of what their body can match), so they consume at most the length of the
  run of ``U``-characters where they start. A reach is therefore computed for an assumed cap
  ``C`` on such runs and the assumption is *checked* on the text around each window (no run
  of ``C + 1`` ``U``-characters starting there); if it fails the next cap is tried, and
  finally the whole text is scanned as before.

So the matches found window by window are exactly the ``finditer`` matches over the whole
text: starts outside the windows cannot match, each search starts at
``max(window start, previous match end)`` like ``finditer`` does, and inside a window the
truncated text behaves like the full text. `tests/detect/test_window.py` checks this against
whole-text verification on the corpus and on adversarial texts.
"""

from __future__ import annotations

import importlib
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from finegate.detect._ascii import non_ascii_runs

# The regex parser of the standard library (untyped, private but stable since 3.11).
_p: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

CAP = 32
"""Runs up to this long are assumed first; longer runs near a window raise the cap."""

_SMALL = 32  # repeats inspecting at most this many characters are counted exactly
_SMALL_TIMES = 4  # repeats of bodies with long repeats, counted per iteration up to this
_ALL = frozenset(chr(i) for i in range(128))
_DIGIT = frozenset("0123456789")
_SPACE = frozenset(" \t\n\r\f\v")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CATEGORIES: dict[object, tuple[frozenset[str], bool]] = {
    _c.CATEGORY_DIGIT: (_DIGIT, False),
    _c.CATEGORY_NOT_DIGIT: (_ALL - _DIGIT, True),
    _c.CATEGORY_SPACE: (_SPACE, False),
    _c.CATEGORY_NOT_SPACE: (_ALL - _SPACE, True),
    _c.CATEGORY_WORD: (_WORD, False),
    _c.CATEGORY_NOT_WORD: (_ALL - _WORD, True),
}


class _Unsupported(Exception):
    """A construct whose reach is not bounded here (the rule scans whole texts)."""


def _cased(chars: Iterable[str]) -> frozenset[str]:  # ASCII case variants
    return frozenset(ch for c in chars for ch in (c, c.swapcase()) if ch.isascii())


@dataclass(slots=True)
class _CharSet:
    ascii: set[str]
    non_ascii: bool = False

    def add(self, chars: Iterable[str], non_ascii: bool = False) -> None:
        self.ascii.update(chars)
        self.non_ascii = self.non_ascii or non_ascii

    def pattern(self) -> str:
        """A character class matching (a superset of) this set."""
        if self.non_ascii:
            rest = "".join(f"\\x{ord(c):02x}" for c in sorted(_ALL - self.ascii))
            return f"[^{rest}]" if rest else r"[\s\S]"
        body = "".join(f"\\x{ord(c):02x}" for c in sorted(self.ascii))
        return f"[{body}]" if body else "(?!)"


def _leaf_chars(op: Any, av: Any, flags: int, out: _CharSet) -> None:
    icase = bool(flags & re.IGNORECASE)
    if op is _c.LITERAL:
        ch = chr(av)
        out.add(_cased(ch) if icase else (ch,), not ch.isascii())
    elif op is _c.NOT_LITERAL:
        ch = chr(av)
        out.add(_ALL - (_cased(ch) if icase else {ch}), True)
    elif op is _c.ANY:
        out.add(_ALL if flags & re.DOTALL else _ALL - {"\n"}, True)
    elif op is _c.IN:
        items = list(av)
        negate = bool(items) and items[0][0] is _c.NEGATE
        inner = _CharSet(set())
        for iop, iav in items[1:] if negate else items:
            if iop is _c.LITERAL:
                ch = chr(iav)
                inner.add(_cased(ch) if icase else (ch,), not ch.isascii())
            elif iop is _c.RANGE:
                lo, hi = iav
                span = [chr(i) for i in range(lo, min(hi, 127) + 1)]
                inner.add(_cased(span) if icase else span, hi > 127)
            elif iop is _c.CATEGORY and iav in _CATEGORIES:
                cat, na = _CATEGORIES[iav]
                inner.add(cat, na)
            else:
                raise _Unsupported(str(iop))
        if negate:
            out.add(_ALL - inner.ascii, True)
        else:
            out.add(inner.ascii, inner.non_ascii)
    else:
        raise _Unsupported(str(op))


def _chars(items: Sequence[tuple[Any, Any]], flags: int, out: _CharSet) -> None:
    """Add every character the items can consume to ``out``."""
    for op, av in items:
        if op in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN):
            _leaf_chars(op, av, flags, out)
        elif op is _c.AT:
            continue
        elif op is _c.SUBPATTERN:
            _chars(av[3], flags, out)
        elif op is _c.BRANCH:
            for alt in av[1]:
                _chars(alt, flags, out)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            _chars(av[2], flags, out)
        elif op is _c.ATOMIC_GROUP:
            _chars(av, flags, out)
        else:  # a lookaround inside a long repeat inspects beyond what it consumes
            raise _Unsupported(str(op))


@dataclass(frozen=True, slots=True)
class Reach:
    """How far a match attempt of one rule can look.

    Attributes:
        const: Characters inspected after the start, not counting long repeats.
        runs: Long repeats on the worst path; each adds the run cap.
        behind: Longest lookbehind (hyperscan may report an end just before the start).
        checks: Per long-repeat set: a regex finding a run longer than `CAP` and one
            measuring a run.
        dense_ends: The pattern can end in a long repeat, so hyperscan reports an end at
            every character of such runs; windows then rarely pay for themselves.
    """

    const: int
    runs: int
    behind: int
    checks: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...]
    dense_ends: bool

    def span(self, cap: int) -> int:
        """Characters a match attempt may inspect from its start when runs are <= ``cap``."""
        # +2: ``\b`` peeks at the character after the last one inspected, and ``$`` also
        # at whether a final newline is the last character of the string.
        return self.const + self.runs * cap + 2


class _Walker:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.behind = 0
        self.sets: list[_CharSet] = []

    def walk(self, items: Sequence[tuple[Any, Any]]) -> tuple[int, int]:
        const = runs = 0
        for op, av in items:
            c, r = self.item(op, av)
            const += c
            runs += r
        return const, runs

    def item(self, op: Any, av: Any) -> tuple[int, int]:
        if op in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN):
            return 1, 0
        if op is _c.AT:
            return 0, 0
        if op is _c.SUBPATTERN:
            if av[1] or av[2]:  # inline flags change the sets
                raise _Unsupported("inline flags")
            return self.walk(av[3])
        if op is _c.ATOMIC_GROUP:
            return self.walk(av)
        if op is _c.BRANCH:
            parts = [self.walk(alt) for alt in av[1]]
            return max(c for c, _ in parts), max(r for _, r in parts)
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, sub = av
            if direction < 0:
                self.behind = max(self.behind, sub.getwidth()[1])
                return 0, 0
            return self.walk(sub)  # a lookahead counts as consumed: conservative
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            c, r = self.walk(sub)
            if hi != _c.MAXREPEAT:
                if r == 0 and hi * c <= _SMALL:
                    return hi * c, 0
                if r and hi <= _SMALL_TIMES:
                    return hi * c, hi * r  # each iteration is bounded on its own
            cs = _CharSet(set())
            _chars(sub, self.flags, cs)
            self.sets.append(cs)
            return 0, 1
        raise _Unsupported(str(op))


def _open_ended(op: Any, av: Any) -> bool:
    """A repeat whose number of characters varies widely (unbounded or a wide range)."""
    if op not in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        return False
    lo, hi, sub = av
    return bool(hi == _c.MAXREPEAT or (hi - lo) * sub.getwidth()[1] > _SMALL)


def _ends_in_long_repeat(items: Sequence[tuple[Any, Any]]) -> bool:
    for op, av in reversed(list(items)):
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue
        if _open_ended(op, av):
            return True
        if op is _c.SUBPATTERN and _ends_in_long_repeat(av[3]):
            return True
        if op is _c.BRANCH and any(_ends_in_long_repeat(a) for a in av[1]):
            return True
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            if _ends_in_long_repeat(av[2]):
                return True
        if _p.SubPattern(_p.State(), [(op, av)]).getwidth()[0] > 0:
            return False  # a required item closes the pattern
    return False


def analyse(pattern: str, flags: int) -> Reach | None:
    """Return the `Reach` of a pattern, or None when windows cannot be bounded."""
    try:
        walker = _Walker(flags | re.ASCII)
        parsed = _p.parse(pattern, flags | re.ASCII)
        if parsed.getwidth()[0] == 0:
            return None  # empty matches: finditer's stepping rules are not reproduced here
        const, runs = walker.walk(parsed)
    except (_Unsupported, TypeError, ValueError, IndexError):
        return None
    classes = dict.fromkeys(cs.pattern() for cs in walker.sets)
    checks = tuple((re.compile(f"{k}{{{CAP + 1},}}"), re.compile(f"{k}*")) for k in classes)
    return Reach(const, runs, walker.behind, checks, _ends_in_long_repeat(parsed))


class ByteMap:
    """Maps UTF-8 byte offsets of a text to character offsets (as bounds)."""

    __slots__ = ("_bend", "_bstart", "_cend", "_cstart", "_shift")

    def __init__(self, text: str) -> None:
        self._bstart: list[int] = []
        self._bend: list[int] = []
        self._cstart: list[int] = []
        self._cend: list[int] = []
        self._shift: list[int] = []
        shift = 0
        for s, e in non_ascii_runs(text):
            self._bstart.append(s + shift)
            shift += len(text[s:e].encode("utf-8", "surrogatepass")) - (e - s)
            self._bend.append(e + shift)
            self._cstart.append(s)
            self._cend.append(e)
            self._shift.append(shift)

    def bounds(self, offset: int) -> tuple[int, int]:
        """Character offsets ``(lo, hi)`` between which byte ``offset`` lies."""
        k = bisect_right(self._bend, offset)  # runs ending at or before the offset
        if k < len(self._bstart) and self._bstart[k] < offset:
            return self._cstart[k], self._cend[k]  # inside a multi-byte run
        c = offset - (self._shift[k - 1] if k else 0)
        return c, c


def _clusters(offsets: list[int], gap: int) -> list[tuple[int, int]]:
    """Group ascending offsets whose neighbours are at most ``gap`` apart: ``(first, last)``."""
    out: list[tuple[int, int]] = []
    first = prev = offsets[0]
    for o in offsets:
        if o - prev > gap:
            out.append((first, prev))
            first = o
        prev = o
    out.append((first, prev))
    return out


def _windows(ends: Sequence[tuple[int, int]], span: int, behind: int, n: int) -> list[list[int]]:
    """Merged ``[first start, last start]`` ranges where a match may start."""
    windows: list[list[int]] = []
    for lo, hi in ends:
        a, b = lo - span if lo > span else 0, min(n, hi + behind + 1)
        if windows and a <= windows[-1][1] + 1:
            if b > windows[-1][1]:
                windows[-1][1] = b
        else:
            windows.append([a, b])
    return windows


def windowed(
    regex: re.Pattern[str],
    text: str,
    offsets: list[int],
    reach: Reach,
    bytemap: ByteMap | None = None,
) -> list[re.Match[str]] | None:
    """Return ``list(regex.finditer(text))`` computed around hyperscan ends, or None.

    Args:
        regex: The rule's compiled pattern.
        text: The folded text.
        offsets: UTF-8 byte offsets of the hyperscan match ends of the rule's pattern.
        reach: The pattern's `Reach`.
        bytemap: Byte-to-character map of ``text``; None when ``text`` is ASCII.

    Returns:
        The matches, or None when the windows would cover most of the text (the caller then
        scans the whole text, which is cheaper).
    """
    n = len(text)
    cap = CAP
    offsets.sort()  # already ascending in practice; then this is a linear check
    # Ends closer than a window's width give one window: cluster them before mapping.
    # Character distances never exceed byte distances, so the hull covers the same starts.
    clusters = _clusters(offsets, reach.span(cap) + reach.behind + 1)
    if bytemap is None:
        ends = clusters
    else:
        ends = [(bytemap.bounds(f)[0], bytemap.bounds(last)[1]) for f, last in clusters]
    while True:
        span = reach.span(cap)
        windows = _windows(ends, span, reach.behind, n)
        if sum(b - a + span for a, b in windows) * 2 > n:
            return None
        if not reach.runs:
            break
        # A long repeat starting at q < stop consumes at most the run of its set from q.
        longest = cap
        for a, b in windows:
            stop = min(n, b + span)
            for find, measure in reach.checks:
                m = find.search(text, a, stop + CAP)
                while m is not None:
                    q = m.start()
                    run = measure.match(text, q)
                    size = run.end() - q if run is not None else n - q
                    longest = max(longest, size)
                    m = find.search(text, q + size, stop + CAP) if q + size < stop else None
        if longest <= cap:
            break
        cap = longest
    out: list[re.Match[str]] = []
    last = 0
    search = regex.search
    for a, b in windows:
        pos = max(a, last)
        stop = min(n, b + span)
        while pos <= b:
            m = search(text, pos, stop)
            if m is None or m.start() > b:
                break
            out.append(m)
            last = pos = m.end()
    return out
