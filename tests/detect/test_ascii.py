"""`non_ascii_runs` and `ascii_view`: the same spans as the regex they replace, in any thread."""

from __future__ import annotations

import random
import re
import threading

from finegate.detect._ascii import ascii_view, non_ascii_runs

_RUNS = re.compile(r"[^\x00-\x7f]+")
# ASCII, Latin-1, BMP punctuation and CJK, astral (emoji), lone surrogates.
_ALPHABET = ["a", " ", "\n", "\x00", "\x7f", "\x80", "é", "\u2019", "\u4e2d", "\U0001f600",
             "\ud800", "\udfff"]  # fmt: skip


def _texts(seed: int, n: int = 500) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_ALPHABET, k=rng.randint(0, 40))) for _ in range(n)]


def test_runs_are_the_regex_spans_and_the_view_maps_each_character() -> None:
    for text in _texts(3):
        assert non_ascii_runs(text) == [m.span() for m in _RUNS.finditer(text)], repr(text)
        view = ascii_view(text, lambda c: "#" if c == "\u2019" else " ")
        expected = "".join(c if c.isascii() else ("#" if c == "\u2019" else " ") for c in text)
        assert view == expected.encode("ascii") and len(view) == len(text)


def test_threads_get_their_own_results() -> None:
    failures: list[str] = []

    def work(seed: int) -> None:
        for text in _texts(seed, 2000):
            if non_ascii_runs(text) != [m.span() for m in _RUNS.finditer(text)]:
                failures.append(text)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
