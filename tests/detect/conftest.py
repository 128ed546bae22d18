from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def accuracy_bench() -> ModuleType:
    """The accuracy benchmark module (its evaluate() is what CI floors are asserted on)."""
    path = ROOT / "benchmarks" / "bench_detect_accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_detect_accuracy", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
