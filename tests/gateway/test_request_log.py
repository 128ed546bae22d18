"""The request-log writers: rows reach the store, a dying writer process loses nothing."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from finegate.gateway import request_log
from finegate.gateway.request_log import (
    ProcessLogWriter,
    ThreadLogWriter,
    make_log_writer,
)
from finegate.store import Store
from finegate.store.schema import GatewayRequestLog


def _row(i: int) -> dict[str, object]:
    return {
        "request_id": f"req-{i}", "key_id": "k1", "tier": "default", "model": "bot",
        "status": 200, "outcome": "ok", "messages": [{"role": "user", "content": f"hi {i} é"}],
        "output": f"answer {i}", "tool_calls": [], "decisions": [{"rule": "pii.email"}],
        "latency_ms": 1.5, "upstream_ms": 1.0, "prompt_tokens": 3, "completion_tokens": 2,
    }  # fmt: skip


# JSON fields travel to the writer process as JSON and are stored as JSON text: quotes,
# newlines, non-BMP characters, nesting and nulls must come back as they went in.
CALLS = [{"name": "lookup", "arguments": '{"q": "a\\nb \\"c\\""}', "blocked": False,
          "meta": {"emoji": "\U0001f600", "none": None, "n": [1, 2.5]}}]  # fmt: skip


def _stored(store: Store) -> list[GatewayRequestLog]:
    with store.session() as s:
        return list(s.scalars(select(GatewayRequestLog).order_by(GatewayRequestLog.id)))


def test_the_process_writer_stores_every_field_of_every_row(db: Store) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    async def go() -> ProcessLogWriter:
        writer = ProcessLogWriter(db, batch=7)
        for i in range(20):
            row = _row(i)
            if i == 0:
                row["created_at"] = when
                row["tool_calls"] = CALLS
            writer.add(row)
        await writer.aclose()
        return writer

    writer = asyncio.run(go())
    assert (writer.written, writer.dropped) == (20, 0)
    rows = _stored(db)
    assert [r.request_id for r in rows] == [f"req-{i}" for i in range(20)]
    first = rows[0]
    assert first.messages == [{"role": "user", "content": "hi 0 é"}]
    assert first.decisions == [{"rule": "pii.email"}]
    assert first.tool_calls == CALLS and rows[1].tool_calls == []
    assert (first.status, first.output, first.latency_ms, first.completion_tokens) == (
        200, "answer 0", 1.5, 2,
    )  # fmt: skip
    assert first.created_at.replace(tzinfo=UTC) == when


async def _two_batches(store: Store) -> ProcessLogWriter:
    """Rows 0-4 in one batch (flushed), then rows 5-7 (the writer must keep serving)."""
    writer = ProcessLogWriter(store)
    for i in range(5):
        writer.add(_row(i))
    await writer.flush()
    for i in range(5, 8):
        writer.add(_row(i))
    await writer.aclose()
    return writer


# First children that die without answering: before reading anything, or after committing
# their batch as the real writer does (its rows must not be stored again).
_DIES_AT_ONCE = "    sys.exit(3)\n"
_COMMITS_THEN_DIES = (
    "    from finegate.store.db import Store\n"
    "    store = Store(os.environ[rl._STORE_ENV], home=Path(os.environ[rl._HOME_ENV]),\n"
    "                  auto_migrate=False)\n"
    "    rows = []\n"
    "    for line in sys.stdin.buffer:\n"
    "        if not line.strip():\n"
    "            break\n"
    "        rows.append(rl.parse_row(line, rl._json_columns()))\n"
    "    rl._text_row_inserter(store)(rows)\n"
    "    os._exit(3)\n"
)  # fmt: skip


@pytest.mark.parametrize("first_child", [_DIES_AT_ONCE, _COMMITS_THEN_DIES],
                         ids=["dies-at-once", "commits-then-dies"])  # fmt: skip
def test_a_writer_process_that_dies_is_replaced_and_no_row_is_lost_or_doubled(
    db: Store, first_child: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    mark = tmp_path / "died-once"
    monkeypatch.setenv("FG_TEST_MARK", str(mark))
    monkeypatch.setattr(
        request_log, "_CHILD",
        "import os, sys\n"
        "from pathlib import Path\n"
        "from finegate.gateway import request_log as rl\n"
        "if not os.path.exists(mark := os.environ['FG_TEST_MARK']):\n"
        "    open(mark, 'w').close()\n"
        + first_child +
        "rl.child_main()\n",
    )  # fmt: skip

    with caplog.at_level(logging.ERROR, logger="finegate.gateway"):
        writer = asyncio.run(_two_batches(db))
    assert mark.exists() and "writer process exited; restarting (1)" in caplog.text
    assert (writer.written, writer.dropped) == (8, 0)
    assert [r.request_id for r in _stored(db)] == [f"req-{i}" for i in range(8)]


def test_a_writer_that_keeps_dying_drops_and_counts_the_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_log, "_CHILD", "import sys; sys.exit(3)")

    async def go() -> ProcessLogWriter:
        writer = ProcessLogWriter(store, restarts=2)
        for i in range(4):
            writer.add(_row(i))
        await writer.aclose()
        return writer

    writer = asyncio.run(go())
    assert (writer.written, writer.dropped) == (0, 4)
    assert _stored(store) == []


def test_a_batch_the_store_rejects_is_counted_and_later_batches_still_land(
    store: Store,
) -> None:

    async def go() -> ProcessLogWriter:
        writer = ProcessLogWriter(store)
        bad = _row(0)
        bad["status"] = None  # NOT NULL: the child's insert fails and it says so
        writer.add(bad)
        await writer.flush()
        writer.add(_row(1))
        await writer.aclose()
        return writer

    writer = asyncio.run(go())
    assert (writer.written, writer.dropped) == (1, 1)
    assert [r.request_id for r in _stored(store)] == ["req-1"]


def test_a_full_queue_drops_and_counts_rather_than_blocking(store: Store) -> None:
    writer = ThreadLogWriter(store, max_queue=3)
    for i in range(5):
        writer.add(_row(i))
    asyncio.run(writer.aclose())
    assert (writer.written, writer.dropped) == (3, 2)
    assert len(_stored(store)) == 3


def test_in_memory_sqlite_is_written_from_a_thread(store: Store, tmp_path: Path) -> None:
    memory = Store("sqlite:///:memory:", home=tmp_path / "m")
    on_disk = store
    assert isinstance(make_log_writer(memory), ThreadLogWriter)
    assert isinstance(make_log_writer(on_disk), ProcessLogWriter)
    assert isinstance(make_log_writer(on_disk, mode="thread"), ThreadLogWriter)

    async def go() -> None:
        writer = make_log_writer(memory)
        writer.add(_row(0))
        await writer.aclose()

    asyncio.run(go())
    assert [r.request_id for r in _stored(memory)] == ["req-0"]
    memory.close()
