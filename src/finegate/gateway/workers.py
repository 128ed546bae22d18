"""Several gateway worker processes behind one port (``workers: N``).

One event loop serves about one request per half millisecond of the gateway's CPU; on a
machine with more cores, ``workers: N`` runs N processes that accept connections from one
listening socket (uvicorn's process manager: it restarts a worker that dies). What must be
one state for the whole gateway is shared:

* **rate limits and throttles** through Redis (``redis_url`` is required);
* **keys, kill switch, reviews, request log** through the store, as for one process;
* **usage monitoring** in a usage-monitor process (`usage_main`): one `UsageMonitor` on a
  Unix socket in a private run directory. Every worker sends each prompt there, so probing
  spread over many connections — and so over several workers — is seen as one key's
  traffic. Incidents come back to the worker that sent the crossing prompt, which records
  them and throttles the key. The parent restarts the process if it dies;
* **metrics**: each worker writes its values to ``metrics/<pid>.json`` in the run directory
  every second, and whichever worker answers ``/metrics`` adds the others' in. A dead
  worker's file stays, so counters never go backwards when uvicorn replaces it.

The run directory (a private temporary directory, 0700) also holds the validated
configuration the workers and the monitor load, so secrets in it never travel in the
environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from finegate import _json as fast_json
from finegate.errors import ConfigError
from finegate.gateway.config import GatewayConfig, UsageConfig
from finegate.gateway.usage import Incident, UsageMonitor

__all__ = [
    "RUN_DIR_ENV",
    "UsageClient",
    "UsageProcess",
    "UsageService",
    "gateway_run_dir",
    "read_metrics",
    "run_workers",
    "usage_main",
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
# Prompts are sent in batches, one write (a system call) per this interval instead of one per
# prompt; incidents (and throttles) come back up to this much later.
_SEND_AFTER_S = 0.002


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

    The usage-monitor process (`usage_main`) runs one; tests run it in their own process.

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
                    msg = fast_json.loads(line)
                    key, prompt, size = str(msg["k"]), str(msg["p"]), int(msg["n"])
                except (ValueError, KeyError, TypeError):
                    log.warning("gateway: usage monitor got a malformed line; ignored")
                    continue
                for incident in self.monitor.observe(key, prompt, size):
                    writer.write(json.dumps(asdict(incident)).encode() + b"\n")
        except (ConnectionError, ValueError) as exc:
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
        self._lines: list[bytes] = []

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
            except (ConnectionError, ValueError) as exc:
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
        """Queue one prompt of ``key_id`` for the monitor (sent within `_SEND_AFTER_S`)."""
        writer = self._writer
        if writer is None or writer.transport.get_write_buffer_size() > _MAX_BUFFERED:
            self.dropped += 1
            return
        line = {"k": key_id, "p": prompt[:_SENT_CHARS], "n": len(prompt)}
        self._lines.append(fast_json.dumps(line) + b"\n")
        if len(self._lines) == 1:
            asyncio.get_running_loop().call_later(_SEND_AFTER_S, self._send)

    def _send(self) -> None:
        lines, self._lines = self._lines, []
        writer = self._writer
        if writer is None or writer.is_closing():
            self.dropped += len(lines)  # the connection went away after they were queued
            return
        writer.write(b"".join(lines))

    async def aclose(self) -> None:
        """Send what is queued, stop reading and close the connection."""
        if self._lines:
            self._send()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# -- processes ----------------------------------------------------------------------------

_USAGE_CHILD = "from finegate.gateway.workers import usage_main; usage_main()"


def _load_config(run_dir: Path) -> GatewayConfig:
    return GatewayConfig.model_validate_json((run_dir / _CONFIG_FILE).read_text("utf-8"))


def usage_main() -> None:
    """The usage-monitor process: serve until stdin closes (the gateway ended or died)."""
    import signal
    import sys

    # Ctrl-C reaches the whole process group; the gateway shuts this process down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_dir = Path(os.environ[RUN_DIR_ENV])
    service = UsageService(_load_config(run_dir).usage, usage_socket(run_dir))
    service.start()
    sys.stdin.buffer.read()  # EOF when the parent closes the pipe or is gone
    service.stop()


class UsageProcess:
    """Starts the usage-monitor process and starts it again if it dies.

    Args:
        run_dir: The run directory (configuration file; the socket goes there).
        check_s: How often the process is checked.
    """

    def __init__(self, run_dir: Path, check_s: float = 1.0) -> None:
        self.run_dir = run_dir
        self.check_s = check_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None

    def _spawn(self, timeout_s: float = 30.0) -> None:
        import sys
        import time

        sock = usage_socket(self.run_dir)
        sock.unlink(missing_ok=True)
        env = {**os.environ, RUN_DIR_ENV: str(self.run_dir)}
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", _USAGE_CHILD], stdin=subprocess.PIPE, env=env
        )
        deadline = time.monotonic() + timeout_s
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise ConfigError(f"the usage-monitor process did not start (exit {proc.poll()})")
            time.sleep(0.02)
        self._proc = proc

    def start(self) -> None:
        """Start the process; return once it accepts connections.

        Raises:
            ConfigError: it did not start.
        """
        self._spawn()
        self._watch = threading.Thread(target=self._watch_loop, name="usage-watch", daemon=True)
        self._watch.start()

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.check_s):
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stop.is_set():
                log.error("gateway: usage-monitor process exited (%s); restarting", proc.returncode)
                try:
                    self._spawn()
                except ConfigError as exc:
                    log.error("gateway: %s", exc.message)

    def stop(self) -> None:
        """Let the process exit (closing its stdin) and stop watching it."""
        self._stop.set()
        if self._watch is not None:
            self._watch.join(5)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def gateway_run_dir(config: GatewayConfig) -> Iterator[Path]:
    """The run directory of a multi-worker gateway, with its usage-monitor process running.

    Raises:
        ConfigError: several workers without ``redis_url`` or with an in-memory store, or the
            usage monitor did not start.
    """
    from finegate.store.db import open_store

    if config.workers > 1 and not config.redis_url:
        raise ConfigError(
            f"workers: {config.workers} needs redis_url: rate limits and throttles must be "
            "shared by the worker processes", hint="redis_url: redis://127.0.0.1:6379/0",
        )  # fmt: skip
    if config.workers > 1 and open_store().in_memory:
        raise ConfigError("several gateway workers cannot share an in-memory store",
                          hint="set FINEGATE_DB to a SQLite file or PostgreSQL URL")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="finegate-gateway-") as tmp:
        run_dir = Path(tmp)
        (run_dir / _METRICS_DIR).mkdir()
        (run_dir / _CONFIG_FILE).write_text(config.model_dump_json(), encoding="utf-8")
        usage = UsageProcess(run_dir) if config.usage.enabled else None
        if usage is not None:
            usage.start()
        try:
            yield run_dir
        finally:
            if usage is not None:
                usage.stop()


def worker_app() -> Any:
    """The ASGI app of one worker (uvicorn's factory; reads the run directory)."""
    from finegate.gateway.app import ChatFastPath, create_app

    run_dir = Path(os.environ[RUN_DIR_ENV])
    app = create_app(_load_config(run_dir), freeze_gc=True, run_dir=run_dir)
    return ChatFastPath(app, app.state.chat_endpoint)


def run_workers(config: GatewayConfig, run_dir: Path, **uvicorn_options: Any) -> None:
    """Run ``config.workers`` gateway processes on one socket until interrupted.

    Args:
        config: The gateway configuration (``workers`` > 1).
        run_dir: From `gateway_run_dir`.
        **uvicorn_options: ``host``, ``port``, ``log_level``, ``access_log``, ...
    """
    import uvicorn

    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # the workers are spawned with this environment
    try:
        uvicorn.run(
            "finegate.gateway.workers:worker_app", factory=True, workers=config.workers,
            **uvicorn_options,
        )  # fmt: skip
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous


def usage_socket(run_dir: Path) -> Path:
    """The usage monitor's socket in a run directory."""
    return run_dir / _USAGE_SOCKET
