"""A store on SQLite and on PostgreSQL for the governance tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fg.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = Store(url, home=tmp_path / "home")
    request.addfinalizer(s.close)
    return s


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'fg.db'}", home=tmp_path / "home")
    yield s
    s.close()
