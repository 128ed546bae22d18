r"""Where the non-ASCII characters of a text are, found at the speed of an ASCII encode.

Texts are mostly ASCII with a few other characters (curly quotes, dashes, an accent, an
emoji). Finding those with a regular expression (``[^\x00-\x7f]+``) costs the regex engine
one step per character: about 35 microseconds for 2 KB, as much as the rest of normalizing
the text. The ASCII encoder skips ASCII in C and calls an error handler once per run of
other characters, with the run's span: that handler is the search.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable

__all__ = ["ascii_view", "non_ascii_runs"]

_HANDLER = "finegate.non_ascii_runs"
_VIEW_HANDLER = "finegate.ascii_view"
_state = threading.local()  # handlers run in the encoding thread: per-thread results


def _note_run(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    _state.runs.append((exc.start, exc.end))
    return "", exc.end


def _view_run(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    one: Callable[[str], str] = _state.one
    return "".join(map(one, exc.object[exc.start : exc.end])), exc.end


codecs.register_error(_HANDLER, _note_run)
codecs.register_error(_VIEW_HANDLER, _view_run)


def non_ascii_runs(text: str) -> list[tuple[int, int]]:
    r"""The ``(start, end)`` spans of the maximal runs of non-ASCII characters, in order.

    The spans ``re.finditer(r"[^\x00-\x7f]+", text)`` finds (lone surrogates included).
    """
    if text.isascii():
        return []
    runs: list[tuple[int, int]] = []
    _state.runs = runs
    text.encode("ascii", _HANDLER)
    return runs


def ascii_view(text: str, one: Callable[[str], str]) -> bytes:
    """``text`` as ASCII bytes, each non-ASCII character replaced by ``one(character)``.

    ``one`` must return one ASCII character for each, so offsets stay those of ``text``.
    """
    if text.isascii():
        return text.encode("ascii")
    _state.one = one
    return text.encode("ascii", _VIEW_HANDLER)
