"""The one registry: built-ins and third parties register the same way."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import finegate
from finegate import plugins
from finegate.errors import ConfigError


def test_every_builtin_module_exists() -> None:
    for module in plugins.BUILTIN_MODULES:
        importlib.import_module(module)


def test_builtin_backends_registered() -> None:
    assert {"mock", "hf", "openai"} <= set(plugins.names("backend"))


def test_register_and_lookup_and_duplicates() -> None:
    @plugins.register("test-kind", "thing")
    class Thing:
        pass

    assert plugins.lookup("test-kind", "thing") is Thing
    with pytest.raises(ConfigError, match="duplicate"):
        plugins.register("test-kind", "thing")(object)
    with pytest.raises(ConfigError, match="unknown test-kind 'other'"):
        plugins.lookup("test-kind", "other")


def test_public_api_is_pinned() -> None:
    assert finegate.__all__ == ["FinegateError", "__version__"]
    import finegate.models as m
    import finegate.store as s

    assert "ModelBackend" in m.__all__ and "load_backend" in m.__all__
    assert "Store" in s.__all__


def test_import_and_help_stay_light() -> None:
    """`import finegate` and the CLI module must not import heavy libraries (speed goal)."""
    code = (
        "import sys, finegate, finegate.cli.main, finegate.models, finegate.store\n"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'peft', 'numpy')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
