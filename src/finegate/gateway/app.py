"""The FastAPI app of the gateway and `serve` (uvicorn).

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/reviews/{id}`` (the
client polls a held answer), reviewer endpoints under ``/admin`` (a governance token in
``Authorization``; role-checked and audited), ``GET /metrics``, ``/healthz``, ``/readyz``.

This module deliberately has no ``from __future__ import annotations`` (FastAPI reads the
endpoint annotations at runtime); FastAPI is imported inside `create_app`.
"""

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from finegate import _json as fast_json
from finegate.errors import ConfigError, FinegateError, NotFoundError, PermissionDeniedError
from finegate.gateway.config import GatewayConfig
from finegate.gateway.openapi import CHAT_REQUEST, error_responses
from finegate.gateway.service import Gateway, GatewayError, Reply, unauthorized
from finegate.models.openai_wire import error_body, models_list
from finegate.models.types import ModelBackend

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.responses import Response

    from finegate.gateway.ratelimit import RateLimiter
    from finegate.governance import Principal
    from finegate.store.db import Store

__all__ = ["create_app", "serve"]

log = logging.getLogger("finegate.gateway")


class ChatFastPath:
    """Sends chat requests straight to the chat endpoint, past FastAPI's and Starlette's layers.

    The route stays registered (it documents the endpoint in the OpenAPI schema and answers
    other methods with 405), but POSTs to it skip the exception, exit-stack, routing and
    dependency layers: a tenth of the gateway's CPU per request. `create_app` installs it as
    the innermost middleware (embedding apps and tests get it); `serve` also puts it in
    front of the whole FastAPI app, so chat requests skip the middleware FastAPI itself wraps
    around user middleware too (server errors, telemetry, body limit: another ~10%). Whole
    answers are sent as the two ASGI messages themselves, without Starlette's request and
    response objects (~5 us a request); streams go through a `StreamingResponse`. Under
    `serve` the HTTP protocol answers chat requests before any of this (``fast_post_routes``,
    `finegate.models.http_fastpath`: ~3% fewer instructions a request again); this path serves
    embedding apps, tests and servers with an access log. Errors
    are unchanged: `Gateway.chat` turns every failure into an OpenAI-shaped answer itself,
    and the body limit is the endpoint's.

    Args:
        app: The ASGI app everything else goes to.
        endpoint: The chat endpoint: ``(scope, receive)`` -> `Reply`.
    """

    def __init__(self, app: Any, endpoint: Any) -> None:
        self.app = app
        self.endpoint = endpoint
        # `serve`'s HTTP protocol answers these itself (finegate.models.http_fastpath).
        self.fast_post_routes = getattr(app, "fast_post_routes", None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/v1/chat/completions"
        ):
            reply: Reply = await self.endpoint(scope, receive)
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            # Streams must reach the client chunk by chunk: never held.
            if reply.stream is not None:
                await render(reply)(scope, receive, send)
                return
            body = fast_json.dumps(reply.body)
            headers = [(b"content-length", str(len(body)).encode()), *answer_headers(reply)]
            merged = None
            if transport is not None and hasattr(transport, "write"):
                merged = cycle.transport = _OneWrite(transport)  # type: ignore[union-attr]
            try:
                await send({"type": "http.response.start", "status": reply.status,
                            "headers": headers})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
            finally:
                if merged is not None:
                    cycle.transport = transport  # type: ignore[union-attr]
                    merged.flush()
            return
        await self.app(scope, receive, send)


_JSON = (b"content-type", b"application/json")


def answer_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    """The HTTP headers of a whole JSON `Reply`, without its content-length."""
    headers = [_JSON]
    for name, value in reply.headers.items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


def render(reply: Reply) -> "Response":
    """The Starlette response of a `Reply` (JSON, or server-sent events for a stream)."""
    from starlette.responses import Response, StreamingResponse

    if reply.stream is not None:
        return StreamingResponse(
            reply.stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", **reply.headers},
        )
    return Response(fast_json.dumps(reply.body), reply.status, reply.headers, "application/json")


