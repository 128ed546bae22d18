"""A keep-alive pool for plain-HTTP POSTs whose whole answer is read at once.

The gateway's hop to an OpenAI-compatible upstream is one small POST and one JSON answer per
request. aiohttp's client spent about a sixth of the gateway's CPU on it (request objects,
payload writers, timers, header multidicts); this pool writes the request bytes itself and
parses the answer with httptools (uvicorn's C parser, installed with it), one protocol
object per connection. `AiohttpTransport.post` uses it for ``http://`` URLs; TLS, streaming
and everything else stay on aiohttp.

Semantics kept from the callers' point of view: httpx exception types (``ConnectError``,
``ConnectTimeout``, ``ReadTimeout``, ``RemoteProtocolError``, ``ReadError``), and a
connection that the server closed while idle is retried once on a new one (the request never
reached the server), as aiohttp and httpcore do.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    import httptools

__all__ = ["FRAMING_HEADERS", "PostAnswer", "PostPool"]

# Hop-by-hop and framing headers: computed by the sender for the body it sends; a caller's
# value would contradict it.
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    head: bytes  # request line and Host header


# status, headers, body, keep-alive
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes, bool]


class PostAnswer:
    """A whole HTTP answer: status, headers and the body (decoded by its Content-Encoding).

    What callers of `PostPool.post` read of an answer, with `httpx.Response`'s names
    (``status_code``, ``content``, ``headers``, ``text``, ``json()``). Building an
    `httpx.Response` per answer cost about 23 microseconds (header normalization, stream
    wrappers); this costs one object, and the headers are parsed only when asked for.

    Args:
        status_code: The HTTP status.
        raw_headers: ``(name, value)`` pairs as received.
        content: The body as received; decoded here when the answer names a Content-Encoding.
    """

    __slots__ = ("_headers", "_raw", "content", "status_code")

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], content: bytes):
        self.status_code = status_code
        self._raw = raw_headers
        self._headers: httpx.Headers | None = None
        for name, value in raw_headers:
            if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
                # Rare on this hop (nothing asks for compression); httpx's decoders do it.
                content = httpx.Response(status_code, headers=raw_headers, content=content).content
                break
        self.content = content

    @property
    def headers(self) -> httpx.Headers:
        """The headers (case-insensitive lookups), parsed on first use."""
        if self._headers is None:
            self._headers = httpx.Headers(self._raw)
        return self._headers

    @property
    def text(self) -> str:
        """The body as text (UTF-8; undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            json.JSONDecodeError, UnicodeDecodeError: The body is not JSON in UTF-8.
        """
        from finegate import _json

        return _json.loads(self.content)


class _Stale(Exception):
    """The connection closed before any byte of the answer arrived."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one answer at a time."""

    def __init__(self) -> None:
        import httptools

        self._parser_type = httptools.HttpResponseParser
        self._parse_error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[_Answer] | None = None
        self._reset()

    def _reset(self) -> None:
        self._parser: httptools.HttpResponseParser = self._parser_type(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._got_bytes = False
        self._headers_done = False
        self._delimited = False  # by Content-Length or chunked encoding (else by close)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except self._parse_error as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if not self._got_bytes:
            waiter.set_exception(_Stale())
        elif self._headers_done and not self._delimited:
            self._complete(keep_alive=False)  # the body ends where the connection does
        else:
            detail = f"{type(exc).__name__}: {exc}" if exc else "closed mid-answer"
            waiter.set_exception(httpx.RemoteProtocolError(f"connection dropped ({detail})"))

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:  # noqa: D102
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value):
            self._delimited = True

    def on_headers_complete(self) -> None:  # noqa: D102
        self._headers_done = True

    def on_body(self, body: bytes) -> None:  # noqa: D102
        self._body.append(body)

    def on_message_complete(self) -> None:  # noqa: D102
        self._complete(keep_alive=self._parser.should_keep_alive())

    # -- requests ----------------------------------------------------------------------

    def _complete(self, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result((status, self._headers, b"".join(self._body), keep_alive))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _timed_out(self, timeout_s: float) -> None:
        # The error is made only when it happens: building an httpx error per request cost
        # as much as parsing the answer.
        self._fail(httpx.ReadTimeout(f"no answer within {timeout_s:g}s"))

    async def exchange(self, data: bytes, timeout_s: float) -> _Answer:
        """Send ``data`` (a whole request); return status, headers, body, keep-alive."""
        assert self.transport is not None
        self._reset()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Answer] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout_s, self._timed_out, timeout_s)
        self.transport.write(data)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PostPool:
    """Idle keep-alive connections per host, for `post`; used from one event loop only.

    Args:
        max_idle: Most idle connections kept per host.
        keepalive_s: Idle connections older than this are closed instead of reused.
    """

    def __init__(self, max_idle: int = 100, keepalive_s: float = 30.0) -> None:
        self.max_idle = max_idle
        self.keepalive_s = keepalive_s
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._targets: dict[str, _Target] = {}

    def _target(self, url: str) -> _Target:
        hit = self._targets.get(url)
        if hit is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"PostPool serves http:// URLs only, not {url!r}")
            port = parts.port or 80
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            netloc = parts.netloc.rpartition("@")[2]  # never credentials in the Host header
            head = f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\n".encode("latin-1")
            if len(self._targets) >= 64:  # a backend posts to one URL; bound it all the same
                self._targets.clear()
            hit = self._targets[url] = _Target(parts.hostname, port, head)
        return hit

    async def _connect(self, target: _Target, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, target.host, target.port), timeout_s
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {target.host}:{target.port}") from None
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        return conn

    def _take_idle(self, target: _Target) -> _Connection | None:
        idle = self._idle.get((target.host, target.port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    def _give_back(self, target: _Target, conn: _Connection) -> None:
        idle = self._idle.setdefault((target.host, target.port), deque())
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def post(
        self, url: str, headers: Mapping[str, str], content: bytes, timeout_s: float
    ) -> PostAnswer:
        """POST ``content`` to ``url`` and read the whole answer.

        Raises:
            httpx.ConnectError, httpx.ConnectTimeout: the server cannot be reached.
            httpx.ReadTimeout: no complete answer within ``timeout_s``.
            httpx.RemoteProtocolError: a malformed answer, or the connection dropped mid-way.
        """
        target = self._target(url)
        lines = "".join(
            f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() not in FRAMING_HEADERS
        )
        data = b"%sContent-Length: %d\r\n%s\r\n%s" % (
            target.head, len(content), lines.encode("latin-1"), content
        )  # fmt: skip
        for attempt in range(2):
            # A retry takes a new connection: after a server restart every idle one is stale.
            conn = self._take_idle(target) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(target, timeout_s)
            try:
                status, raw_headers, body, keep_alive = await conn.exchange(data, timeout_s)
            except _Stale:
                conn.close()
                if reused and attempt == 0:
                    continue  # the server had closed the idle connection: a new one
                raise httpx.RemoteProtocolError(
                    "server closed the connection without an answer"
                ) from None
            except BaseException:
                conn.close()
                raise
            if keep_alive and not conn.closed:
                self._give_back(target, conn)
            else:
                conn.close()
            return PostAnswer(status, raw_headers, body)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
