"""Several gateway worker processes behind one port (``workers: N``).

One event loop serves about one request per millisecond of the gateway's CPU; on a machine
with more cores, ``workers: N`` runs N processes that accept connections from one listening
socket (uvicorn's process manager: it restarts a worker that dies). What must be one state
for the whole gateway is shared:

* **rate limits and throttles** through Redis (``redis_url`` is required);
* **keys, kill switch, reviews, request log** through the store, as for one process;
* **usage monitoring** in one `UsageService` (a thread of the parent process, on a Unix
  socket in the run directory): every worker sends each prompt there, so probing spread over
  many connections — and so over several workers — is seen as one key's traffic; incidents
  come back to the worker that sent the prompt, which records them and throttles the key;
* **metrics**: each worker writes its values to ``metrics/<pid>.json`` in the run directory
  every second, and whichever worker answers ``/metrics`` adds the others' in. A dead
  worker's file stays, so counters never go backwards when uvicorn replaces it.

The run directory (a private temporary directory, 0700) also holds the validated
configuration the workers load (`worker_app`), so secrets in it never travel in the
environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from finegate.errors import ConfigError
from finegate.gateway.config import GatewayConfig, UsageConfig
from finegate.gateway.usage import Incident, UsageMonitor

__all__ = [
    "RUN_DIR_ENV",
    "UsageClient",
    "UsageService",
    "read_metrics",
    "run_workers",
    "usage_socket",
    "worker_app",
    "write_metrics",
]

log = logging.getLogger("finegate.gateway")

RUN_DIR_ENV = "FINEGATE_GATEWAY_RUN_DIR"
_CONFIG_FILE = "config.json"
_USAGE_SOCKET = "usage.sock"
_METRICS_DIR = "metrics"
# Only the first 2,000 words and 1,024 characters of a prompt are compared (`UsageMonitor`);
# 32 K characters hold 2,000 words of any ordinary text, and bound a line on the socket.
_SENT_CHARS = 32768
_LINE_LIMIT = 1 << 20
# A service that stops reading must not make the workers buffer without bound.
_MAX_BUFFERED = 4 << 20


# -- metrics ------------------------------------------------------------------------------


def write_metrics(run_dir: Path, snapshot: dict[str, Any]) -> None:
    """Write this worker's metric values (atomically: a scrape never reads half a file)."""
    folder = run_dir / _METRICS_DIR
    target = folder / f"{os.getpid()}.json"
    tmp = folder / f".{os.getpid()}.tmp"
    tmp.write_text(json.dumps(snapshot), encoding="utf-8")
    os.replace(tmp, target)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every other worker's last written values (dead workers' included)."""
    own = f"{os.getpid()}.json"
    out: list[dict[str, Any]] = []
    for path in sorted((run_dir / _METRICS_DIR).glob("*.json")):
        if path.name == own:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # replaced between listing and reading: skip it
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


# -- usage monitoring ---------------------------------------------------------------------


class UsageService:
    """One `UsageMonitor` for all workers, served on a Unix socket from a thread.

    Each line a worker sends is ``{"k": key id, "p": prompt start, "n": prompt length}``;
    each incident it raises is answered as one JSON line on the same connection.

    Args:
        config: Usage thresholds.
        path: The socket's path.
    """

    def __init__(self, config: UsageConfig, path: Path) -> None:
        self.monitor = UsageMonitor(config)
        self.path = path
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start serving; return once the socket accepts connections.

        Raises:
            ConfigError: the socket cannot be created.
        """
        self._thread = threading.Thread(target=self._run, name="gateway-usage", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self._ready.is_set():
            raise ConfigError(f"cannot start the usage monitor on {self.path}: {self._error}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=_LINE_LIMIT
        )
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                    key, prompt, size = str(msg["k"]), str(msg["p"]), int(msg["n"])
                except (ValueError, KeyError, TypeError):
                    log.warning("gateway: usage monitor got a malformed line; ignored")
                    continue
                for incident in self.monitor.observe(key, prompt, size):
                    writer.write(json.dumps(asdict(incident)).encode() + b"\n")
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("gateway: usage-monitor connection dropped (%s)", type(exc).__name__)
        finally:
            writer.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


class UsageClient:
    """A worker's side of the `UsageService`: send prompts, act on incidents as they come.

    Sending never waits: while the service is unreachable (it is reconnected every second)
    or not reading, prompts are not monitored and are counted in ``dropped``.

    Args:
        path: The service's socket.
        on_incident: Called for each incident the service raises for this worker's prompts.
    """

    def __init__(self, path: Path, on_incident: Callable[[Incident], Awaitable[None]]) -> None:
        self.path = path
        self.on_incident = on_incident
        self.dropped = 0
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, timeout_s: float = 5.0) -> None:
        """Connect (waiting up to ``timeout_s``) and start reading incidents."""
        self._task = asyncio.create_task(self._run(), name="gateway-usage-client")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def _run(self) -> None:
        warned = False
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(
                    str(self.path), limit=_LINE_LIMIT
                )
            except OSError as exc:
                if not warned:
                    log.error("gateway: usage monitor unreachable (%s)", type(exc).__name__)
                    warned = True
                await asyncio.sleep(1.0)
                continue
            self._writer, warned = writer, False
            self._connected.set()
            try:
                while line := await reader.readline():
                    await self._incident(line)
            except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
                log.error("gateway: usage-monitor connection lost (%s)", type(exc).__name__)
            finally:
                self._writer = None
                writer.close()
            await asyncio.sleep(1.0)

    async def _incident(self, line: bytes) -> None:
        try:
            incident = Incident(**json.loads(line))
        except (ValueError, TypeError):
            log.error("gateway: usage monitor sent a malformed incident; ignored")
            return
        try:
            await self.on_incident(incident)
        except Exception as exc:  # noqa: BLE001 - keep reading the next ones
            log.error("gateway: handling a usage incident failed (%s)", type(exc).__name__)

    def observe(self, key_id: str, prompt: str) -> None:
        """Send one prompt of ``key_id`` to the monitor."""
        writer = self._writer
        if writer is None or writer.transport.get_write_buffer_size() > _MAX_BUFFERED:
            self.dropped += 1
            return
        line = {"k": key_id, "p": prompt[:_SENT_CHARS], "n": len(prompt)}
        writer.write(json.dumps(line).encode() + b"\n")

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# -- processes ----------------------------------------------------------------------------


