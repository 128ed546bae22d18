"""The store runs the same migrations and behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from finegate.errors import StoreError
from finegate.store import Base, Store, count_calls, current_revision, find_cached, record_calls


def test_migrations_reach_head_and_match_models(store: Store) -> None:
    assert current_revision(store.engine) == "0008_monitor"
    tables = set(inspect(store.engine).get_table_names())
    assert {"runs", "model_calls", "artifacts", "vault_entries"} <= tables
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_reopening_is_idempotent(store: Store, tmp_path: Path) -> None:
    again = Store(store.url, home=tmp_path / "home")
    assert current_revision(again.engine) == "0008_monitor"
    again.close()


def test_run_lifecycle(store: Store) -> None:
    rid = store.start_run("eval", model_uri="mock:echo", config={"suite": "x"})
    run = store.get_run(rid)
    assert run is not None and run.status == "running" and run.config == {"suite": "x"}
    store.finish_run(rid, status="done", summary={"cases": 3})
    run = store.get_run(rid)
    assert run is not None and run.status == "done" and run.summary == {"cases": 3}
    assert run.finished_at is not None
    assert [r.id for r in store.list_runs(kind="eval")] == [rid]
    with pytest.raises(StoreError):
        store.finish_run("no-such-run")


def test_call_records_and_cache_lookup(store: Store) -> None:
    rid = store.start_run("eval")
    rows = [
        {
            "run_id": rid,
            "model_uri": "mock:echo",
            "model_hash": "m1",
            "request_hash": "r1",
            "request": {"q": 1},
            "response": {"text": "one"},
            "latency_s": 0.1,
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "error": None,
        },
        {
            "run_id": rid,
            "model_uri": "mock:echo",
            "model_hash": "m1",
            "request_hash": "r2",
            "request": {"q": 2},
            "response": {"text": ""},
            "latency_s": 0.1,
            "prompt_tokens": 3,
            "completion_tokens": 0,
            "error": "boom",
        },
    ]
    record_calls(store, rows)
    assert count_calls(store, run_id=rid) == 2
    found = find_cached(store, "m1", ["r1", "r2", "r3"])
    # Failed calls are recorded but never served from the cache.
    assert found == {"r1": {"text": "one"}}
    assert find_cached(store, "other-model", ["r1"]) == {}


def test_artifacts_are_content_addressed(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("hello")
    sha = store.artifacts.put(f, kind="test")
    assert sha == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert store.artifacts.get(sha).read_text() == "hello"
    assert store.artifacts.put(f, kind="test") == sha  # idempotent
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "w.bin").write_bytes(b"\x00\x01")
    (d / "cfg.json").write_text("{}")
    dsha = store.artifacts.put(d, kind="adapter")
    assert store.artifacts.verify(dsha)
    info = store.artifacts.info(dsha)
    assert info is not None and info.kind == "adapter" and info.size == 4
    (store.artifacts.get(dsha) / "w.bin").write_bytes(b"tampered")
    assert not store.artifacts.verify(dsha)
    with pytest.raises(StoreError):
        store.artifacts.get("0" * 64)


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot migrate store"):
        Store("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", home=tmp_path)


def test_password_is_hidden_in_repr(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'x.db'}", home=tmp_path)
    assert "sqlite" in repr(s)
    s.close()
    with pytest.raises(StoreError) as info:
        Store("postgresql+psycopg://user:hunter2@127.0.0.1:1/none", home=tmp_path)
    assert "hunter2" not in str(info.value)
