"""Canary and system-prompt leakage in model outputs.

Configured per deployment or per evaluation case: canary strings planted in a system prompt or
a document, and the system prompt itself. A leak is reported when an output contains a canary
verbatim or lightly transformed (case, spacing/punctuation between letters, reversed, base64,
hex, rot13), or a run of words copied from the system prompt.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Sequence

from finegate.detect._base import RuleDetector
from finegate.detect._normalize import NormalizedText
from finegate.detect._types import Channel, Finding, Severity

_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{8,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){4,}")
_WORDS = re.compile(r"[^\W_]+")


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
        self.min_words = max(3, min_words)
        self._prompt_words: list[str] = []
        self._grams: set[tuple[str, ...]] = set()
        self._n = 0
        if system_prompt:
            self._prompt_words = [w.lower() for w in _WORDS.findall(system_prompt)]
            n = min(self.min_words, len(self._prompt_words))
            self._n = n
            self._grams = {
                tuple(self._prompt_words[i : i + n]) for i in range(len(self._prompt_words) - n + 1)
            }

    def extra(self, norm: NormalizedText, channel: Channel) -> list[Finding]:  # noqa: D102
        out: list[Finding] = []
        if self.canaries:
            out.extend(self._canaries(norm))
        if self._grams:
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

    def _canaries(self, norm: NormalizedText) -> list[Finding]:
        text = norm.text
        low = text.lower()
        out: list[Finding] = []
        for i, core in enumerate(self._cores):
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
            rot = self._rot13[i]
            if rot != core:
                start = low.find(rot)
                while start >= 0:
                    out.append(self._hit(norm, start, start + len(rot), i, "rot13"))
                    start = low.find(rot, start + 1)
        for m in _B64_RUN.finditer(text):
            blob = m.group(0)
            decoded = ""
            for dec in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded = dec(blob + "=" * (-len(blob) % 4)).decode("utf-8", "ignore")
                    break
                except (binascii.Error, ValueError):
                    continue
            flat = re.sub(r"[\W_]", "", decoded).lower()
            for i, core in enumerate(self._cores):
                if core in flat:
                    out.append(self._hit(norm, m.start(), m.end(), i, "base64"))
        for m in _HEX_RUN.finditer(text):
            flat = re.sub(r"[\W_]", "", bytes.fromhex(m.group(0)).decode("utf-8", "ignore"))
            for i, core in enumerate(self._cores):
                if core in flat.lower():
                    out.append(self._hit(norm, m.start(), m.end(), i, "hex"))
        return out

    def _prompt(self, norm: NormalizedText) -> list[Finding]:
        words = [(m.group(0).lower(), m.start(), m.end()) for m in _WORDS.finditer(norm.text)]
        n = self._n
        covered = [False] * len(words)
        for i in range(len(words) - n + 1):
            if tuple(w for w, _, _ in words[i : i + n]) in self._grams:
                for j in range(i, i + n):
                    covered[j] = True
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
                os_, oe = norm.to_original(words[i][1], words[j - 1][2])
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
