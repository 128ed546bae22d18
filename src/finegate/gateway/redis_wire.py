"""A minimal Redis client for the rate limiter: RESP2 over one pipelined TCP connection.

Every gateway request makes one Redis call (`RedisLimiter.check`); through redis-py's asyncio
client that call cost ~100 µs of the event loop's CPU (connection-pool checkout, command
packing and reply parsing in layers of Python). Here a command is one bytes join and one
socket write, and replies are parsed straight from the receive buffer, in order, into the
futures of the calls that wait for them — so concurrent requests share one connection and
their commands are pipelined by construction.

Only plain ``redis://`` URLs (host, port, database, optional user and password) are served;
`RespClient.from_url` returns ``None`` for TLS (``rediss://``) and Unix sockets, and the
limiter falls back to redis-py for those.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

__all__ = ["RedisError", "RespClient"]


class RedisError(Exception):
    """An error reply from the server (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _ErrorReply:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One reply starting at ``pos``: (value, position after it)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line, after = buf[pos], bytes(buf[pos + 1 : end]), end + 2
    if kind == 0x3A:  # ':' integer
        return int(line), after
    if kind == 0x24:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, after
        if len(buf) < after + size + 2:
            raise _Incomplete
        return bytes(buf[after : after + size]), after + size + 2
    if kind == 0x2A:  # '*' array
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = _parse(buf, after)
            items.append(item)
        return items, after
    if kind == 0x2B:  # '+' simple string
        return line.decode(), after
    if kind == 0x2D:  # '-' error
        return _ErrorReply(line.decode(errors="replace")), after
    raise ConnectionError(f"not a Redis reply (starts with {bytes([kind])!r})")


def _encode(args: tuple[str | int | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One connection: replies resolve the waiting calls in the order they were sent."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.closed = False
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it

    def data_received(self, data: bytes) -> None:  # noqa: D102
        buf = self._buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                value, pos = _parse(buf, pos)
                waiter = self.waiters.popleft() if self.waiters else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(value)
        except _Incomplete:
            pass
        except (ConnectionError, ValueError) as exc:
            self.fail(ConnectionError(f"bad reply from Redis: {exc}"))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.fail(ConnectionError(f"Redis connection lost ({exc or 'closed'})"))

    def fail(self, exc: BaseException) -> None:
        """Close the connection and fail every call still waiting (the stream is lost)."""
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class RespClient:
    """Calls on one pipelined connection, reopened on the next call after a failure.

    Args:
        host: Server host.
        port: Server port.
        db: Database number (``SELECT`` after connecting).
        username: For ``AUTH`` (Redis 6 ACLs), with ``password``.
        password: For ``AUTH``.
        timeout_s: Most time to connect, and to wait for one reply; a reply that is late
            fails every call on the connection (later replies could no longer be matched).
    """

    def __init__(
        self, host: str, port: int = 6379, *, db: int = 0, username: str | None = None,
        password: str | None = None, timeout_s: float = 2.0,
    ) -> None:  # fmt: skip
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self._conn: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 2.0) -> RespClient | None:
        """A client for a ``redis://`` URL, or ``None`` for URLs it does not serve."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            return None
        path = parts.path.strip("/")
        return cls(
            parts.hostname, parts.port or 6379, db=int(path) if path.isdigit() else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None, timeout_s=timeout_s,
        )  # fmt: skip

    async def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a connection belongs to the loop that opened it
            self._conn, self._loop, self._connecting = None, loop, asyncio.Lock()
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        assert self._connecting is not None
        async with self._connecting:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            try:
                _, fresh = await asyncio.wait_for(
                    loop.create_connection(_Connection, self.host, self.port), self.timeout_s
                )
            except TimeoutError:
                where = f"{self.host}:{self.port}"
                raise ConnectionError(f"connecting to Redis at {where} timed out") from None
            setup: list[tuple[str | int | bytes, ...]] = []
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                setup.append(("AUTH", *auth))
            if self.db:
                setup.append(("SELECT", self.db))
            for command in setup:
                await self._send(fresh, command)
            self._conn = fresh
            return fresh

    async def _send(self, conn: _Connection, args: tuple[str | int | bytes, ...]) -> Any:
        assert conn.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        conn.waiters.append(waiter)
        conn.transport.write(_encode(args))
        timer = loop.call_later(self.timeout_s, self._timed_out, conn)
        try:
            value = await waiter
        finally:
            timer.cancel()
        if isinstance(value, _ErrorReply):
            raise RedisError(value.message)
        return value

    def _timed_out(self, conn: _Connection) -> None:
        # The error is made only when it happens, not once per call on the hot path.
        conn.fail(TimeoutError(f"no Redis reply within {self.timeout_s:g}s"))

    async def call(self, *args: str | int | bytes) -> Any:
        """Send one command; return its reply (ints, bytes, lists, ``None``, str).

        Raises:
            RedisError: the server answered with an error.
            ConnectionError, OSError: the server cannot be reached or the connection broke.
            TimeoutError: no reply within ``timeout_s``.
        """
        return await self._send(await self._connection(), args)

    async def aclose(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(ConnectionError("client closed"))
