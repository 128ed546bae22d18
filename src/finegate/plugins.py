"""The one plugin registry.

Every extension kind (model backends, detectors, scorers, suites, ...) registers here through a
decorator. Built-ins use exactly the same mechanism as third parties: a package exposes a
callable in the ``finegate.plugins`` entry-point group, which is called once (lazily) and
registers its extensions by importing modules that use the decorators.

Example:
    >>> from finegate.plugins import register, lookup
    >>> @register("detector", "my-detector")
    ... class MyDetector: ...
    >>> lookup("detector", "my-detector") is MyDetector
    True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from finegate.errors import ConfigError

T = TypeVar("T")

ENTRY_POINT_GROUP = "finegate.plugins"

_REGISTRY: dict[str, dict[str, Any]] = {}
_loaded = False

# Modules whose import registers the built-in extensions. Listed here (not discovered by
# scanning) so that import stays lazy and predictable.
BUILTIN_MODULES: tuple[str, ...] = (
    "finegate.models.mock",
    "finegate.models.hf",
    "finegate.models.openai_backend",
    "finegate.detect.detectors",
    "finegate.registry.backend",
    "finegate.evals.scorers",
    "finegate.evals.judge",
    "finegate.redteam.mutators",
)


def register(kind: str, name: str, *, replace: bool = False) -> Callable[[T], T]:
    """Register ``obj`` under ``(kind, name)``; use as a decorator.

    Args:
        kind: The extension kind, e.g. ``"backend"`` or ``"detector"``.
        name: The public name users select it by.
        replace: Allow replacing an existing registration (for tests and overrides).

    Returns:
        A decorator returning its argument unchanged.
    """

    def decorator(obj: T) -> T:
        bucket = _REGISTRY.setdefault(kind, {})
        if name in bucket and bucket[name] is not obj and not replace:
            raise ConfigError(f"duplicate {kind} registration: {name!r}")
        bucket[name] = obj
        return obj

    return decorator


def register_builtins() -> None:
    """Import the built-in modules so their decorators run (the built-ins' entry point)."""
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A built-in whose own module is missing is a packaging bug; a missing optional
            # dependency (torch, fastapi) only matters when that extension is used.
            # A test pins that every built-in module exists, so skipping here hides nothing.
            if exc.name == module:
                continue
            if exc.name and exc.name.startswith("finegate"):
                raise


def load_plugins() -> None:
    """Load every ``finegate.plugins`` entry point once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    register_builtins()
    # importlib.metadata costs ~40 ms; import it only when plugins are first needed.
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value.startswith("finegate.plugins:"):
            continue
        hook = ep.load()
        if callable(hook):
            hook()


def lookup(kind: str, name: str) -> Any:
    """Return the extension registered as ``(kind, name)``.

    Raises:
        ConfigError: if nothing is registered under that name.
    """
    load_plugins()
    bucket = _REGISTRY.get(kind, {})
    if name not in bucket:
        known = ", ".join(sorted(bucket)) or "none"
        raise ConfigError(f"unknown {kind} {name!r}", hint=f"known: {known}")
    return bucket[name]


def names(kind: str) -> list[str]:
    """Return the sorted names registered for ``kind``."""
    load_plugins()
    return sorted(_REGISTRY.get(kind, {}))


def registered(kind: str) -> dict[str, Any]:
    """Return a copy of the registrations for ``kind``."""
    load_plugins()
    return dict(_REGISTRY.get(kind, {}))
