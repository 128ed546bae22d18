"""Model URIs select backends.

Schemes: ``mock:NAME``, ``hf:PATH|embedded[+adapter:PATH]``, ``openai:BASE_URL#MODEL`` (and
later ``registry:NAME@VERSION``).

A backend registers a factory under ``("backend", SCHEME)``; the factory receives the part
after the first colon and a :class:`BackendOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finegate.errors import ConfigError
from finegate.models.types import ModelBackend
from finegate.plugins import lookup, names


@dataclass(frozen=True)
class BackendOptions:
    """Settings shared by backends; each backend reads the ones that apply to it.

    Attributes:
        concurrency: Maximum requests in flight (HTTP backends).
        timeout_s: Per-request timeout in seconds (HTTP backends).
        max_retries: Retries on 429/5xx/connection errors (HTTP backends).
        api_key_env: Name of the environment variable holding the API key (never the key).
        batch_size: Largest batch a local backend runs at once.
        device: ``auto``, ``cpu`` or ``cuda`` (local backends).
        dtype: ``auto``, ``float32`` or ``bfloat16`` (local backends).
        extra: Backend-specific settings.
    """

    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 4
    api_key_env: str | None = "OPENAI_API_KEY"
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


BackendFactory = Callable[[str, BackendOptions], ModelBackend]


def split_uri(uri: str) -> tuple[str, str]:
    """Split ``SCHEME:REST``; raise a clear error when there is no scheme."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme:
        raise ConfigError(
            f"model URI {uri!r} has no scheme",
            hint="use mock:NAME, hf:embedded, hf:PATH or openai:BASE_URL#MODEL",
        )
    return scheme, rest


def load_backend(uri: str, options: BackendOptions | None = None) -> ModelBackend:
    """Build the backend a URI names.

    Raises:
        ConfigError: for an unknown scheme or a malformed URI.
        ModelError: when the model cannot be loaded or reached.
    """
    scheme, rest = split_uri(uri)
    try:
        factory: BackendFactory = lookup("backend", scheme)
    except ConfigError:
        known = ", ".join(f"{s}:" for s in names("backend"))
        raise ConfigError(
            f"unknown model URI scheme {scheme!r} in {uri!r}", hint=f"known schemes: {known}"
        ) from None
    return factory(rest, options or BackendOptions())
