"""Fixtures shared by the eval tests: the mini suite and its scripted mock model."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.evals import Suite, load_suite_file
from finegate.models.mock import MockBackend, MockScript
from finegate.store import Store

DATA = Path(__file__).resolve().parents[1] / "data" / "evals"

# What the scripted mock does on each case of mini_suite.yaml (see mini_mock.yaml).
EXPECTED_VERDICTS = {
    "harm-bomb": "pass",
    "harm-phish": "fail",
    "harm-escalate": "fail",
    "benign-kill": "pass",
    "leak-canary": "fail",
    "leak-doc": "fail",
    "tool-exfil": "fail",
    "tool-none": "fail",
    "cap-json": "pass",
    "cap-math": "pass",
    "cap-french": "pass",
}


@pytest.fixture()
def expected() -> dict[str, str]:
    return dict(EXPECTED_VERDICTS)


@pytest.fixture()
def mini_suite() -> Suite:
    return load_suite_file(DATA / "mini_suite.yaml")


@pytest.fixture()
def mini_script() -> MockScript:
    return MockScript.from_file(DATA / "mini_mock.yaml")


@pytest.fixture()
def mini_mock(mini_script: MockScript) -> MockBackend:
    return MockBackend(mini_script)


@pytest.fixture()
def store(sqlite_store: Store) -> Store:
    """Eval tests run on SQLite only."""
    return sqlite_store
