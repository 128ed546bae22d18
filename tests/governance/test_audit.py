"""The audit chain: appends, verification, tampering by raw SQL, concurrent writers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from finegate.governance import (
    GENESIS,
    LOCAL_ADMIN,
    append_event,
    audit_event,
    list_events,
    state_hash,
    verify_chain,
    write_transaction,
)
from finegate.store import Store


def _fill(store: Store, n: int = 5) -> None:
    for i in range(1, n + 1):
        audit_event(
            store,
            LOCAL_ADMIN,
            "test.change",
            "thing",
            f"t{i}",
            before={"v": i - 1},
            after={"v": i},
            details={"i": i, "note": "é ✓"},
        )


def _sql(store: Store, *statements: str) -> None:
    with store.engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))


def test_events_are_chained_and_verify(store: Store) -> None:
    _fill(store)
    events = list_events(store)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert events[2].before_hash == state_hash({"v": 2})
    assert events[2].after_hash == state_hash({"v": 3})
    assert events[2].details == {"i": 3, "note": "é ✓"}
    report = verify_chain(store)
    assert report.ok and report.events == 5 and report.head_seq == 5
    assert report.head_hash == events[-1].hash
    assert [e.object_id for e in list_events(store, limit=2)] == ["t4", "t5"]
    assert [e.seq for e in list_events(store, object_id="t3")] == [3]


def test_modified_event_is_named(store: Store) -> None:
    _fill(store)
    _sql(store, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    report = verify_chain(store)
    assert not report.ok
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "modified")]
    assert "event 3" in report.problems[0].message


def test_modified_details_json_is_detected(store: Store) -> None:
    _fill(store)
    _sql(store, """UPDATE audit_events SET details = '{"i": 99, "note": "x"}' WHERE seq = 2""")
    assert [(p.seq, p.kind) for p in verify_chain(store).problems] == [(2, "modified")]


def test_deleted_event_is_named(store: Store) -> None:
    _fill(store)
    _sql(store, "DELETE FROM audit_events WHERE seq = 3")
    problems = verify_chain(store).problems
    assert [(p.seq, p.kind) for p in problems] == [(3, "deleted")]
    assert "3 deleted" in problems[0].message


def test_deleted_tail_is_caught_by_the_head(store: Store) -> None:
    _fill(store)
    _sql(store, "DELETE FROM audit_events WHERE seq >= 4")
    problems = verify_chain(store).problems
    assert [(p.seq, p.kind) for p in problems] == [(4, "deleted")]
    assert "4-5" in problems[0].message
    # The next append keeps numbering after the head, so the gap stays visible.
    audit_event(store, LOCAL_ADMIN, "test.change", "thing", "t6")
    assert [(p.seq, p.kind) for p in verify_chain(store).problems] == [(4, "deleted")]


def test_rewritten_head_is_caught_by_an_external_anchor(store: Store) -> None:
    _fill(store)
    anchor = verify_chain(store).head_hash
    last3 = list_events(store)[2]
    _sql(
        store,
        "DELETE FROM audit_events WHERE seq >= 4",
        f"UPDATE audit_head SET seq = 3, hash = '{last3.hash}'",
    )
    assert verify_chain(store).ok  # indistinguishable from the inside...
    report = verify_chain(store, expect_head=anchor)
    assert [p.kind for p in report.problems] == ["head"]  # ...but not against the anchor


def test_reordered_events_are_named(store: Store) -> None:
    _fill(store)
    _sql(
        store,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = -1",
    )
    problems = verify_chain(store).problems
    assert [(p.seq, p.kind) for p in problems] == [(2, "reordered"), (4, "reordered")]
    assert "recorded as seq 4" in problems[0].message


def test_event_commits_with_its_change_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError), write_transaction(store) as s:
        append_event(s, LOCAL_ADMIN, "test.change", "thing", "x")
        raise RuntimeError("the change failed")
    assert list_events(store) == []
    assert verify_chain(store).ok


def test_concurrent_appends_never_fork_the_chain(store: Store) -> None:
    threads, per_thread, errors = 6, 8, []

    def worker(k: int) -> None:
        try:
            for i in range(per_thread):
                audit_event(store, f"worker{k}", "test.concurrent", "thing", f"{k}-{i}")
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    events = list_events(store)
    assert [e.seq for e in events] == list(range(1, threads * per_thread + 1))
    report = verify_chain(store)
    assert report.ok, report.problems


def test_cli_verify_exits_1_and_names_the_event(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from finegate.cli.main import app
    from finegate.store.db import reset_default_store

    monkeypatch.setenv("FINEGATE_DB", store.url)
    reset_default_store()
    _fill(store, 3)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "audit chain OK" in ok.output
    log = runner.invoke(app, ["audit", "log", "--json"])
    assert log.exit_code == 0 and len(log.output.strip().splitlines()) == 3
    _sql(store, "UPDATE audit_events SET object_id = 'other' WHERE seq = 2")
    bad = runner.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "seq 2 [modified]" in bad.output
    reset_default_store()
