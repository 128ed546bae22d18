"""Hidden text: invisible characters, homoglyphs and markup that hides content from a reader.

Invisible characters are found during normalization (they are removed from the folded text,
so other detectors see through them); this detector turns those runs into findings, skipping
legitimate uses: ZWJ inside emoji sequences, RTL marks in RTL text, emoji variation selectors,
subdivision-flag tag sequences.
"""

from __future__ import annotations

import re

from finegate.detect._base import RuleDetector
from finegate.detect._normalize import (
    INV_BIDI,
    INV_TAG,
    INV_VARIATION,
    INV_ZERO_WIDTH,
    NormalizedText,
)
from finegate.detect._rules import Rule
from finegate.detect._types import Channel, Finding, Severity

H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW
_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_WORD = re.compile(r"[^\W_]+")


def _ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class HiddenTextDetector(RuleDetector):
    """Hidden content.

    Kinds ``hidden.unicode_tags``, ``hidden.zero_width``,
    ``hidden.bidi_control``, ``hidden.variation_selectors``, ``hidden.homoglyph``,
    ``hidden.html_comment``, ``hidden.css_hidden``, ``hidden.markdown_comment``,
    ``hidden.markdown_trick``.
    """

    name = "hidden"

    def rules(self) -> list[Rule]:  # noqa: D102
        return [
            Rule(
                "hidden.html_comment",
                r"<!--[\s\S]{0,5000}?-->",
                M,
                "HTML comment",
                hs=r"<!--",
                literals=("<!--",),
            ),
            Rule(
                "hidden.css_hidden",
                r"<([a-z][a-z0-9]*)\b[^>]{0,300}?\bstyle\s*=\s*[\"'][^\"']{0,300}?(?:display\s*:"
                r"\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:\.0+)?(?:px|pt|em|rem|%)?"
                r"\s*(?:;|[\"'])|opacity\s*:\s*0(?:\.0+)?\s*(?:;|[\"'])|color\s*:\s*(?:#fff(?:fff)?"
                r"|white|transparent)\b|(?:left|top|text-indent)\s*:\s*-\d{3,}px|(?:height|width)"
                r"\s*:\s*0(?:px)?\s*;[^\"']*overflow\s*:\s*hidden)[^>]*>[^<]{0,2000}"
                r"|<([a-z][a-z0-9]*)\b[^>]{0,200}\shidden(?=[\s>=/])[^>]*>[^<]{0,2000}"
                r"|<font\b[^>]{0,100}color\s*=\s*[\"']?(?:white|#fff(?:fff)?)\b[^>]*>[^<]{0,2000}"
                r"|\\color\{white\}\{?[^}\n]{0,500}",
                M,
                "text hidden by CSS/HTML",
                flags=re.IGNORECASE,
                hs=r"<[a-z][^>]{0,300}(?:style|hidden|color)|\\color\{white\}",
                literals=("style", "hidden", "color"),
            ),
            Rule(
                "hidden.markdown_comment",
                r"^\[(?://|comment|_|hidden)\]:\s*(?:#|<>|\S+)\s*(?:\([^\n]*\)|\"[^\n]*\")[ \t]*$",
                M,
                "markdown comment (never rendered)",
                flags=re.MULTILINE | re.IGNORECASE,
                literals=("]:",),
                hs=r"^\[(?://|comment|_|hidden)\]:",
            ),
            Rule(
                "hidden.markdown_trick",
                r"!?\[[^\]\n]{0,300}\b(?:ignore|instructions?|assistant|system\s+prompt|you\s+"
                r"must|AI\s+model|language\s+model|LLM)\b[^\]\n]{0,300}\]\([^)\n]{0,500}\)"
                r"|\[[^\]\n]{1,200}\]\(\s*\S+\s+\"[^\"\n]{0,200}\b(?:ignore|instructions?"
                r"|assistant|you\s+must|system\s+prompt)\b[^\"\n]{0,200}\"\s*\)",
                M,
                "instructions hidden in link text, alt text or title",
                flags=re.IGNORECASE,
                literals=("](",),
                hs=r"\[[^\]\n]{0,300}(?:ignore|instruction|assistant|system"
                r"\s+prompt|you\s+must|AI\s+model|language\s+model|LLM)"
                r"|\]\(\s*\S+\s+\"",
            ),
            Rule(
                "hidden.markdown_trick",
                r"(?<!\!)\[\s*\]\((?:https?://)[^)\s]+\)",
                L,
                "link with empty text (invisible)",
                literals=("[]", "[ ]"),
                hs=r"\[\s*\]\(https?://",
            ),
        ]

    def extra(self, norm: NormalizedText, channel: Channel) -> list[Finding]:  # noqa: D102
        if not norm.invisible and not norm.confusables:
            return []
        text = norm.original
        out: list[Finding] = []
        for s, e, cls in norm.invisible:
            before = text[s - 1] if s > 0 else ""
            after = text[e] if e < len(text) else ""
            run = text[s:e]
            if cls == INV_TAG:
                if before == "\U0001f3f4" and run.endswith("\U000e007f"):
                    continue  # subdivision flag emoji (England, Scotland, Wales)
                decoded = "".join(
                    chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E
                )
                out.append(
                    Finding(
                        "hidden.unicode_tags",
                        s,
                        e,
                        H,
                        "invisible Unicode tag characters smuggling text",
                        self.name,
                        run,
                        {"decoded": decoded[:500]},
                    )
                )
            elif cls == INV_ZERO_WIDTH:
                if s == 0 and run == "\ufeff":
                    continue  # byte-order mark
                if run == "\u00ad" and before.isalpha() and after.isalpha():
                    continue  # a single soft hyphen is ordinary hyphenation
                if len(run) == 1 and not (_ascii_alnum(before) or _ascii_alnum(after)):
                    continue  # ZWJ in emoji, ZWNJ in Persian/Indic scripts
                out.append(
                    Finding(
                        "hidden.zero_width",
                        s,
                        e,
                        M,
                        f"{len(run)} zero-width character(s)",
                        self.name,
                        run,
                    )
                )
            elif cls == INV_BIDI:
                if not any(c in _OVERRIDES for c in run) and not (
                    _ascii_alnum(before) and _ascii_alnum(after)
                ):
                    continue  # LRM/RLM marks in mixed-direction text
                out.append(
                    Finding(
                        "hidden.bidi_control",
                        s,
                        e,
                        M,
                        "bidirectional control characters (text may render reordered)",
                        self.name,
                        run,
                    )
                )
            elif cls == INV_VARIATION:
                if len(run) >= 3 or any(ord(c) >= 0xE0100 for c in run):
                    out.append(
                        Finding(
                            "hidden.variation_selectors",
                            s,
                            e,
                            M,
                            f"{len(run)} variation selectors (byte smuggling)",
                            self.name,
                            run,
                        )
                    )
        if norm.confusables:
            seen: set[int] = set()
            for i in norm.confusables:
                if i in seen:
                    continue
                s = i
                while s > 0 and text[s - 1].isalnum():
                    s -= 1
                e = i
                while e < len(text) and text[e].isalnum():
                    e += 1
                word = text[s:e]
                seen.update(range(s, e))
                if any(c.isascii() and c.isalpha() for c in word):
                    out.append(
                        Finding(
                            "hidden.homoglyph",
                            s,
                            e,
                            M,
                            "word mixes Latin with look-alike letters",
                            self.name,
                            word,
                        )
                    )
        return out