def worker_app() -> Any:
    """The ASGI app of one worker (uvicorn's factory; reads the run directory)."""
    from finegate.gateway.app import ChatFastPath, create_app

    run_dir = Path(os.environ[RUN_DIR_ENV])
    config = GatewayConfig.model_validate_json((run_dir / _CONFIG_FILE).read_text("utf-8"))
    app = create_app(config, freeze_gc=True, run_dir=run_dir)
    return ChatFastPath(app, app.state.chat_endpoint)


def run_workers(config: GatewayConfig, **uvicorn_options: Any) -> None:
    """Run ``config.workers`` gateway processes on one socket until interrupted.

    Args:
        config: The gateway configuration (``workers`` > 1, ``redis_url`` set).
        **uvicorn_options: ``host``, ``port``, ``log_level``, ``access_log``, ...

    Raises:
        ConfigError: no ``redis_url``, or the store is an in-memory database.
    """
    import uvicorn

    from finegate.store.db import open_store

    if not config.redis_url:
        raise ConfigError(
            f"workers: {config.workers} needs redis_url: rate limits and throttles must be "
            "shared by the worker processes", hint="redis_url: redis://127.0.0.1:6379/0",
        )  # fmt: skip
    if open_store().in_memory:
        raise ConfigError("several gateway workers cannot share an in-memory store",
                          hint="set FINEGATE_DB to a SQLite file or PostgreSQL URL")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="finegate-gateway-") as tmp:
        run_dir = Path(tmp)
        (run_dir / _METRICS_DIR).mkdir()
        (run_dir / _CONFIG_FILE).write_text(config.model_dump_json(), encoding="utf-8")
        service = UsageService(config.usage, run_dir / _USAGE_SOCKET)
        service.start()
        previous = os.environ.get(RUN_DIR_ENV)
        os.environ[RUN_DIR_ENV] = tmp  # the workers are spawned with this environment
        try:
            uvicorn.run(
                "finegate.gateway.workers:worker_app", factory=True, workers=config.workers,
                **uvicorn_options,
            )  # fmt: skip
        finally:
            service.stop()
            if previous is None:
                os.environ.pop(RUN_DIR_ENV, None)
            else:
                os.environ[RUN_DIR_ENV] = previous


def usage_socket(run_dir: Path) -> Path:
    """The usage service's socket in a run directory."""
    return run_dir / _USAGE_SOCKET
