"""An httpx transport on aiohttp's connection pool, for the hot upstream paths.

httpx's default transport (httpcore) spends most of its time per request in pool bookkeeping:
it re-checks every idle connection's socket and expiry and re-detects the async library on
each call. Behind the gateway that was half of the gateway's own CPU per request. aiohttp's
pool and C HTTP parser do the same job for a fraction, so `default_transport` returns an
`AiohttpTransport` when aiohttp is installed (the ``serve`` extra) and ``None`` (httpx's
default) otherwise. Callers keep the httpx API: requests, responses, streaming and the httpx
exception types (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``,
``RemoteProtocolError``) are the same either way. `AiohttpTransport.post`, the OpenAI
backend's shortcut, sends plain-HTTP POSTs through a leaner `PostPool` still
(`finegate.models.http_pool`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING

import httpx

from finegate.models.http_pool import FRAMING_HEADERS, PostAnswer, PostPool

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["AiohttpTransport", "default_transport"]


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def default_transport(max_connections: int) -> httpx.AsyncBaseTransport | None:
    """An `AiohttpTransport` when aiohttp is importable, else ``None`` (httpx's default).

    Also ``None`` when a proxy is configured in the environment: httpx's own transport
    handles ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` exactly, and checking the environment
    per request (aiohttp's ``trust_env``) is what this transport exists to avoid.
    """
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
        return None
    try:
        import aiohttp  # noqa: F401
    except ModuleNotFoundError:
        return None
    return AiohttpTransport(max_connections=max_connections)


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    import aiohttp

    t = request.extensions.get("timeout") or {}
    connect, pool = t.get("connect"), t.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if connect is None and pool is None else (connect or 0) + (pool or 0),
        sock_connect=connect,
        sock_read=t.get("read"),
    )


def _map_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception a default transport would have raised for ``exc``."""
    import aiohttp

    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(detail, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(detail, request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError | TimeoutError):
        return httpx.ReadTimeout(detail, request=request)
    # ClientResponseError: a malformed status line or headers.
    protocol = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError)  # fmt: skip
    if isinstance(exc, protocol):
        return httpx.RemoteProtocolError(detail, request=request)
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return httpx.ReadError(detail, request=request)
    return httpx.NetworkError(detail, request=request)


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp as it arrives; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise _map_error(exc, self._request) from None

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one aiohttp session (a keep-alive pool) per event loop.

    Args:
        max_connections: Most open connections in all (like ``httpx.Limits``).
        keepalive_s: How long an idle connection is kept; shorter than servers' usual 60-75 s
            so the client, not the server, closes idle connections.

    Example:
        >>> import httpx
        >>> client = httpx.AsyncClient(transport=AiohttpTransport(max_connections=16))
    """

    def __init__(self, max_connections: int = 100, keepalive_s: float = 30.0) -> None:
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._pool: PostPool | None = None
        self._urls: dict[str, URL] = {}
        self._lifetime: AsyncGenerator[None, None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            # A session's connections belong to the loop that opened them; a new loop (the
            # sync facade runs one per call) gets a new pool.
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, keepalive_timeout=self.keepalive_s
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes by Content-Encoding itself
                trust_env=False,  # no proxy by construction (`default_transport`), no netrc
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
            # The pool is closed by its own loop when that loop shuts down: asyncio.run
            # finalizes live async generators before closing the loop, which runs this one's
            # `finally`. Without it every sync-facade call would leave an open pool behind.
            pool = PostPool(max_idle=self.max_connections, keepalive_s=self.keepalive_s)
            lifetime = _close_at_shutdown(session, pool)
            await lifetime.__anext__()
            self._session, self._pool, self._lifetime, self._loop = session, pool, lifetime, loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:  # noqa: D102
        import aiohttp
        from yarl import URL

        session = await self._get_session()
        headers = [
            (k, v) for k, v in request.headers.multi_items() if k.lower() not in FRAMING_HEADERS
        ]  # fmt: skip
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                timeout=_timeout(request),
                allow_redirects=False,
                compress=None,
            )
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise _map_error(exc, request) from None
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def post(
        self, url: str, headers: Mapping[str, str], content: bytes, timeout_s: float
    ) -> PostAnswer:
        """POST ``content`` and read the whole answer, without building an httpx request.

        The shortcut for a caller that sends one fixed request shape per call (the OpenAI
        backend): httpx's request building, URL merging, cookie and auth handling were a
        tenth of the gateway's CPU per request. Plain ``http://`` goes through a `PostPool`
        (httptools' parser, no aiohttp request objects); ``https://`` through aiohttp. Errors
        are the same httpx exceptions as `handle_async_request` raises; the response is
        decoded by its Content-Encoding.
        """
        import aiohttp
        from yarl import URL

        session = await self._get_session()
        if url.startswith("http://"):
            assert self._pool is not None  # made with the session, for the same loop
            return await self._pool.post(url, headers, content, timeout_s)
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) >= 64:  # a backend posts to one URL; bound it all the same
                self._urls.clear()
            target = self._urls[url] = URL(url)
        try:
            async with session.post(
                target,
                headers=headers,
                data=content,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
                ),
                allow_redirects=False,
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise _map_error(exc, httpx.Request("POST", url)) from None
        return PostAnswer(response.status, list(response.raw_headers), body)

    async def aclose(self) -> None:
        """Close the pool (only possible from the loop that owns it)."""
        lifetime, self._session, self._lifetime, self._pool = self._lifetime, None, None, None
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        self._loop = None
        if same_loop and lifetime is not None:
            await lifetime.aclose()  # its `finally` closes the session


async def _close_at_shutdown(
    session: aiohttp.ClientSession, pool: PostPool
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        pool.close()
        if not session.closed:
            await session.close()
