"""The leak prefilter's run finder in C (`finegate._runs`) against its specification."""

from __future__ import annotations

import random

import pytest

from finegate.detect import _leakage


def reference_runs(data: bytes, table: bytes, shortest: int) -> list[tuple[int, int]]:
    """What the C function computes: maximal runs of table bytes, at least shortest long."""
    out, start = [], 0
    for i, b in enumerate([*data, None]):
        if b is None or not table[b]:
            if i - start >= shortest:
                out.append((start, i))
            start = i + 1
    return out


@pytest.fixture(scope="module")
def runs() -> object:
    # Built by `make setup` (pip install -e .); the build is optional for users, not here.
    assert _leakage._runs_in is not None, "the _runs extension was not built"
    return _leakage._runs_in


def test_the_c_runs_are_their_python_specification(runs: object) -> None:
    rng = random.Random(3)
    alphabets = [b"ab ", b"aZ09+/_-= \n", bytes(range(256)), b"deadbeef xyz"]
    tables = [_leakage._B64_TABLE, _leakage._HEX_TABLE, bytes([1]) * 256, bytes(256)]
    for _ in range(6000):
        data = bytes(rng.choices(rng.choice(alphabets), k=rng.choice([0, 1, 5, 19, 40, 300])))
        table, shortest = rng.choice(tables), rng.choice([1, 2, 3, 5, 8, 16, 19, 500])
        assert runs(data, table, shortest) == reference_runs(data, table, shortest)  # type: ignore[operator]


def test_runs_are_found_wherever_they_fall_against_the_sampled_bytes(runs: object) -> None:
    """The C function samples every `shortest`-th byte: runs at every offset and length."""
    table = _leakage._HEX_TABLE
    for shortest in (1, 2, 3, 7, 19):
        for start in range(0, 2 * shortest + 2):
            for length in range(0, 3 * shortest + 2):
                for gap in (1, 2, shortest):
                    data = b"x" * start + b"a" * length + b"x" * gap + b"b" * shortest + b"x"
                    assert runs(data, table, shortest) == reference_runs(data, table, shortest)  # type: ignore[operator]


def test_the_run_tables_hold_the_base64_and_hex_alphabets() -> None:
    letters = bytes(range(ord("A"), ord("Z") + 1))
    b64 = letters + letters.lower() + b"0123456789+/_-"  # standard and URL-safe
    hexes = b"0123456789abcdefABCDEF"
    assert {b for b in range(256) if _leakage._B64_TABLE[b]} == set(b64)
    assert {b for b in range(256) if _leakage._HEX_TABLE[b]} == set(hexes)


def test_bad_arguments_are_refused(runs: object) -> None:
    with pytest.raises(ValueError, match="256 bytes"):
        runs(b"abc", b"x", 2)  # type: ignore[operator]
    with pytest.raises(ValueError, match="at least 1"):
        runs(b"abc", bytes(256), 0)  # type: ignore[operator]
    with pytest.raises(TypeError):
        runs("abc", bytes(256), 2)  # type: ignore[operator]
