"""POST routes the HTTP protocol answers itself, past ASGI: uvicorn's httptools protocol, extended.

A service on this server stack spends a good part of each small request in the ASGI layer
rather than in its own work: the request scope, the request-response cycle and its event, the
``receive`` messages and their body copies, the validation of every response header in
``send``. `FastPostProtocol` keeps uvicorn's protocol for everything (parsing, keep-alive,
pipelining, flow control, graceful shutdown, every other route) and answers the POST routes
an app lists in its ``fast_post_routes`` attribute directly: the body is collected by the
parser callbacks, the route's handler gets it with the request headers, and a whole answer is
written as one buffer. A handler that needs more (a stream) returns an ASGI app instead, which
runs in an ordinary uvicorn request-response cycle. An app without the attribute, or a server
with an access log, a concurrency limit or a root path, gets uvicorn's behaviour unchanged.

    uvicorn.run(app, http="finegate.models.http_fastpath:FastPostProtocol")

where ``app.fast_post_routes = {b"/v1/chat/completions": FastPostRoute(handler, 1 << 20)}``.
The route key is the raw request target, so a query string or percent-encoding takes the
ASGI path. This module imports uvicorn: import it only where a server runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, cast

from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

__all__ = ["FastPostProtocol", "FastPostRoute", "WholeAnswer", "first_header"]

Headers = list[tuple[bytes, bytes]]


class WholeAnswer(NamedTuple):
    """A complete answer: status, headers (lower-case names, no content-length) and body."""

    status: int
    headers: Headers
    body: bytes


#: ``handler(body, headers)``: ``body`` is None when it is larger than the route's limit.
FastHandler = Callable[[bytes | None, Headers], Awaitable["WholeAnswer | Any"]]


class FastPostRoute(NamedTuple):
    """A POST route answered by `FastPostProtocol`: its handler and its body limit in bytes."""

    handler: FastHandler
    max_body_bytes: int


def first_header(headers: Headers, name: bytes) -> bytes | None:
    """The value of the first header called ``name`` (lower case, as parsed), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


class _NoEvent:
    """uvicorn's protocol sets its cycle's ``message_event`` on disconnect: a fast one has none."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()
_SERVER_ERROR = WholeAnswer(
    500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error"
)


class _FastCycle:
    """One fast request: what uvicorn's protocol reads of a cycle, plus the collected body."""

    __slots__ = ("route", "path", "scope", "headers", "keep_alive", "disconnected",
                 "response_complete", "started", "parts", "size", "asgi")  # fmt: skip
    message_event = _NO_EVENT

    def __init__(
        self, route: FastPostRoute, path: bytes, scope: Any, headers: Headers, keep_alive: bool
    ) -> None:
        self.route, self.path, self.scope, self.headers = route, path, scope, headers
        self.keep_alive = keep_alive
        self.disconnected = self.response_complete = self.started = False
        self.parts: list[bytes] = []
        self.size = 0
        self.asgi: RequestResponseCycle | None = None  # set when the handler answers with ASGI


class FastPostProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol answering the app's ``fast_post_routes`` itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        routes: Mapping[bytes, FastPostRoute] = getattr(self.app, "fast_post_routes", None) or {}
        # The ASGI path logs each request and enforces these; the fast one would not.
        if self.access_log or self.limit_concurrency is not None or self.root_path:
            routes = {}
        self.fast_routes = routes
        self.fast_cycle: _FastCycle | None = None

    def on_headers_complete(self) -> None:  # noqa: D102
        route = self.fast_routes.get(self.url) if self.fast_routes else None
        cycle = self.cycle
        if (
            route is None
            or self.parser.get_method() != b"POST"
            or self.parser.get_http_version() != "1.1"
            or self.expect_100_continue
            or self.parser.should_upgrade()
            or (cycle is not None and not cycle.response_complete)  # pipelined: queue it
        ):
            super().on_headers_complete()
            return
        fast = _FastCycle(
            route, self.url, self.scope, self.headers, self.parser.should_keep_alive()
        )
        self.cycle = self.fast_cycle = fast  # type: ignore[assignment]
        declared = first_header(self.headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > route.max_body_bytes:
            self._start(fast, None)  # answer at once; the body is read and dropped

    def on_body(self, body: bytes) -> None:  # noqa: D102
        fast: Any = self.cycle
        if type(fast) is not _FastCycle:
            super().on_body(body)
            return
        if fast.started:  # answered already (too large): the rest is read and dropped
            return
        fast.size += len(body)
        if fast.size > fast.route.max_body_bytes:
            fast.parts.clear()
            self._start(fast, None)
            return
        fast.parts.append(body)

    def on_message_complete(self) -> None:  # noqa: D102
        fast: Any = self.cycle
        if type(fast) is not _FastCycle:
            super().on_message_complete()
            return
        if not fast.started:
            self._start(fast, b"".join(fast.parts))

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        fast, current = self.fast_cycle, cast(Any, self.cycle)
        # uvicorn tells the current cycle; a request pipelined behind this one replaced it.
        if fast is not None and fast is not current and fast.asgi is not current:
            if fast.asgi is not None:
                if not fast.asgi.response_complete:
                    fast.asgi.disconnected = True
                fast.asgi.message_event.set()
            elif not fast.response_complete:
                fast.disconnected = True
        super().connection_lost(exc)

    def _start(self, fast: _FastCycle, body: bytes | None) -> None:
        fast.started = True
        task = self.loop.create_task(self._answer(fast, body))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, fast: _FastCycle, body: bytes | None) -> None:
        try:
            answer = await fast.route.handler(body, fast.headers)
            if type(answer) is not WholeAnswer:
                await self._run_asgi(fast, answer)
                return
            data = _render(answer, self.server_state.default_headers, fast.keep_alive)
        except BaseException as exc:  # noqa: BLE001 - like uvicorn: log it, answer 500, close
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            fast.keep_alive = False
            data = _render(_SERVER_ERROR, self.server_state.default_headers, False)
        keep_alive = fast.keep_alive
        if not fast.disconnected and not self.transport.is_closing():
            self.transport.write(data)
        fast.response_complete = True
        if not keep_alive:
            self.transport.close()
        if self.fast_cycle is fast:
            self.fast_cycle = None
        self.on_response_complete()

    async def _run_asgi(self, fast: _FastCycle, app: Any) -> None:
        """Let ``app`` answer in an ordinary uvicorn cycle (the body was read already)."""
        scope = fast.scope
        # The raw target matched a route key: no query string, no percent-encoding.
        scope["method"], scope["query_string"] = "POST", b""
        scope["path"], scope["raw_path"] = fast.path.decode("ascii"), fast.path
        cycle = RequestResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=fast.keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.more_body = False
        cycle.disconnected = fast.disconnected
        fast.asgi = cycle
        if cast(Any, self.cycle) is fast:
            self.cycle = cycle
        try:
            await cycle.run_asgi(app)
        finally:
            if self.fast_cycle is fast:
                self.fast_cycle = None


def _render(answer: WholeAnswer, default_headers: Headers, keep_alive: bool) -> bytes:
    """The HTTP/1.1 bytes of a whole answer (status line, headers, body)."""
    parts = [STATUS_LINE[answer.status]]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    for name, value in answer.headers:
        # Handlers build headers from their own values; a control character would still split
        # the answer, so it fails here as uvicorn's ``send`` would fail it.
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"content-length: %d\r\n" % len(answer.body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", answer.body)
    return b"".join(parts)
