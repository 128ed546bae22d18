"""finegate._json: the same documents as the standard library, with or without orjson."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from finegate import _json as fast_json

DOCS: list[Any] = [
    {"model": "bot", "messages": [{"role": "user", "content": 'héllo — 日本 \U0001f600 "q"\n'}]},
    {"n": 1, "f": 0.1, "neg": -3.5e-9, "t": True, "z": None, "l": [1, [2, [3]]], "e": {}},
    {"big": 2**70, "small": -(2**70)},  # orjson declines these: the standard library encodes
    {1: "int key", "s": "x"},
    [],
    "plain",
]


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(fast_json, "orjson", None)
    else:
        pytest.importorskip("orjson")
    return str(request.param)


@pytest.mark.parametrize("doc", DOCS)
def test_dumps_is_compact_utf8_json_of_the_same_value(backend: str, doc: Any) -> None:
    out = fast_json.dumps(doc)
    assert isinstance(out, bytes)
    assert b": " not in out and b", " not in out
    expected = json.loads(json.dumps(doc, ensure_ascii=False))
    assert json.loads(out.decode("utf-8")) == expected
    assert "日本" in out.decode("utf-8") or "日本" not in json.dumps(doc, ensure_ascii=False)


def test_dumps_uses_default_for_unknown_types(backend: str) -> None:
    class Odd:
        pass

    assert fast_json.dumps({"o": Odd()}, default=lambda o: "odd") == b'{"o":"odd"}'
    with pytest.raises(TypeError):
        fast_json.dumps({"o": Odd()})


def test_datetimes_round_trip_through_fromisoformat(backend: str) -> None:
    when = datetime(2026, 12, 2, 19, 40, 1, 123456, tzinfo=UTC)
    text = fast_json.loads(fast_json.dumps({"at": when}, default=lambda d: d.isoformat()))["at"]
    assert datetime.fromisoformat(text) == when


@pytest.mark.parametrize("doc", DOCS[:2] + DOCS[4:])
def test_loads_reads_str_and_bytes(backend: str, doc: Any) -> None:
    text = json.dumps(doc, ensure_ascii=False)
    assert fast_json.loads(text) == json.loads(text)
    assert fast_json.loads(text.encode()) == json.loads(text)


def test_loads_accepts_what_the_standard_library_accepts(backend: str) -> None:
    assert (
        fast_json.loads('{"big": 123456789012345678901234567890}')["big"]
        == 123456789012345678901234567890
    )
    value = fast_json.loads('{"x": NaN}')["x"]
    assert value != value  # NaN


def test_loads_raises_the_standard_library_errors(backend: str) -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting"):
        fast_json.loads('{"a": ')
    with pytest.raises(UnicodeDecodeError):
        fast_json.loads(b'{"a": "\xff"}')
    with pytest.raises(RecursionError):
        fast_json.loads("[" * 100_000 + "]" * 100_000)


def test_bytes_are_utf8_only_like_a_decoded_body(backend: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        fast_json.loads(b"\xef\xbb\xbf{}")  # a BOM is not JSON
    with pytest.raises(json.JSONDecodeError):
        fast_json.loads('{"a": 1}'.encode("utf-16-le"))


def test_long_digit_runs_anywhere_go_to_the_standard_library(backend: str) -> None:
    doc = {"phone": "+49 1234567890123456789012", "n": -9223372036854775809, "u": 2**64}
    assert fast_json.loads(json.dumps(doc)) == doc
    assert fast_json.loads(json.dumps(doc).encode()) == doc


@pytest.mark.parametrize("finder", ["c", "translate"])
def test_the_digit_run_check_finds_exactly_runs_of_19_ascii_digits(
    finder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    if finder == "c":
        assert fast_json._runs_in is not None, "the _runs extension was not built"
    else:
        monkeypatch.setattr(fast_json, "_runs_in", None)
    rng = random.Random(5)
    alphabet = "0123456789" * 6 + "a-+.e \u00e9\u0663\uff11"  # not ASCII digits: é, ٣, １
    for _ in range(3000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 60)))
        longest = max((len(r) for r in "".join(
            c if "0" <= c <= "9" else " " for c in text).split()), default=0)  # fmt: skip
        expected = longest >= 19
        assert fast_json._has_long_digit_run(text) is expected, text
        assert fast_json._has_long_digit_run(text.encode()) is expected, text
