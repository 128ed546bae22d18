"""Canary and system-prompt leakage in model outputs.

Configured per deployment or per evaluation case: canary strings planted in a system prompt or
a document, and the system prompt itself. A leak is reported when an output contains a canary
verbatim or lightly transformed (case, spacing/punctuation between letters, reversed, base64,
hex, rot13), or a run of words copied from the system prompt.
"""

from __future__ import annotations

import binascii
import codecs
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from itertools import compress
from typing import Any

from finegate.detect._ascii import ascii_view
from finegate.detect._base import RuleDetector
from finegate.detect._normalize import NormalizedText
from finegate.detect._types import Channel, Finding, Severity

_runs_in: Callable[[bytes, bytes, int], list[tuple[int, int]]] | None
try:
    from finegate._runs import runs as _runs_in
except ImportError:  # built without a C compiler (the extension is optional)
    _runs_in = None


def _runs(chars: str, shortest: int, tail: str = "") -> re.Pattern[str]:
    # Whole runs only (the look-behind): a plain `[...]{n,}` retries at every position inside
    # each shorter word, which made this the costliest part of scanning ordinary prose.
    return re.compile(rf"(?<![{chars}])[{chars}]{{{shortest},}}{tail}")


_B64_CHARS = r"A-Za-z0-9+/_\-"
_HEX_CHARS = "0-9a-fA-F"
_WORDS = re.compile(r"[^\W_]+")
# The checks, as reported by the hyperscan `_Prefilter`.
_FORMS, _PROMPT, _BASE64, _HEX = 0, 1, 2, 3
_CANARY_CHECKS = frozenset({_FORMS, _BASE64, _HEX})
_ALL_CHECKS = frozenset({*_CANARY_CHECKS, _PROMPT})
# The two run classes as byte tables (for `_runs_in`): the same sets as the patterns.
_B64_TABLE = bytes(re.fullmatch(rf"[{_B64_CHARS}]", chr(b)) is not None for b in range(256))
_HEX_TABLE = bytes(re.fullmatch(rf"[{_HEX_CHARS}]", chr(b)) is not None for b in range(256))


_NON_ALNUM = re.compile(r"[\W_]")
# Decoded runs remembered per detector: placeholder-sized ones, a request's worth and more;
# at most ~100 KB per detector (the gateway keeps up to 256, one per system prompt).
_DECODED_MAX, _DECODED_RUN_MAX = 256, 256
_URLSAFE = str.maketrans("-_", "+/")


def _b64_text(blob: str) -> str:
    """The text a base64 run decodes to (standard or URL-safe alphabet; "" if it does not).

    A run with ``-`` or ``_`` is URL-safe base64 (the standard alphabet has neither); the
    decoder is called directly, since pseudonym placeholders (``EMAIL_3fa9c01b2d7e``) make
    such runs common in gateway traffic.
    """
    if "-" in blob or "_" in blob:
        blob = blob.translate(_URLSAFE)
    try:
        return binascii.a2b_base64(blob + "=" * (-len(blob) % 4)).decode("utf-8", "ignore")
    except (binascii.Error, ValueError):
        return ""


# The non-ASCII characters that Python's case-insensitive matching or `str.lower` turns into
# an ASCII letter (checked against every code point in the tests).
_AS_ASCII_LETTER = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
# Beyond this many UTF-8 bytes of non-ASCII characters (64 to 192 characters) a text with
# one of those letters is checked without the prefilter: its view costs a call per run of
# such characters, more than it saves on text that is mostly not ASCII.
_VIEW_MAX_EXTRA_BYTES = 192


def _view_char(c: str) -> str:
    return _AS_ASCII_LETTER.get(c, "?")


def _ascii_view(text: str) -> bytes | None:
    """An ASCII stand-in for ``text``, one character for each, for the prefilter (or None).

    Each non-ASCII character becomes the ASCII letter it can match as (`_AS_ASCII_LETTER`)
    or ``?``. On the view the prefilter's patterns match wherever the Python checks can
    match on ``text`` (``?`` is a separator to every pattern, where the character was
    perhaps a letter: more matches, never fewer), and offsets are the same in both, so
    curly quotes, dashes or emoji in an answer no longer send every check down the slow
    path. Without those four letters the view is the encoder's own ``replace``, in C.
    """
    if text.isascii():
        return text.encode("ascii")
    if not any(c in text for c in _AS_ASCII_LETTER):
        return text.encode("ascii", "replace")
    if len(text.encode("utf-8", "surrogatepass")) - len(text) > _VIEW_MAX_EXTRA_BYTES:
        return None
    return ascii_view(text, _view_char)


