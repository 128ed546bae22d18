"""Rule finders (faster exact equivalents of ``finditer``) return exactly its matches."""

from __future__ import annotations

import random

import pytest

from finegate.detect import Scanner
from finegate.detect._pii import _email_matches

ALPHABET = "ab.@-_%+ Z9\n@.é"
PIECES = [
    "jane.roe@acme-mail.com", "x@y@z.com", "@@", "a" * 70 + "@b.co", "@x.", "user@",
    "-@-.com", "a.b@c-d.e-f.gh", "__@a.bc", "é@x.com", "mail:u@h.io;", "p@q.r.st.uv",
]  # fmt: skip


def _texts() -> list[str]:
    rnd = random.Random(7)
    out = []
    for _ in range(3000):
        parts = [
            rnd.choice(PIECES) if rnd.random() < 0.3 else "".join(
                rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 12))
            )
            for _ in range(rnd.randint(1, 8))
        ]  # fmt: skip
        out.append("".join(parts))
    return out


def _spans(ms: list[object]) -> list[tuple[int, int, str, str]]:
    return [(m.start(), m.end(), m.group(1), m.group(2)) for m in ms]  # type: ignore[attr-defined]


def test_email_finder_equals_finditer() -> None:
    rule = next(r for r in Scanner()._ruleset.rules if r.kind == "pii.email")
    assert rule.finder is _email_matches
    texts = _texts()
    found = 0
    for text in texts:
        expected = list(rule.regex.finditer(text))
        got = _email_matches(rule.regex, text)
        assert _spans(got) == _spans(expected), text
        found += len(expected)
    assert found > 1000  # the corpus exercises matches, not only misses


@pytest.mark.parametrize(
    "text", ["", "no at sign", "@", "a@b.cd", "a" * 65 + "@b.cd", "x" * 63 + "@b.cd e@f.gh"]
)
def test_email_finder_edges(text: str) -> None:
    rule = next(r for r in Scanner()._ruleset.rules if r.kind == "pii.email")
    assert _spans(_email_matches(rule.regex, text)) == _spans(list(rule.regex.finditer(text)))
