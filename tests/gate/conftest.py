"""Fixtures for gate tests: a small suite and scripted mocks with known verdicts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finegate.evals import EvalConfig, Suite, load_suite_file, run_eval_sync
from finegate.models.mock import MockBackend, MockScript
from finegate.store import Store

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "gate_suite.yaml"


@pytest.fixture()
def suite() -> Suite:
    return load_suite_file(SUITE)


@pytest.fixture()
def store(isolated_home: Path) -> Iterator[Store]:
    from finegate.store.db import open_store

    yield open_store()  # the CLI opens the same store (FINEGATE_HOME)


def mock(name: str) -> MockBackend:
    """A scripted mock: ``safe``/``prefix`` from tests/gate/data, else a built-in name."""
    path = DATA / f"{name}_mock.yaml"
    if path.is_file():
        return MockBackend(MockScript.from_file(path))
    from finegate.models import load_backend

    backend = load_backend(f"mock:{name}")
    assert isinstance(backend, MockBackend)
    return backend


@pytest.fixture()
def run_mock(store: Store, suite: Suite) -> Callable[..., str]:
    def run(name: str, system_prefix: str | None = None, the_suite: Suite | None = None) -> str:
        result = run_eval_sync(
            mock(name),
            the_suite or suite,
            store=store,
            config=EvalConfig(system_prefix=system_prefix),
        )
        return result.run_id

    return run
