"""Text normalization with an offset map back to the original text.

Detectors match on a folded view of the text so that obfuscation does not hide content:
Unicode NFKC (fullwidth, ligatures, mathematical letters), accents stripped from Latin
letters, Cyrillic/Greek look-alikes folded to Latin, zero-width and bidi controls removed,
Unicode tag characters (U+E0020-E007E) decoded to the ASCII they smuggle. Every finding is
mapped back through `NormalizedText.to_original` so spans always point into the original.

ASCII text (the common case) is returned as is, without building a map.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field

from finegate.detect._ascii import non_ascii_runs

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad\u2061\u2062\u2063\u2064")
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
# Variation selectors: FE0F is legitimate after emoji, but long runs smuggle bytes.
VARIATION_SELECTORS = frozenset(chr(c) for c in range(0xFE00, 0xFE10))

# Look-alikes that NFKC leaves alone. Kept small and certain: each maps to the Latin letter
# it is routinely substituted for in homoglyph attacks.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ԛ": "q",
    "ԝ": "w", "ɡ": "g", "ӏ": "l", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H",
    "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ү": "Y",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "υ": "u", "τ": "t", "ϲ": "c",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip

# Kinds of invisible characters recorded for the hidden-text detector.
INV_ZERO_WIDTH = "zero_width"
INV_BIDI = "bidi"
INV_TAG = "tag"
INV_VARIATION = "variation_selector"


def _fold_char(c: str) -> str:
    """Fold one visible non-ASCII character for matching (NFKC, accents, confusables)."""
    cp = ord(c)
    if 0xD800 <= cp <= 0xDFFF:
        return "\ufffd"  # a lone surrogate cannot be encoded; keep one char so offsets hold
    n = unicodedata.normalize("NFKC", c)
    if not n.isascii():
        stripped = "".join(
            ch for ch in unicodedata.normalize("NFD", n) if not unicodedata.combining(ch)
        )
        if stripped and stripped.isascii():
            n = stripped  # "é" -> "e": matching should not be defeated by diacritics
    if not n.isascii():
        n = "".join(_CONFUSABLES.get(ch, ch) for ch in n)
    return n


_FOLD_CACHE: dict[str, str] = {}
# Non-ASCII characters seen to be visible and to fold to themselves (curly quotes, dashes,
# most letters of other scripts): a text whose other characters are all here is its own
# folded view, which a C-level check finds (`_non_ascii` removes everything else).
_PLAIN: set[str] = set()
_PLAIN_MAX = 16384
_ASCII_BYTES = bytes(range(128))
# The last text normalized and its result: the output guard's scanner and its leak checks
# normalize the same answer one after the other (the same object; `is` decides).
_last: tuple[str, NormalizedText] | None = None


def _invisible_class(c: str) -> str | None:
    if c in ZERO_WIDTH:
        return INV_ZERO_WIDTH
    if c in BIDI_CONTROLS:
        return INV_BIDI
    cp = ord(c)
    if 0xE0000 <= cp <= 0xE007F:
        return INV_TAG
    if c in VARIATION_SELECTORS or 0xE0100 <= cp <= 0xE01EF:
        return INV_VARIATION
    return None


@dataclass(slots=True)
class NormalizedText:
    """The folded view of a text plus what is needed to map spans back.

    Attributes:
        original: The text as given.
        text: The folded text detectors match on.
        invisible: Runs of invisible characters in the original: ``(start, end, class)``.
        confusables: Original offsets of characters folded by the look-alike table.
    """

    original: str
    text: str
    invisible: list[tuple[int, int, str]] = field(default_factory=list)
    confusables: list[int] = field(default_factory=list)
    # Segment starts in the folded text, their original offsets, and whether the segment is
    # copied verbatim (offsets advance together) or produced by one original character.
    _norm_starts: list[int] = field(default_factory=list)
    _orig_starts: list[int] = field(default_factory=list)
    _identity: list[bool] = field(default_factory=list)

    @property
    def is_identity(self) -> bool:
        """True when the folded text is the original (no map needed)."""
        return not self._norm_starts

    def _orig_index(self, pos: int) -> int:
        k = bisect_right(self._norm_starts, pos) - 1
        if k < 0:
            return pos
        if self._identity[k]:
            return self._orig_starts[k] + (pos - self._norm_starts[k])
        return self._orig_starts[k]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the folded text to the span of the original it came from."""
        if not self._norm_starts:
            return start, end
        if end <= start:
            o = self._orig_index(start) if start < len(self.text) else len(self.original)
            return o, o
        return self._orig_index(start), self._orig_index(end - 1) + 1


