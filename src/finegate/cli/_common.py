"""Helpers shared by command modules: consoles, progress, input checks, backend opening."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from finegate.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from finegate.models.recording import RecordingBackend
    from finegate.models.uri import BackendOptions


def console(stderr: bool = False) -> Console:
    """Return a rich console (stderr for progress and diagnostics)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@contextmanager
def status(message: str) -> Iterator[None]:
    """Show a spinner on stderr while a slow step runs (silent when not a terminal)."""
    con = console(stderr=True)
    if not con.is_terminal:
        yield
        return
    with con.status(message):
        yield


def check_text(text: str, what: str = "prompt") -> str:
    """Reject text that cannot be encoded as UTF-8 (lone surrogates from undecodable bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{what} is not valid UTF-8 (bad bytes at position {exc.start})",
            hint="re-encode the input as UTF-8",
        ) from None
    return text


def open_backend(
    uri: str,
    *,
    no_cache: bool = False,
    run_id: str | None = None,
    options: BackendOptions | None = None,
) -> RecordingBackend:
    """Load the backend a URI names, wrapped so every call is recorded (and cached)."""
    from finegate.models.recording import RecordingBackend
    from finegate.models.uri import load_backend
    from finegate.store.db import open_store

    with status(f"Loading {uri} …"):
        backend = load_backend(uri, options)
    return RecordingBackend(backend, open_store(), use_cache=not no_cache, run_id=run_id)
