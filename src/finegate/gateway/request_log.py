"""Writers of the gateway's request log: rows are queued on the hot path, written in batches.

Two writers share one queue discipline (bounded; a full queue drops and counts rows rather
than slowing requests down):

- `ProcessLogWriter` (the default) hands rows to a child process over a pipe
  (`child_main`), which inserts them and acknowledges each
  batch. The gateway process does no database work for the log at all. Measured with
  ``benchmarks/bench_gateway.py``: a writer *thread* in the gateway process cost about
  0.5 ms of CPU per request beyond the inserts themselves, because it contends for the GIL
  with the event loop every time either releases it (every hyperscan scan, every socket
  call), which slowed the loop's own work two- to eight-fold while the thread was busy.
- `ThreadLogWriter` writes from a worker thread; used for in-memory SQLite stores (another
  process cannot see them) and when ``request_log_writer: thread`` is configured.

A batch leaves the queue only once the child acknowledged it, so a child that dies loses
nothing: the gateway starts a new one and sends the batch again, marked as sent again, and
the new child skips the rows already stored (by request id: the old child may have
committed the batch just before dying), so nothing is written twice either.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate import _json as fast_json

if TYPE_CHECKING:
    from finegate.store.db import Store

__all__ = ["LogWriter", "ProcessLogWriter", "ThreadLogWriter", "make_log_writer", "write_rows"]

log = logging.getLogger("finegate.gateway")

LOG_FIELDS = (
    "request_id", "key_id", "tier", "model", "status", "outcome", "messages", "output",
    "tool_calls", "decisions", "latency_ms", "upstream_ms", "prompt_tokens",
    "completion_tokens", "created_at",
)  # fmt: skip
_STORE_ENV = "FINEGATE_LOG_STORE_URL"
_HOME_ENV = "FINEGATE_LOG_STORE_HOME"
_CHILD = "from finegate.gateway.request_log import child_main; child_main()"
_RESEND = b"resend\n"  # not JSON: a line of its own before the rows of a batch sent again


def write_rows(store: Store, rows: list[dict[str, Any]]) -> None:
    """Insert request-log rows (exactly the `LOG_FIELDS`, as queued) in one transaction."""
    from sqlalchemy import insert

    from finegate.store.schema import GatewayRequestLog

    with store.session() as s:
        s.execute(insert(GatewayRequestLog), rows)


class LogWriter:
    """The queue shared by both writers; subclasses say how a batch is written.

    Args:
        flush_s: How often queued rows are written.
        batch: Rows per write.
        max_queue: Queued rows beyond this are dropped (and counted in `dropped`).
    """

    def __init__(self, *, flush_s: float = 0.5, batch: int = 500, max_queue: int = 20000) -> None:
        self.flush_s = flush_s
        self.batch = batch
        self.max_queue = max_queue
        self.dropped = 0
        self.written = 0
        self._queue: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row (fields of `GatewayRequestLog`); never blocks."""
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        row.setdefault("created_at", datetime.now(UTC))
        self._queue.append(self._encode({k: row.get(k) for k in LOG_FIELDS}))

    def _encode(self, row: dict[str, Any]) -> Any:
        """What the queue holds for one row (its `LOG_FIELDS` only)."""
        return row

    def start(self) -> None:
        """Start the flushing task in the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="finegate-gateway-log")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        """Write every queued row now (returns once they are written or counted dropped)."""
        async with self._lock:
            while self._queue:
                batch = self._queue[: self.batch]
                if await self._write(batch):
                    self.written += len(batch)
                else:
                    self.dropped += len(batch)
                del self._queue[: len(batch)]

    async def _write(self, batch: list[Any]) -> bool:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop the task and write what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()


class ThreadLogWriter(LogWriter):
    """Writes batches from a worker thread of the gateway process."""

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store

    async def _write(self, batch: list[Any]) -> bool:
        try:
            await asyncio.to_thread(write_rows, self.store, batch)
        except Exception as exc:  # noqa: BLE001 - the log must never take the gateway down
            log.error("gateway: request log write failed (%s)", type(exc).__name__)
            return False
        return True


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


class ProcessLogWriter(LogWriter):
    """Hands batches to a child process that writes them (see the module docstring).

    Rows are JSON-encoded one at a time as they are queued (a few microseconds each), so a
    flush only joins bytes: encoding a whole batch at once would stall the event loop.

    Args:
        store: The store the child opens (by URL; never an in-memory SQLite database).
        restarts: Child failures in a row after which a batch is dropped instead of retried.
    """

    def __init__(self, store: Store, *, restarts: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.restarts = restarts
        self._proc: asyncio.subprocess.Process | None = None

    def _encode(self, row: dict[str, Any]) -> bytes:
        return fast_json.dumps(row, default=_json_default) + b"\n"

    async def _child(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            return proc
        # The URL travels in the environment, not argv: argv is world-readable (ps).
        env = {**os.environ, _STORE_ENV: self.store.url, _HOME_ENV: str(self.store.home)}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        return self._proc

    async def _write(self, batch: list[Any]) -> bool:
        for attempt in range(self.restarts + 1):
            try:
                proc = await self._child()
                assert proc.stdin is not None and proc.stdout is not None
                # A batch sent again may have been committed by the child that died before
                # answering: the first line tells the new child to skip rows already stored.
                again = _RESEND if attempt else b""
                proc.stdin.write(again + b"".join(batch) + b"\n")  # an empty line ends it
                await proc.stdin.drain()
                answer = await proc.stdout.readline()
            except (OSError, ConnectionError) as exc:
                answer = f"gone {type(exc).__name__}".encode()
            if answer.startswith(b"ok "):
                return True
            if answer.startswith(b"err "):
                log.error("gateway: request log write failed (%s)", answer[4:].decode().strip())
                return False
            # The child died (no answer): start another and send the same batch again.
            await self._stop_child()
            log.error("gateway: request-log writer process exited; restarting (%d)", attempt + 1)
        return False

    async def _stop_child(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def aclose(self) -> None:
        """Write what is left, then let the child exit."""
        await super().aclose()
        await self._stop_child()


def make_log_writer(store: Store, *, mode: str = "process", flush_s: float = 0.5) -> LogWriter:
    """The writer for ``mode`` (``process`` or ``thread``); in-memory SQLite forces thread."""
    if mode == "thread" or store.in_memory:
        return ThreadLogWriter(store, flush_s=flush_s)
    return ProcessLogWriter(store, flush_s=flush_s)


def _json_columns() -> frozenset[str]:
    from sqlalchemy import JSON

    from finegate.store.schema import GatewayRequestLog

    return frozenset(
        c.name for c in GatewayRequestLog.__table__.columns if isinstance(c.type, JSON)
    )


def _text_row_inserter(store: Store) -> Any:
    """``insert(rows)`` for rows whose JSON fields are already JSON text (the writer process).

    The child receives each row as JSON; handing SQLAlchemy its lists to serialize again
    (with the standard library, per field) and the ORM table's processing cost about half of
    the child's CPU per row. A plain table of the same columns takes the JSON fields as
    text; PostgreSQL gets them cast to ``json``, SQLite stores the text as its JSON type does.
    """
    from sqlalchemy import JSON, Column, MetaData, Table, Text, cast, insert
    from sqlalchemy.types import TypeDecorator

    from finegate.store.schema import GatewayRequestLog

    class _CastJSON(TypeDecorator[str]):
        impl = Text
        cache_ok = True

        def bind_expression(self, bindvalue: Any) -> Any:
            return cast(bindvalue, JSON)

    json_type: Any = _CastJSON() if store.engine.dialect.name == "postgresql" else Text()
    json_fields = _json_columns()
    table = Table(
        GatewayRequestLog.__tablename__, MetaData(),
        *(Column(c.name, json_type if c.name in json_fields else c.type)
          for c in GatewayRequestLog.__table__.columns if c.name in LOG_FIELDS),
    )  # fmt: skip
    statement = insert(table)

    def insert_rows(rows: list[dict[str, Any]]) -> None:
        if not rows:  # (an insert without parameters would insert one row of defaults)
            return
        with store.engine.begin() as conn:
            conn.execute(statement, rows)

    return insert_rows


def child_main() -> None:
    """The writer process: batches of JSON lines on stdin, one answer line each on stdout."""
    import signal

    from finegate.store.db import Store

    # Ctrl-C reaches the whole process group; the gateway ends this process itself (closing
    # stdin) once the rows it still holds are written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stdout carries the answers; anything else printing there would corrupt them.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    store = Store(os.environ[_STORE_ENV], home=Path(os.environ[_HOME_ENV]), auto_migrate=False)
    insert_rows = _text_row_inserter(store)
    json_fields = _json_columns()
    rows: list[dict[str, Any]] = []
    resent = False
    for line in sys.stdin.buffer:
        if line == _RESEND:
            resent = True
            continue
        if line.strip():
            rows.append(parse_row(line, json_fields))
            continue
        try:
            insert_rows(_not_stored(store, rows) if resent else rows)
            out.write(f"ok {len(rows)}\n".encode())
        except Exception as exc:  # noqa: BLE001 - reported to the gateway, which counts it
            out.write(f"err {len(rows)} {type(exc).__name__}\n".encode())
        out.flush()
        rows, resent = [], False
    if rows:  # the gateway went away mid-batch: keep what arrived
        insert_rows(_not_stored(store, rows) if resent else rows)
    store.close()


def parse_row(line: bytes, json_fields: frozenset[str]) -> dict[str, Any]:
    """One queued row as the writer process inserts it (JSON fields as JSON text)."""
    row: dict[str, Any] = fast_json.loads(line)
    for name in json_fields:
        row[name] = fast_json.dumps(row.get(name)).decode()
    if isinstance(row.get("created_at"), str):
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


def _not_stored(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose request id is not in the log yet (a batch sent again after a crash)."""
    from sqlalchemy import select

    from finegate.store.schema import GatewayRequestLog

    ids = [r["request_id"] for r in rows]
    column = GatewayRequestLog.request_id
    with store.session() as s:
        stored = set(s.scalars(select(column).where(column.in_(ids))))
    return [r for r in rows if r["request_id"] not in stored]