class _OneWrite:
    """Holds a response's writes and hands them to the transport as one (one send call).

    uvicorn writes the status line and headers as soon as the app starts its answer, and the
    body separately: two system calls per answer where one does.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:  # uvicorn asks once per answer: skip `__getattr__`
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def create_app(
    config: GatewayConfig,
    store: Optional["Store"] = None,
    *,
    backends: Mapping[str, ModelBackend] | None = None,
    limiter: Optional["RateLimiter"] = None,
    freeze_gc: bool = False,
    run_dir: Path | None = None,
) -> "FastAPI":
    """Build the gateway app (the `Gateway` is at ``app.state.gateway``).

    Args:
        config: The gateway configuration.
        store: The store; default the process store (``FINEGATE_DB`` / ``FINEGATE_HOME``).
        backends: Pre-built backends by upstream name (tests) instead of loading the URIs.
        limiter: A rate limiter; default from the configuration.
        freeze_gc: Call `gc.freeze` once the gateway has started. A process-wide setting,
            so only the process's owner (`serve`) turns it on, never an embedding app.
        run_dir: The run directory of a multi-worker gateway (`finegate.gateway.workers`):
            usage monitoring goes to its monitor process, metrics are shared through it.
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response

    from finegate.models.http_fastpath import FastPostRoute, WholeAnswer, first_header

    gw = Gateway(config, store, backends=backends, limiter=limiter, run_dir=run_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        if freeze_gc:
            # Everything alive now (modules, config, compiled guards) lives as long as the
            # process; moving it out of the collector's view cut the gateway's p99 latency
            # under load in half (full collections re-scanned it, stalling every request).
            gc.freeze()
        try:
            yield
        finally:
            await gw.aclose()

    app = FastAPI(
        title="finegate gateway",
        version="1",
        description="OpenAI-compatible guard gateway (auth, rate limits, guards, review, logs).",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gateway = gw

    def error(status: int, message: str, type_: str, code: str) -> Response:
        return JSONResponse(error_body(message, type_=type_, code=code), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, str(exc.detail), "invalid_request_error", code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return error(400, "invalid request parameters", "invalid_request_error", "invalid_request")

    def too_large() -> GatewayError:
        return GatewayError(
            413, f"request body is larger than {config.max_body_bytes} bytes",
            "invalid_request_error", "body_too_large",
        )  # fmt: skip

    def too_large_reply() -> Reply:
        """The 413 answer, counted here: the request never reaches `Gateway.chat`'s count."""
        reply = too_large().reply()
        gw.metrics.requests.inc(model="-", status=str(reply.status))
        return reply

    async def read_body(declared: bytes | None, receive: Any) -> bytes:
        limit = config.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            part = message.get("body", b"")
            size += len(part)
            if size > limit:
                raise too_large()
            chunks.append(part)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def chat_reply(scope: Any, receive: Any) -> Reply:
        authorization = declared = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value
        try:
            body = await read_body(declared, receive)
        except GatewayError:  # the only one read_body raises: too large
            return too_large_reply()
        return await gw.chat(body, authorization)

    async def chat_answer(
        body: bytes | None, headers: list[tuple[bytes, bytes]]
    ) -> "WholeAnswer | Response":
        """The chat endpoint as `serve`'s HTTP protocol calls it (body None: too large)."""
        if body is None:
            reply = too_large_reply()
        else:
            authorization = first_header(headers, b"authorization")
            reply = await gw.chat(
                body, None if authorization is None else authorization.decode("latin-1")
            )
        if reply.stream is not None:
            return render(reply)
        return WholeAnswer(reply.status, answer_headers(reply), fast_json.dumps(reply.body))

    chat_responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "a chat.completion (or text/event-stream when stream is true)"},
        202: {"description": "the answer is held for human review"},
        **error_responses(400, 401, 403, 404, 413, 429, 500, 502, 503, 504),
    }

    @app.post(
        "/v1/chat/completions",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CHAT_REQUEST}},
            }
        },
        responses=chat_responses,
    )
    async def chat_completions(request: Request) -> Response:  # reached only past ChatFastPath
        return render(await chat_reply(request.scope, request.receive))

    app.state.chat_endpoint = chat_reply
    app.fast_post_routes = {  # type: ignore[attr-defined]
        b"/v1/chat/completions": FastPostRoute(chat_answer, config.max_body_bytes)
    }
    app.add_middleware(ChatFastPath, endpoint=chat_reply)

    @app.get("/v1/models", responses=error_responses(401))
    async def list_models(request: Request) -> Response:
        try:
            key = await gw.authenticate(request.headers.get("authorization"))
            tier = gw.tier_of(key)
        except GatewayError as exc:
            return render(exc.reply())
        names = [n for n in gw.upstreams if tier.allows_model(n)]
        return JSONResponse(models_list(names, created=0))

    @app.get("/v1/reviews/{review_id}", responses=error_responses(401, 403, 404))
    async def poll_review(review_id: str, request: Request) -> Response:
        from finegate.gateway.chat import pending_body
        from finegate.gateway.records import get_review

        try:
            key = await gw.authenticate(request.headers.get("authorization"))
        except GatewayError as exc:
            return render(exc.reply())
        try:
            review = await asyncio.to_thread(get_review, gw.store, review_id)
        except NotFoundError:
            review = None
        if review is None or review.key_id != key.id:
            return error(404, "no such review for this key", "invalid_request_error", "not_found")
        if review.status == "approved":
            return JSONResponse(review.response)
        if review.status == "denied":
            return error(403, "a reviewer denied this answer", "permission_error", "review_denied")
        return JSONResponse(pending_body(review.id, review.model), status_code=202)

    # -- reviewer / operator endpoints (governance tokens) --------------------------------

    async def principal(request: Request) -> "Principal":
        from finegate.governance import authenticate

        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized()
        try:
            return await asyncio.to_thread(authenticate, gw.store, token.strip())
        except PermissionDeniedError:
            raise unauthorized() from None

    async def admin(request: Request, fn: Any, *args: Any, **kwargs: Any) -> Response:
        try:
            who = await principal(request)
            result = await asyncio.to_thread(fn, gw.store, *args, actor=who, **kwargs)
        except GatewayError as exc:
            return render(exc.reply())
        except PermissionDeniedError as exc:
            return error(403, exc.message, "permission_error", "permission_denied")
        except NotFoundError as exc:
            return error(404, exc.message, "invalid_request_error", "not_found")
        except (ConfigError, FinegateError) as exc:
            return error(409, exc.message, "invalid_request_error", "conflict")
        return JSONResponse(result)

    def _reviews(store: "Store", *, actor: "Principal", status: str | None) -> Any:
        from finegate.gateway.records import list_reviews

        return {"data": [r.to_dict() for r in list_reviews(store, status=status, actor=actor)]}

    def _decide(store: "Store", rid: str, approve: bool, *, actor: "Principal") -> Any:
        from finegate.gateway.records import decide_review

        return decide_review(store, rid, approve, actor=actor).to_dict(content=False)

    def _requests(store: "Store", *, actor: "Principal", limit: int) -> Any:
        from finegate.gateway.records import list_request_log

        return {"data": list_request_log(store, limit=limit, actor=actor)}

    @app.get("/admin/reviews", responses=error_responses(401, 403))
    async def admin_reviews(request: Request, status: str = "pending") -> Response:
        return await admin(request, _reviews, status=status if status != "all" else None)

    @app.post("/admin/reviews/{review_id}/approve", responses=error_responses(401, 403, 404))
    async def admin_approve(review_id: str, request: Request) -> Response:
        return await admin(request, _decide, review_id, True)

    @app.post("/admin/reviews/{review_id}/deny", responses=error_responses(401, 403, 404))
    async def admin_deny(review_id: str, request: Request) -> Response:
        return await admin(request, _decide, review_id, False)

    @app.get("/admin/requests", responses=error_responses(401, 403))
    async def admin_requests(request: Request, limit: int = 100) -> Response:
        return await admin(request, _requests, limit=max(1, min(limit, 1000)))

    # -- operations -----------------------------------------------------------------------

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        if not config.metrics_public:
            try:
                await principal(request)
            except GatewayError as exc:
                return render(exc.reply())
        return PlainTextResponse(gw.render_metrics(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "not ready"}})
    async def readyz() -> Response:
        if gw.is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    return app


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas in this process and in the processes it starts.

    glibc gives each thread that allocates an arena of its own, up to eight per core, and the
    gateway has helper threads beside its event loop (store lookups and polls through
    ``asyncio.to_thread``). Under `benchmarks/load_gateway.py` its RSS grew 4.8 MiB in 300 s
    (320,000 requests) with glibc's default, 0.4 MiB (414,000) with one arena and 0.7 MiB
    (340,000; flat for the last half) with this cap of two, at no measurable CPU cost
    (docs/gateway.md, Performance). The environment variable reaches the workers and the
    request-log writer; ``mallopt`` sets this process, whose allocator is running already. A
    ``MALLOC_ARENA_MAX`` already set wins; elsewhere than glibc this does nothing.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, arenas)


