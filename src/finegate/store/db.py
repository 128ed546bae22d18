"""The store: one SQLAlchemy engine, migrated by Alembic, plus the artifact directory.

SQLite (WAL, default) and PostgreSQL use the same schema and the same migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from finegate.config import database_url, finegate_home
from finegate.errors import StoreError
from finegate.store.artifacts import ArtifactStore
from finegate.store.schema import Run

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers work while a run writes; busy_timeout rides out short write locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def in_memory_sqlite(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (no other process can open it)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings finegate relies on."""
    try:
        if url.startswith("sqlite"):
            if in_memory_sqlite(url):
                # One shared connection: by default each thread would get its own, empty,
                # in-memory database (the gateway writes its request log from a thread).
                from sqlalchemy.pool import StaticPool

                engine = create_engine(
                    url, connect_args={"check_same_thread": False}, poolclass=StaticPool
                )
            else:
                Path(str(make_url(url).database)).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        raise StoreError(
            f"cannot open store {_safe_url(url)}: {exc}",
            hint="check FINEGATE_DB (postgres needs finegate[postgres])",
        ) from None


def _safe_url(url: str) -> str:
    """Hide a password in a database URL before it is printed."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown by scheme only
        return url.split(":", 1)[0] + ":…"


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise StoreError(
            f"cannot migrate store {_safe_url(str(engine.url))}: {exc.orig}",
            hint="is the database server running and reachable?",
        ) from None


def current_revision(engine: Engine) -> str | None:
    """Return the Alembic revision the database is at (None when unmigrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class Store:
    """The finegate store: database plus artifacts.

    Args:
        url: SQLAlchemy URL; defaults to ``FINEGATE_DB`` or SQLite under ``FINEGATE_HOME``.
        home: State directory for artifacts; defaults to ``FINEGATE_HOME``.
        auto_migrate: Run migrations to head on open (the default; cheap when up to date).
    """

    def __init__(
        self, url: str | None = None, *, home: Path | None = None, auto_migrate: bool = True
    ) -> None:
        self.home = home or finegate_home()
        self.url = url or database_url()
        self.engine = make_engine(self.url)
        self.in_memory = in_memory_sqlite(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if auto_migrate:
            migrate(self.engine)
        self.artifacts = ArtifactStore(self.home / "artifacts", self._sessions)

    def __repr__(self) -> str:
        return f"Store({_safe_url(self.url)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error."""
        sess = self._sessions()
        try:
            yield sess
            sess.commit()
        except Exception:
            sess.rollback()
            raise
        finally:
            sess.close()

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()

    # Runs -------------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        *,
        model_uri: str | None = None,
        model_hash: str | None = None,
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record the start of a run and return its id."""
        rid = run_id or f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        with self.session() as s:
            s.add(
                Run(
                    id=rid,
                    kind=kind,
                    status="running",
                    model_uri=model_uri,
                    model_hash=model_hash,
                    config=config or {},
                    summary={},
                )
            )
        return rid

    def finish_run(
        self, run_id: str, *, status: str = "done", summary: dict[str, Any] | None = None
    ) -> None:
        """Mark a run finished with a status and summary."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise StoreError(f"no run with id {run_id!r}")
            run.status = status
            run.summary = summary or {}
            run.finished_at = datetime.now(UTC)

    def get_run(self, run_id: str) -> Run | None:
        """Return a run by id."""
        with self.session() as s:
            return s.get(Run, run_id)

    def list_runs(self, kind: str | None = None, limit: int = 50) -> list[Run]:
        """Return the most recent runs, newest first."""
        with self.session() as s:
            stmt = select(Run).order_by(Run.started_at.desc()).limit(limit)
            if kind:
                stmt = stmt.where(Run.kind == kind)
            return list(s.scalars(stmt))


_default: Store | None = None


def open_store() -> Store:
    """Return the process-wide store for the current environment (opened once)."""
    global _default
    if _default is None or _default.url != database_url():
        _default = Store()
    return _default


def reset_default_store() -> None:
    """Forget the process-wide store (tests change ``FINEGATE_HOME`` between cases)."""
    global _default
    if _default is not None:
        _default.close()
    _default = None