def _spaced(core: str) -> re.Pattern[str]:
    # Letters of the canary with up to 3 separators between them: "C-A-N-A-R-Y", "c a n".
    return re.compile(r"[\W_]{0,3}".join(re.escape(c) for c in core), re.IGNORECASE)


class LeakageDetector(RuleDetector):
    """Canary and system-prompt leakage.

    Kinds ``leak.canary`` (critical) and
    ``leak.system_prompt`` (high).

    Args:
        canaries: Secret marker strings that must never appear in an output (>= 4 chars).
        system_prompt: The system prompt whose verbatim reproduction is a leak.
        min_words: Shortest run of consecutive system-prompt words counted as a leak.
    """

    name = "leakage"

    def __init__(
        self, canaries: Sequence[str] = (), system_prompt: str | None = None, min_words: int = 8
    ) -> None:
        from finegate.errors import ConfigError

        self.canaries = [c for c in canaries if c]
        short = [c for c in self.canaries if len(re.sub(r"[\W_]", "", c)) < 4]
        if short:
            raise ConfigError(f"canaries need at least 4 letters or digits: {short!r}")
        self._cores = [re.sub(r"[\W_]", "", c).lower() for c in self.canaries]
        self._forward = [_spaced(c) for c in self._cores]
        self._reverse = [_spaced(c[::-1]) for c in self._cores]
        self._rot13 = [codecs.encode(c, "rot13") for c in self._cores]
        # Searched in the text itself: positions found in `text.lower()` are off wherever
        # lowering changes a length (the dotted capital I becomes two characters).
        self._rot13_re = [re.compile(re.escape(r), re.IGNORECASE) for r in self._rot13]
        # An encoded run shorter than these cannot decode to the shortest canary core, so it
        # is not decoded at all (ordinary long words would otherwise all be base64-decoded).
        shortest = min((len(c) for c in self._cores), default=0)
        self._b64_min, self._hex_min = max(8, -(-4 * shortest // 3)), max(8, 2 * shortest)
        self._b64_runs = _runs(_B64_CHARS, self._b64_min, "={0,2}")
        self._hex_runs = _runs(_HEX_CHARS, self._hex_min)
        self._decoded: dict[tuple[int, str], tuple[int, ...]] = {}
        self.min_words = max(3, min_words)
        self._prompt_words: list[str] = []
        self._grams: set[tuple[str, ...]] = set()
        self._firsts: set[str] = set()
        self._n = 0
        if system_prompt:
            self._prompt_words = [w.lower() for w in _WORDS.findall(system_prompt)]
            n = min(self.min_words, len(self._prompt_words))
            self._n = n
            self._grams = {
                tuple(self._prompt_words[i : i + n]) for i in range(len(self._prompt_words) - n + 1)
            }
            self._firsts = {g[0] for g in self._grams}
        self._prefilter = _Prefilter(self)

    def extra(self, norm: NormalizedText, channel: Channel) -> list[Finding]:  # noqa: D102
        out: list[Finding] = []
        if not self.canaries and not self._grams:
            return out
        view = _ascii_view(norm.text)
        fired = self._prefilter.fired(view) if view is not None else None
        checks = _ALL_CHECKS if fired is None else fired.keys()
        if self.canaries and checks & _CANARY_CHECKS:
            out.extend(self._canaries(norm, checks, fired))
        if self._grams and _PROMPT in checks:
            out.extend(self._prompt(norm))
        return out

    def _hit(self, norm: NormalizedText, s: int, e: int, i: int, how: str) -> Finding:
        os_, oe = norm.to_original(s, e)
        return Finding(
            "leak.canary",
            os_,
            oe,
            Severity.CRITICAL,
            f"canary leaked ({how})",
            self.name,
            norm.original[os_:oe],
            {"canary_index": i, "transform": how},
        )

    @staticmethod
    def _runs_of(
        runs: re.Pattern[str], shortest: int, text: str, checks: AbstractSet[int], check: int,
        fired: dict[int, list[int]] | None,
    ) -> Iterator[re.Match[str]]:  # fmt: skip
        """``runs.finditer(text)``; from the prefilter's run offsets when it has them.

        The prefilter reports each run of at least ``shortest`` characters once, ``shortest``
        characters after its start, so the regex is matched at each run start instead of
        being tried across the whole text (pseudonym placeholders such as ``EMAIL_3f2a...``
        make such runs common in gateway traffic).
        """
        if check not in checks:
            return iter(())
        if fired is None:
            return runs.finditer(text)
        found = (runs.match(text, end - shortest) for end in fired[check])
        return (m for m in found if m is not None)

    def _canaries(
        self, norm: NormalizedText, checks: AbstractSet[int], fired: dict[int, list[int]] | None
    ) -> list[Finding]:
        text = norm.text
        out: list[Finding] = []
        for i, core in enumerate(self._cores if _FORMS in checks else ()):
            for m in self._forward[i].finditer(text):
                got = m.group(0)
                if got == self.canaries[i]:
                    how = "verbatim"
                elif got.lower() == self.canaries[i].lower():
                    how = "case"
                elif re.sub(r"[\W_]", "", got).lower() == core and len(got) <= len(core) + 3:
                    how = "case/punctuation"
                else:
                    how = "spaced"
                out.append(self._hit(norm, m.start(), m.end(), i, how))
            for m in self._reverse[i].finditer(text):
                out.append(self._hit(norm, m.start(), m.end(), i, "reversed"))
            if self._rot13[i] != core:
                found = self._rot13_re[i].search(text)
                while found is not None:
                    out.append(self._hit(norm, found.start(), found.end(), i, "rot13"))
                    found = self._rot13_re[i].search(text, found.start() + 1)
        for m in self._runs_of(self._b64_runs, self._b64_min, text, checks, _BASE64, fired):
            for i in self._decoded_cores(m.group(0), _BASE64):
                out.append(self._hit(norm, m.start(), m.end(), i, "base64"))
        for m in self._runs_of(self._hex_runs, self._hex_min, text, checks, _HEX, fired):
            run = m.group(0)[: len(m.group(0)) // 2 * 2]
            for i in self._decoded_cores(run, _HEX):
                out.append(self._hit(norm, m.start(), m.start() + len(run), i, "hex"))
        return out

    def _decoded_cores(self, run: str, check: int) -> tuple[int, ...]:
        """The canary cores a base64 or hex run decodes to (indices), remembered per run.

        Gateway answers repeat the same runs: the pseudonym placeholders of a request
        (``EMAIL_3fa9c01b2d7e``), again and again, and the same ones across requests.
        """
        key = (check, run)
        found = self._decoded.get(key)
        if found is None:
            if check == _BASE64:
                flat = _NON_ALNUM.sub("", _b64_text(run)).lower()
            else:
                flat = _NON_ALNUM.sub("", bytes.fromhex(run).decode("utf-8", "ignore")).lower()
            found = tuple(i for i, core in enumerate(self._cores) if core in flat)
            if len(run) <= _DECODED_RUN_MAX:
                if len(self._decoded) >= _DECODED_MAX:
                    self._decoded.clear()
                self._decoded[key] = found
        return found

    def _prompt(self, norm: NormalizedText) -> list[Finding]:
        # Words are found with one C-level findall; their offsets are only computed when a
        # run of system-prompt n-grams was found (the rare case), which keeps clean outputs
        # cheap on the gateway's hot path.
        words = [w.lower() for w in _WORDS.findall(norm.text)]
        n = self._n
        grams, firsts = self._grams, self._firsts
        covered = [False] * len(words)
        hit = False
        starts = compress(range(len(words) - n + 1), map(firsts.__contains__, words))
        for i in starts:
            if tuple(words[i : i + n]) in grams:
                covered[i : i + n] = [True] * n
                hit = True
        if not hit:
            return []
        spans = [m.span() for m in _WORDS.finditer(norm.text)]
        out: list[Finding] = []
        i = 0
        total = len(self._prompt_words)
        while i < len(words):
            if not covered[i]:
                i += 1
                continue
            j = i
            while j < len(words) and covered[j]:
                j += 1
            count = j - i
            if count >= self.min_words or count >= max(3, total // 2):
                os_, oe = norm.to_original(spans[i][0], spans[j - 1][1])
                out.append(
                    Finding(
                        "leak.system_prompt",
                        os_,
                        oe,
                        Severity.HIGH,
                        f"{count} consecutive words of the system prompt ({total} words)",
                        self.name,
                        norm.original[os_:oe],
                        {"words": count},
                    )
                )
            i = j
        return out


class _Prefilter:
    r"""One hyperscan pass over an ASCII text that says which leak checks can fire on it.

    Checks: `_FORMS` (the canary spelled out, spaced, reversed or rot13), `_BASE64` and `_HEX`
    (an encoded run long enough to hold a canary), `_PROMPT` (an n-gram of system-prompt
    words); the encoded runs come from `_runs_in` (C) where the extension was built, from
    hyperscan patterns otherwise. Each pattern matches a superset of what its Python check
    finds, so a check that does not fire has no finding and its (much slower) Python code is
    skipped. Only ASCII canaries and prompts take this path, and ASCII texts: there
    hyperscan's caseless matching and ``\W`` are exactly Python's (other texts are scanned as
    their `_ascii_view`). The database is compiled after `WARMUP` scans, because a
    detector built for a single evaluation case would spend more on compiling than it saves.
    """

    WARMUP = 8

    def __init__(self, detector: LeakageDetector) -> None:
        self._detector = detector
        self._scans = 0
        self._db: Any = None
        self._local = threading.local()  # hyperscan scratch space is per thread
        self._disabled = False
        # Where the encoded runs come from, decided once: the database holds their patterns
        # exactly when there is no C function to find them.
        self._runs_in = _runs_in

    def _patterns(self, det: LeakageDetector) -> list[tuple[bytes, int]] | None:
        cores = det._cores
        if not all(c.isascii() for c in cores) or not all(w.isascii() for w in det._prompt_words):
            return None
        sep = r"[\W_]{0,3}"
        out: list[tuple[bytes, int]] = []
        for core in cores:
            out.append((sep.join(re.escape(c) for c in core).encode(), _FORMS))
            out.append((sep.join(re.escape(c) for c in core[::-1]).encode(), _FORMS))
            out.append((re.escape(codecs.encode(core, "rot13")).encode(), _FORMS))
        if cores and self._runs_in is None:  # once per run, at its start: see `_runs_of`
            for chars, shortest, check in ((_B64_CHARS, det._b64_min, _BASE64),
                                           (_HEX_CHARS, det._hex_min, _HEX)):  # fmt: skip
                out.append((rf"(?:^|[^{chars}])[{chars}]{{{shortest}}}".encode(), check))
        for gram in det._grams:
            out.append((r"[\W_]+".join(re.escape(w) for w in gram).encode(), _PROMPT))
        return out

    def _compile(self) -> None:
        self._disabled = True
        try:
            import hyperscan
        except ModuleNotFoundError:
            return
        patterns = self._patterns(self._detector)
        if not patterns:
            return
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        once = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
        every = hyperscan.HS_FLAG_CASELESS  # run starts: each run is one match
        db.compile(
            expressions=[p for p, _ in patterns],
            ids=[g for _, g in patterns],
            elements=len(patterns),
            flags=[every if g in (_BASE64, _HEX) else once for _, g in patterns],
        )
        self._db = db
        self._disabled = False

    def fired(self, text: bytes) -> dict[int, list[int]] | None:
        """The checks that may have findings in ASCII ``text`` with their match ends; None: all.

        The base64 and hex checks get one end per run, ``shortest`` characters after the
        run's start; the others one end each.
        """
        if self._disabled:
            return None
        if self._db is None:
            self._scans += 1
            if self._scans < self.WARMUP:
                return None
            self._compile()
            if self._db is None:
                return None
        import hyperscan

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        hits: dict[int, list[int]] = {}
        self._db.scan(text, match_event_handler=_note, context=hits, scratch=scratch)
        det, runs_in = self._detector, self._runs_in
        if runs_in is not None and det._cores:
            spans = runs_in(text, _B64_TABLE, det._b64_min)
            if spans:
                hits[_BASE64] = [start + det._b64_min for start, _ in spans]
                # Hex characters are base64 ones: each hex run lies in a base64 run at
                # least as long, so only those are looked into.
                hexes = [
                    start + s + det._hex_min
                    for start, end in spans
                    if end - start >= det._hex_min
                    for s, _ in runs_in(text[start:end], _HEX_TABLE, det._hex_min)
                ]
                if hexes:
                    hits[_HEX] = hexes
        return hits


def _note(group: int, _from: int, to: int, _flags: int, hits: dict[int, list[int]]) -> None:
    ends = hits.get(group)
    if ends is None:
        hits[group] = [to]
    else:
        ends.append(to)
