"""User-facing errors.

A `FinegateError` carries a one-line message naming what was wrong and what to do; the CLI
prints it and exits with code 2 (no traceback unless ``--debug``).
"""

from __future__ import annotations


class FinegateError(Exception):
    """An error caused by input or environment that the user can fix."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ConfigError(FinegateError):
    """Bad configuration: unknown URI scheme, invalid file, missing setting."""


class ModelError(FinegateError):
    """A model could not be loaded, reached or understood."""


class ModelUnavailableError(ModelError):
    """The model server could not be reached or kept failing after retries."""


class ModelAuthError(ModelError):
    """The model server rejected the credentials."""


class ModelResponseError(ModelError):
    """The model server answered something that is not a valid chat completion."""


class StoreError(FinegateError):
    """The store could not be opened, migrated or written."""


class NotFoundError(FinegateError):
    """A named thing (model version, principal, run, gate decision) does not exist."""


class PermissionDeniedError(FinegateError):
    """The acting principal may not do this, or a release rule forbids it (exit code 3)."""

    exit_code = 3


class GateRequiredError(PermissionDeniedError):
    """A promotion needs a passing gate decision on that exact model version (exit code 3)."""
