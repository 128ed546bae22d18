"""Lazy re-exports for package ``__init__`` modules (keeps ``import finegate`` fast).

A package lists ``name -> defining module`` and gets a module-level ``__getattr__`` that
imports the defining module on first use and caches the value in the package namespace, so
``from finegate.evals import run_eval`` works without importing pydantic, scipy or torch at
package import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` resolving ``table``'s names into ``namespace``.

    Args:
        package: The package's ``__name__`` (for the error message).
        table: Public name -> module that defines it.
        namespace: The package's ``globals()``; resolved values are cached there.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
