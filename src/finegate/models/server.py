"""``finegate serve-model``: any backend as an OpenAI-compatible HTTP server.

Endpoints: ``POST /v1/chat/completions`` (JSON, or server-sent events when ``stream`` is true:
the finished text in one chunk, a finish chunk, then ``[DONE]``), ``GET /v1/models`` and
``GET /healthz`` (never needs the API key, for load balancers). Errors use OpenAI's body shape
``{"error": {"message", "type", "param", "code"}}``: 400 malformed request, 401 bad key,
404/405 unknown route, 413 body over ``max_body_bytes``, 500 model or server error, 503 model
unavailable. Chat requests are answered by the HTTP protocol itself when `serve` runs the app
(`finegate.models.http_fastpath`), by the FastAPI route otherwise: one function behind both.

Concurrent requests are micro-batched: requests arriving within ``batch_window_s`` of the
first (or while the previous batch is still running) are handed to ``backend.generate`` as one
batch, up to ``max_batch``. A local model answers a batch of 16 in little more than the time of
one, so this is what makes it fast under concurrent load. At most ``max_concurrent_batches``
batches run at once (default 1: a single GPU gains nothing from two competing batches), except
for a backend that batches concurrent calls itself (``batch_slots``, the local ``hf:`` one):
its batches go to it as they form and join its running batch.

FastAPI and uvicorn are imported inside the functions, so importing this module is cheap.
This module deliberately has no ``from __future__ import annotations``: FastAPI reads the
endpoint annotations at runtime, and ``Request`` is only imported inside :func:`create_app`.
"""

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finegate import _json as fast_json
from finegate.errors import ConfigError, ModelError, ModelUnavailableError
from finegate.models.openai_wire import (
    WireRequestError,
    error_body,
    models_list,
    new_completion_id,
    request_from_openai,
    response_to_openai,
    stream_chunks,
)
from finegate.models.types import ChatRequest, ChatResponse, ModelBackend
from finegate.models.uri import BackendOptions, load_backend

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["MicroBatcher", "ServerSettings", "create_app", "read_api_key", "serve"]

log = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches and whom it serves.

    Attributes:
        model_name: The id reported by ``/v1/models`` and in responses (default: the URI).
        api_key: When set, every ``/v1`` request needs ``Authorization: Bearer <key>``.
        batch_window_s: How long the first request of a batch waits for company.
        max_batch: Largest batch handed to the backend.
        max_concurrent_batches: Batches the backend runs at once.
        max_body_bytes: Largest request body accepted (413 beyond it).
    """

    model_name: str | None = None
    api_key: str | None = None
    batch_window_s: float = 0.005
    max_batch: int = 16
    max_concurrent_batches: int = 1
    max_body_bytes: int = 16 * 1024 * 1024

    def __repr__(self) -> str:
        # The key must never reach a log line through a repr of the settings.
        key = "'***'" if self.api_key else "None"
        return (
            f"ServerSettings(model_name={self.model_name!r}, api_key={key}, "
            f"batch_window_s={self.batch_window_s}, max_batch={self.max_batch}, "
            f"max_concurrent_batches={self.max_concurrent_batches})"
        )


class MicroBatcher:
    """Gathers concurrent requests into backend batches.

    One worker task (started on first use, in the server's event loop) waits for a free batch
    slot, takes the first queued request, waits ``window_s`` unless the queue already holds a
    full batch, drains the queue and runs the batch. Each caller awaits its own future, so an
    exception raised by ``generate`` reaches every request of that batch and no other.
    """

    def __init__(
        self,
        backend: ModelBackend,
        *,
        window_s: float = 0.005,
        max_batch: int = 16,
        max_concurrent: int = 1,
    ) -> None:
        if max_batch < 1 or max_concurrent < 1 or window_s < 0:
            raise ConfigError(
                "max_batch and max_concurrent_batches must be >= 1 and the batch window >= 0"
            )
        self.backend = backend
        self.window_s = window_s
        self.max_batch = max_batch
        self.max_concurrent = max_concurrent
        self.batches = 0
        self._queue: asyncio.Queue[tuple[ChatRequest, asyncio.Future[ChatResponse]]] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not yet handed to the backend)."""
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, request: ChatRequest) -> ChatResponse:
        """Queue one request and wait for its answer."""
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(self.max_concurrent)
            self._worker = asyncio.create_task(self._work(), name="finegate-microbatcher")
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((request, future))
        return await future

    async def aclose(self) -> None:
        """Stop the worker and wait for running batches."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _work(self) -> None:
        assert self._queue is not None and self._slots is not None
        queue, slots = self._queue, self._slots
        while True:
            await slots.acquire()
            try:
                batch = [await queue.get()]
                if self.window_s > 0 and queue.qsize() < self.max_batch - 1:
                    await asyncio.sleep(self.window_s)
                while len(batch) < self.max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
            except BaseException:
                slots.release()
                raise
            task = asyncio.create_task(self._run(batch, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(
        self,
        batch: Sequence[tuple[ChatRequest, asyncio.Future[ChatResponse]]],
        slots: asyncio.Semaphore,
    ) -> None:
        try:
            live = [(r, f) for r, f in batch if not f.done()]  # skip disconnected clients
            if not live:
                return
            self.batches += 1
            try:
                responses = await self.backend.generate([r for r, _ in live])
                if len(responses) != len(live):
                    raise ModelError(
                        f"backend returned {len(responses)} responses for a batch of {len(live)}"
                    )
            except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                return
            for (_, future), response in zip(live, responses, strict=True):
                if not future.done():
                    future.set_result(response)
        finally:
            slots.release()


def read_api_key(env_name: str | None) -> str | None:
    """Return the key held in the environment variable ``env_name`` (None when not asked).

    Raises:
        ConfigError: when the variable is named but unset or empty.
    """
    if not env_name:
        return None
    key = os.environ.get(env_name, "")
    if not key:
        raise ConfigError(
            f"environment variable {env_name} is not set or empty",
            hint=f"export {env_name}=<key> or leave out --api-key-env",
        )
    return key


def create_app(backend: ModelBackend, settings: ServerSettings | None = None) -> "FastAPI":
    """Build the FastAPI app serving ``backend``.

    Args:
        backend: Any model backend; the app closes it on shutdown.
        settings: Name, API key and batching settings.
    """
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse

    from finegate.models.http_fastpath import FastPostRoute, WholeAnswer, first_header

    cfg = settings or ServerSettings()
    model_id = cfg.model_name or backend.identity().uri
    created = int(time.time())
    # A backend with its own decode loop (hf:) merges batches as they arrive, so a batch must
    # not wait for the previous one to end: it would keep freed slots empty.
    slots = int(getattr(backend, "batch_slots", 0))
    batcher = MicroBatcher(
        backend,
        window_s=cfg.batch_window_s,
        max_batch=cfg.max_batch,
        max_concurrent=max(cfg.max_concurrent_batches, slots),
    )
    expected = f"Bearer {cfg.api_key}".encode() if cfg.api_key else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.aclose()
        await backend.aclose()

    app = FastAPI(
        title="finegate serve-model",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.model_id = model_id

    Answer = tuple[int, dict[str, Any]]

    def failure(status: int, message: str, type_: str, code: str | None = None) -> Answer:
        return status, error_body(message, type_=type_, code=code)

    def error(status: int, message: str, type_: str, code: str | None = None) -> Response:
        return JSONResponse(error_body(message, type_=type_, code=code), status_code=status)

    def key_refused(authorization: bytes) -> Answer | None:
        """The 401 answer when a key is required and ``authorization`` does not carry it."""
        if expected is None or hmac.compare_digest(authorization, expected):
            return None
        return failure(
            401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
            "invalid_request_error", "invalid_api_key",
        )  # fmt: skip

    def unauthorized(request: Request) -> Response | None:
        # Header values arrive decoded as latin-1: encoding them back gives the raw bytes.
        refused = key_refused(request.headers.get("authorization", "").encode("latin-1"))
        return None if refused is None else JSONResponse(refused[1], status_code=refused[0])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return error(
            exc.status_code,
            str(exc.detail),
            "invalid_request_error",
            "not_found" if exc.status_code == 404 else None,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": model_id, "backend": backend.identity().backend}

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        denied = unauthorized(request)
        if denied is not None:
            return denied
        return JSONResponse(models_list([model_id], created=created))

    async def chat_answer(body: bytes | None, authorization: bytes) -> "Answer | Response":
        """One chat request: (status, JSON body) or a `StreamingResponse`; body None: too large."""
        refused = key_refused(authorization)
        if refused is not None:
            return refused
        if body is None or len(body) > cfg.max_body_bytes:
            return failure(
                413, f"request body is larger than {cfg.max_body_bytes} bytes",
                "invalid_request_error", "body_too_large",
            )  # fmt: skip
        try:
            data = fast_json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            return failure(
                400, f"request body is not valid JSON: {exc}", "invalid_request_error",
                "invalid_json",
            )  # fmt: skip
        try:
            chat, stream = request_from_openai(data)
        except WireRequestError as exc:
            return failure(400, exc.message, "invalid_request_error", "invalid_request")
        try:
            response = await batcher.submit(chat)
        except ModelUnavailableError as exc:
            return failure(
                503, f"model unavailable: {exc}", "service_unavailable", "model_unavailable"
            )
        except ConfigError as exc:
            return failure(400, str(exc), "invalid_request_error", "invalid_request")
        except ModelError as exc:
            return failure(500, f"model error: {exc}", "server_error", "model_error")
        except Exception:  # noqa: BLE001 - a bug must answer 500, not kill the connection
            log.exception("serve-model: backend failed")
            return failure(
                500, "internal server error (see the server log)", "server_error", "internal_error"
            )
        if response.error is not None:
            return failure(500, f"model error: {response.error}", "server_error", "model_error")
        completion_id = new_completion_id()
        if not stream:
            return 200, response_to_openai(response, model_id, completion_id=completion_id)
        options = data.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunks = stream_chunks(
            response, model_id, include_usage=include_usage, completion_id=completion_id
        )

        async def events() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield b"data: " + fast_json.dumps(chunk) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        answer = await chat_answer(
            await request.body(), request.headers.get("authorization", "").encode("latin-1")
        )
        if isinstance(answer, Response):
            return answer
        return JSONResponse(answer[1], status_code=answer[0])

    async def chat_fast(body: bytes | None, headers: list[tuple[bytes, bytes]]) -> Any:
        answer = await chat_answer(body, first_header(headers, b"authorization") or b"")
        if isinstance(answer, Response):
            return answer
        return WholeAnswer(answer[0], [_JSON], fast_json.dumps(answer[1]))

    # `serve`'s HTTP protocol answers chat requests itself (finegate.models.http_fastpath):
    # past FastAPI's routing and Starlette's request and response objects.
    app.fast_post_routes = {  # type: ignore[attr-defined]
        b"/v1/chat/completions": FastPostRoute(chat_fast, cfg.max_body_bytes)
    }
    return app


def serve(
    uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServerSettings | None = None,
    options: BackendOptions | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Load the backend a URI names and serve it with uvicorn until interrupted.

    Args:
        uri: Any model URI (``mock:echo``, ``hf:embedded``, ...).
        host: Interface to bind; non-loopback hosts without an API key get a warning.
        port: TCP port.
        settings: Name, API key and batching settings.
        options: :class:`~finegate.models.uri.BackendOptions` for loading the backend.
        log_level: uvicorn's log level.
        access_log: Log one line per request.

    Raises:
        ConfigError: the URI is invalid or uvicorn/fastapi are not installed.
        ModelError: the model cannot be loaded.
    """
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise ConfigError(
            "serve-model needs fastapi and uvicorn", hint="pip install 'finegate[serve]'"
        ) from None

    cfg = settings or ServerSettings()
    if cfg.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving %s on %s without an API key: anyone who can reach this host can "
            "use the model (set --api-key-env)",
            uri,
            host,
        )
    from finegate.models.http_fastpath import FastPostProtocol

    backend = load_backend(uri, options)
    app = create_app(backend, cfg)
    # No proxy-header middleware: nothing here reads the client's address or scheme, and the
    # middleware would hide the app's ``fast_post_routes`` from the HTTP protocol.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log,
                proxy_headers=False, http=FastPostProtocol)  # fmt: skip