def serve(
    config: GatewayConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run the gateway with uvicorn until interrupted (``config.workers`` processes).

    Raises:
        ConfigError: fastapi/uvicorn are missing, or several workers lack shared state.
    """
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise ConfigError(
            "the gateway needs fastapi and uvicorn", hint="pip install 'finegate[serve]'"
        ) from None
    from finegate.models.http_fastpath import FastPostProtocol

    limit_malloc_arenas()
    # Keep idle client connections longer than load balancers do (uvicorn's default is 5 s,
    # which races with clients reusing a connection just as the server closes it).
    # No proxy-header middleware: the gateway reads neither the client's address nor the
    # scheme, and uvicorn's (on by default, trusting 127.0.0.1) copied every request's
    # headers into a dict to rewrite them (and would hide `fast_post_routes` from the protocol).
    # The HTTP protocol answers chat requests itself, past ASGI (finegate.models.http_fastpath).
    options: dict[str, Any] = {"host": host, "port": port, "log_level": log_level,
                               "access_log": access_log, "timeout_keep_alive": 75,
                               "proxy_headers": False, "http": FastPostProtocol}  # fmt: skip
    if config.workers > 1:
        from finegate.gateway.workers import gateway_run_dir, run_workers

        with gateway_run_dir(config) as run_dir:
            run_workers(config, run_dir, **options)
        return
    # One worker monitors usage in its own process: a monitor process of its own took ~0.06 ms
    # of the event loop's CPU per request but cost ~0.1 ms in the other process, and gave no
    # measurable gain on two cores (docs/gateway.md, Several workers).
    app = create_app(config, freeze_gc=True)
    uvicorn.run(ChatFastPath(app, app.state.chat_endpoint), **options)