def normalize(text: str) -> NormalizedText:
    """Return the folded view of ``text`` with its offset map.

    Args:
        text: Any string, including lone surrogates and control characters.

    Returns:
        A `NormalizedText`; for ASCII input its ``text`` is ``text`` itself.
    """
    global _last
    if text.isascii():
        return NormalizedText(text, text)
    last_seen = _last
    if last_seen is not None and last_seen[0] is text:
        return last_seen[1]
    if _PLAIN.issuperset(_non_ascii(text)):
        res = NormalizedText(text, text)
    else:
        res = _fold(text)
    _last = (text, res)
    return res


def _non_ascii(text: str) -> str:
    """The characters of ``text`` that are not ASCII, in order.

    Through UTF-8, where every byte of a non-ASCII character is 0x80 or above: the byte
    deletion is a C table loop, twice as fast as a regex substitution on such text.
    """
    raw = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    return raw.decode("utf-8", "surrogatepass")


def _fold(text: str) -> NormalizedText:
    out: list[str] = []
    res = NormalizedText(text, "")
    norm_starts, orig_starts, identity = res._norm_starts, res._orig_starts, res._identity
    npos = 0
    last = 0  # original offset up to which text was copied
    inv = res.invisible

    def ident(upto: int) -> None:
        nonlocal npos, last
        if upto > last:
            if not (
                identity and identity[-1] and orig_starts[-1] + (npos - norm_starts[-1]) == last
            ):
                norm_starts.append(npos)
                orig_starts.append(last)
                identity.append(True)
            out.append(text[last:upto])
            npos += upto - last
            last = upto

    for s, e in non_ascii_runs(text):
        ident(s)
        prev_tag = False
        for i in range(s, e):
            c = text[i]
            cls = _invisible_class(c)
            if cls is not None:
                if inv and inv[-1][1] == i and inv[-1][2] == cls:
                    inv[-1] = (inv[-1][0], i + 1, cls)
                else:
                    inv.append((i, i + 1, cls))
                folded = ""
                if cls == INV_TAG and 0xE0020 <= ord(c) <= 0xE007E:
                    # Decode smuggled ASCII, set off by spaces so word boundaries still work.
                    folded = ("" if prev_tag else " ") + chr(ord(c) - 0xE0000)
                    prev_tag = True
                elif prev_tag and cls != INV_TAG:
                    prev_tag = False
            else:
                if prev_tag:
                    prev_tag = False
                folded = _FOLD_CACHE.get(c)  # type: ignore[assignment]
                if folded is None:
                    folded = _fold_char(c)
                    _FOLD_CACHE[c] = folded
                if folded == c:
                    if len(_PLAIN) >= _PLAIN_MAX:
                        _PLAIN.clear()
                    _PLAIN.add(c)
                    continue  # unchanged character: stays in the pending identity copy
                if c in _CONFUSABLES:
                    res.confusables.append(i)
            ident(i)
            if folded:
                norm_starts.append(npos)
                orig_starts.append(i)
                identity.append(False)
                out.append(folded)
                npos += len(folded)
            last = i + 1
            if prev_tag and (i + 1 == e or _invisible_class(text[i + 1]) != INV_TAG):
                # Close a decoded tag run with a space mapped to its last character.
                norm_starts.append(npos)
                orig_starts.append(i)
                identity.append(False)
                out.append(" ")
                npos += 1
                prev_tag = False
    ident(len(text))
    res.text = "".join(out)
    if res.text == text and not inv:
        res._norm_starts.clear()
        res._orig_starts.clear()
        res._identity.clear()
        res.text = text
    return res
