"""JSON on the serving hot paths: orjson when it is installed, the standard library otherwise.

The gateway encodes or decodes about five JSON documents of a few KB per request (the client's
body, the upstream request and answer, the client's answer, the request-log row); with the
standard library that was ~8% of its CPU per request, with orjson (installed with the
``serve`` extra) a tenth of that.

The results are those of the standard library: compact UTF-8 output (``ensure_ascii=False``,
no spaces), and whatever orjson declines (integers beyond 64 bits, ``NaN`` literals, a
``default`` it cannot satisfy) goes through the standard library, which then accepts it or
raises its usual error. orjson reads integers beyond 64 bits as floats, so a text with a run
of 19 or more digits anywhere is read by the standard library too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

try:
    import orjson
except ModuleNotFoundError:  # pragma: no cover - exercised where orjson is absent
    orjson = None  # type: ignore[assignment]


# Every ASCII digit becomes "0", so a run of 19 zeros afterwards is a run of 19 digits before:
# two C passes, a tenth of the time of a regular expression search. The `_runs` extension
# copies nothing and reads one byte in 19 until it meets a digit.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
_LONG_RUN = b"0" * 19
_DIGITS = bytes(48 <= b <= 57 for b in range(256))

_runs_in: Callable[[bytes, bytes, int], list[tuple[int, int]]] | None
try:
    from finegate._runs import runs as _runs_in
except ImportError:  # pragma: no cover - built without a C compiler
    _runs_in = None


def _has_long_digit_run(data: str | bytes) -> bool:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _runs_in is not None:
        return bool(_runs_in(raw, _DIGITS, 19))
    return _LONG_RUN in raw.translate(_DIGITS_TO_ZERO)


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``obj`` as compact UTF-8 JSON bytes (``json.dumps(..., ensure_ascii=False)``)."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=default, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass  # e.g. an integer beyond 64 bits: the standard library handles it
    return json.dumps(obj, default=default, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: str | bytes) -> Any:
    """Parse JSON text (bytes must be UTF-8).

    Raises:
        json.JSONDecodeError: Not JSON (the standard library's error and message).
        UnicodeDecodeError: Bytes that are not UTF-8.
        RecursionError: Nested too deeply for the standard library.
    """
    if orjson is not None and not _has_long_digit_run(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # NaN, bad bytes...: the standard library decides and explains
    # Bytes are UTF-8 only (json.loads would also guess UTF-16/32 and skip a BOM).
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
