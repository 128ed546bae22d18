"""Shared fixtures: a FINEGATE_HOME per test, shared converted models, SQLite+PostgreSQL stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from finegate.store import Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Dequantizing the embedded model takes ~20 s; do it once per machine, not once per test.
os.environ.setdefault("FINEGATE_MODEL_CACHE", str(Path.home() / ".cache" / "finegate-test-models"))

POSTGRES_URL = os.environ.get(
    "FINEGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point FINEGATE_HOME at a fresh directory and forget any process-wide store."""
    from finegate.store.db import reset_default_store

    home = tmp_path / "finegate-home"
    monkeypatch.setenv("FINEGATE_HOME", str(home))
    monkeypatch.delenv("FINEGATE_DB", raising=False)
    reset_default_store()
    yield home
    reset_default_store()


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import sqlalchemy

    schema = f"fg_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store on a SQLite file, then on PostgreSQL (a fresh schema of `pg_url`)."""
    from finegate.store import Store

    url = (
        f"sqlite:///{tmp_path / 'fg.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    s = Store(url, home=tmp_path / "home")
    request.addfinalizer(s.close)
    return s


@pytest.fixture()
def store(db: Store) -> Store:
    """`db`, under the name most tests use; a package may define a `store` of its own."""
    return db


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A store on a SQLite file only (for tests that need no second backend)."""
    from finegate.store import Store

    s = Store(f"sqlite:///{tmp_path / 'fg.db'}", home=tmp_path / "home")
    yield s
    s.close()
