"""Small validators shared by detectors (entropy, checksums, placeholder values)."""

from __future__ import annotations

import math
import re
from collections import Counter

_PLACEHOLDER = re.compile(
    r"(?i)^(?:x{3,}|\*{3,}|\.{3,}|-{3,}|_{3,}|#{3,}|…|<[^>]*>|\[[^\]]*\]|\{\{?[^}]*\}?\}"
    r"|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|%\(?[a-z_]*\)?s|none|null|nil|true|false|undefined"
    r"|changeme|change_?me|password\d?|passwd|pass|secret|token|redacted|hidden|masked|dummy"
    r"|test|testing|placeholder|todo|tbd|n/?a|env|required|optional|string|str|sample"
    r"|your[_\-]?[a-z_\-]*|my[_\-]?[a-z_\-]*|example[a-z_\-]*|foo|bar|foobar|abc123|123456)$"
)
_CODE_REF = re.compile(
    r"[()\[\]{}]|^\$|^(?:os|self|this|env|process|config|settings|cfg|conf|request|args"
    r"|opts|options|params|kwargs|vault|secrets?)\.|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$"
)


def entropy(s: str) -> float:
    """Shannon entropy of ``s`` in bits per character."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def is_placeholder(value: str) -> bool:
    """True for documentation placeholders (``<password>``, ``${DB_PASS}``, ``changeme``)."""
    v = value.strip().strip("\"'`")
    if not v or _PLACEHOLDER.match(v):
        return True
    low = v.lower()
    return "example" in low or "xxxx" in low or "****" in low or "placeholder" in low


def is_code_reference(value: str) -> bool:
    """True when an unquoted value looks like code (a call, attribute or variable)."""
    return bool(_CODE_REF.search(value))


def looks_random(token: str, *, min_distinct: int = 6) -> bool:
    """Reject obvious fakes: too few distinct characters or placeholder words."""
    low = token.lower()
    return len(set(token)) >= min_distinct and not any(
        w in low for w in ("example", "xxxx", "0000000", "sample", "dummy", "fake")
    )


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces."""
    s = iban[4:] + iban[:4]
    num = "".join(str(int(c, 36)) for c in s)
    return int(num) % 97 == 1
