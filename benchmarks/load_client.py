"""A lean HTTP/1.1 load generator for the gateway benchmarks: keep-alive POSTs, little CPU.

On the benchmark's two-core machine the load generator, the upstream and the gateway share
the CPU, so every microsecond the client spends is taken from the server it measures. The
general clients cost ~0.17 ms of CPU per request here (aiohttp) or more (httpx); this one
formats each request as one byte string, reads answers framed by ``Content-Length`` and
runs on uvloop when it is installed, as the servers do. It reads nothing it does not need
and refuses what it does not understand (a chunked or unframed answer) with a clear error
instead of measuring it wrongly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["LoadError", "run", "run_lean"]


class LoadError(RuntimeError):
    """The server answered something this client does not measure (or closed early)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._end = -1  # where the current answer ends in _buf, once its head is read
        self._head_end = 0  # where its body starts
        self._status = 0
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(LoadError(f"connection closed mid-answer ({exc})"))

    def data_received(self, data: bytes) -> None:  # noqa: D102
        buf = self._buf
        buf += data
        if self._end < 0:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buf[:head_end]).lower()
            self._status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0 or b"\r\ntransfer-encoding:" in head:
                self._fail(LoadError(f"answer not framed by Content-Length: {head[:200]!r}"))
                return
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            self._end = head_end + 4 + length
            self._head_end = head_end + 4
        if len(buf) >= self._end:
            body = bytes(buf[self._head_end : self._end])
            del buf[: self._end]
            self._end = -1
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self._status, body))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Write one whole request; the future gets (status, body)."""
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter


async def run_lean(
    url: str, key: str, bodies: Callable[[int], bytes], n: int, concurrency: int
) -> tuple[list[float], float, dict[int, int]]:
    """POST ``bodies(i)`` for i < n over ``concurrency`` connections; latencies, wall, statuses."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    ).encode("latin-1")
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, host, port))[1] for _ in range(concurrency)]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(n))

    async def worker(conn: _Connection) -> None:
        for i in counter:
            body = bodies(i)
            request = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
            t = time.perf_counter()
            status, _ = await conn.send(request)
            lat.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            if c.transport is not None:
                c.transport.close()
    return lat, time.perf_counter() - start, statuses


def run(coro_factory: Callable[[], object]) -> object:
    """Run a coroutine on uvloop when it is installed (as the servers measured do)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with the serve extra
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    return uvloop.run(coro_factory())  # type: ignore[arg-type]
