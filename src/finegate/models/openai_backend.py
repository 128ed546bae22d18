"""``openai:BASE_URL#MODEL`` — any OpenAI-compatible chat-completions server.

Works against vLLM, llama.cpp's server, Ollama, OpenAI and ``finegate serve-model``. BASE_URL is
the API root including ``/v1`` (requests go to ``BASE_URL/chat/completions``); MODEL is the
server-side model name, e.g. ``openai:http://127.0.0.1:8000/v1#smollm2``.

Error semantics for a batch (one ``generate`` call):

* **401/403** raise :class:`~finegate.errors.ModelAuthError` at once (every request would fail
  the same way); **404** raises :class:`~finegate.errors.ModelUnavailableError` (wrong base URL
  or model name: again every request would fail).
* **Connection failures** (refused, DNS, connect timeout) are retried; if a request still
  cannot connect after ``max_retries`` the whole batch raises ``ModelUnavailableError``: the
  server is down and the other answers would be errors too.
* **429, 5xx, read timeouts and dropped connections** are retried with exponential backoff and
  full jitter (honouring ``Retry-After``); when one request's retries are exhausted it gets a
  ``ChatResponse(error=..., finish_reason="error")`` and the rest of the batch goes on: one
  overloaded or poisoned request must not discard hours of finished answers.
* **Other 4xx** (e.g. a prompt longer than the context) are that request's fault: an error
  response for it, no retry.
* A **malformed 200 response** raises :class:`~finegate.errors.ModelResponseError`: the server
  is not speaking the protocol, so continuing would only produce garbage.
* Prompts that are not valid Unicode raise :class:`~finegate.errors.ConfigError` before
  anything is sent (see :func:`finegate.models.openai_wire.check_text`).

The API key is read from the environment variable named by ``BackendOptions.api_key_env`` when
the backend is built; it only ever lives in the client's ``Authorization`` header and appears
in no repr, log line, exception or identity.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from finegate import _json as fast_json
from finegate.errors import ConfigError, ModelAuthError, ModelResponseError, ModelUnavailableError
from finegate.models.http_pool import PostAnswer
from finegate.models.http_transport import AiohttpTransport, default_transport
from finegate.models.openai_wire import encode_body, request_to_openai, response_from_openai
from finegate.models.types import ChatRequest, ChatResponse, ModelBackend, ModelIdentity
from finegate.models.uri import BackendOptions
from finegate.plugins import register

__all__ = ["OpenAIBackend", "openai_factory", "parse_openai_spec"]

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429})
_ERROR_TEXT_LIMIT = 300


def parse_openai_spec(spec: str) -> tuple[str, str]:
    """Split ``BASE_URL#MODEL`` and check both parts.

    Raises:
        ConfigError: when the base URL is not http(s) or the model name is missing.
    """
    base_url, sep, model = spec.rpartition("#")
    hint = "use openai:BASE_URL#MODEL, e.g. openai:http://127.0.0.1:8000/v1#smollm2"
    if not sep or not model.strip():
        raise ConfigError(f"openai URI {('openai:' + spec)!r} names no model", hint=hint)
    if not base_url.startswith(("http://", "https://")) or len(base_url.split("://", 1)[1]) == 0:
        raise ConfigError(f"openai URI base URL {base_url!r} is not an http(s) URL", hint=hint)
    return base_url.rstrip("/"), model.strip()


class _Failure:
    """A retryable outcome of one attempt: why, and how long the server asked us to wait."""

    __slots__ = ("connect", "reason", "retry_after")

    def __init__(
        self, reason: str, *, retry_after: float | None = None, connect: bool = False
    ) -> None:
        self.reason = reason
        self.retry_after = retry_after
        self.connect = connect


class _Batch:
    """State shared by the requests of one ``generate`` call."""

    __slots__ = ("aborted",)

    def __init__(self) -> None:
        self.aborted = False


class OpenAIBackend:
    """A client for one model on an OpenAI-compatible server.

    Args:
        base_url: API root including ``/v1``.
        model: Server-side model name.
        options: Concurrency, timeout, retries and the API-key variable name. ``extra`` may
            hold ``backoff_base_s`` (default 0.5), ``backoff_max_s`` (30) and
            ``retry_after_max_s`` (60, the longest ``Retry-After`` honoured).
        uri: The URI to report in :meth:`identity` (built from the parts when omitted).
        transport: An httpx transport (tests pass ``httpx.MockTransport``).
        sleep: Awaitable sleep used for backoff (tests pass a recorder).
        rng: Returns a float in [0, 1) for jitter.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        options: BackendOptions | None = None,
        *,
        uri: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        opts = options or BackendOptions()
        if opts.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {opts.concurrency}")
        if opts.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, not {opts.max_retries}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.uri = uri or f"openai:{self.base_url}#{model}"
        self.url = f"{self.base_url}/chat/completions"
        self.concurrency = opts.concurrency
        self.timeout_s = opts.timeout_s
        self.max_retries = opts.max_retries
        self.api_key_env = opts.api_key_env
        self.backoff_base_s = float(opts.extra.get("backoff_base_s", 0.5))
        self.backoff_max_s = float(opts.extra.get("backoff_max_s", 30.0))
        self.retry_after_max_s = float(opts.extra.get("retry_after_max_s", 60.0))
        self._transport = transport
        self._sleep = sleep
        self._rng = rng
        key = os.environ.get(opts.api_key_env, "") if opts.api_key_env else ""
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "finegate",
        }
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._key = key
        self._client: httpx.AsyncClient | None = None
        self._fast: AiohttpTransport | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.uri!r})"

    def identity(self) -> ModelIdentity:
        """Return the URI and a hash of base URL and model name (all a client can know)."""
        digest = hashlib.sha256(f"{self.base_url}#{self.model}".encode()).hexdigest()
        return ModelIdentity(
            self.uri, "openai", digest, {"base_url": self.base_url, "model": self.model}
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()
        self._loop = None

    def _pool(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        # One client (hence one keep-alive pool) per event loop: connections are bound to the
        # loop that opened them, and the sync facade runs a fresh loop per call.
        loop = asyncio.get_running_loop()
        if self._client is None or self._semaphore is None or self._loop is not loop:
            limits = httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            transport = self._transport or default_transport(self.concurrency)
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout_s),
                limits=limits,
                transport=transport,
            )
            self._fast = transport if isinstance(transport, AiohttpTransport) else None
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._client, self._semaphore

    async def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Send each request, at most ``concurrency`` at a time; answers come back in order.

        Raises:
            ConfigError: a prompt is not valid Unicode (nothing is sent).
            ModelAuthError: the server rejected the API key.
            ModelUnavailableError: the server cannot be reached or does not serve the model.
            ModelResponseError: the server's answer is not a chat completion.
        """
        if not requests:
            return []
        # Encode everything first so a bad prompt fails the batch before any call is paid for.
        bodies = [
            encode_body(request_to_openai(r, self.model, where=f"request {i}"))
            for i, r in enumerate(requests)
        ]
        client, semaphore = self._pool()
        batch = _Batch()
        if len(bodies) == 1:  # the gateway's case: no task to schedule and wait for
            return [await self._one(client, semaphore, bodies[0], batch)]
        tasks = [
            asyncio.ensure_future(self._one(client, semaphore, body, batch)) for body in bodies
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if pending:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Retrieve every exception (asyncio warns about unretrieved ones) and raise the first
        # in request order, so the reported failure does not depend on scheduling.
        errors = [t.exception() for t in tasks if t in done and not t.cancelled()]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return [task.result() for task in tasks]

    async def _one(
        self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, body: bytes, batch: _Batch
    ) -> ChatResponse:
        try:
            return await self._retrying(client, semaphore, body, batch)
        except (ModelAuthError, ModelUnavailableError, ModelResponseError):
            batch.aborted = True
            raise

    async def _retrying(
        self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, body: bytes, batch: _Batch
    ) -> ChatResponse:
        start = time.perf_counter()
        failure: _Failure | None = None
        for attempt in range(self.max_retries + 1):
            if failure is not None:
                await self._sleep(self._delay(attempt - 1, failure.retry_after))
            async with semaphore:
                if batch.aborted:
                    # Another request proved the whole batch will fail (bad key, server
                    # down); requests already queued for a slot must not call it again.
                    raise asyncio.CancelledError
                outcome = await self._attempt(client, body, start)
            if isinstance(outcome, ChatResponse):
                return outcome
            failure = outcome
            log.debug("%s: attempt %d failed: %s", self.uri, attempt + 1, failure.reason)
        assert failure is not None
        attempts = self.max_retries + 1
        if failure.connect:
            raise ModelUnavailableError(
                f"cannot reach {self.url} after {attempts} attempt(s): {failure.reason}",
                hint="check that the server is running and the base URL (including /v1) is right",
            )
        return ChatResponse(
            text="",
            finish_reason="error",
            model=self.model,
            latency_s=time.perf_counter() - start,
            error=f"{failure.reason} (after {attempts} attempt(s))",
        )

    async def _attempt(
        self, client: httpx.AsyncClient, body: bytes, start: float
    ) -> ChatResponse | _Failure:
        resp: httpx.Response | PostAnswer
        try:
            if self._fast is not None:
                resp = await self._fast.post(self.url, self._headers, body, self.timeout_s)
            else:
                resp = await client.post(self.url, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return _Failure(
                f"connection failed ({type(exc).__name__}: {self._redact(exc)})", connect=True
            )
        except httpx.TimeoutException as exc:
            return _Failure(f"timed out after {self.timeout_s:g}s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Failure(f"connection dropped ({type(exc).__name__}: {self._redact(exc)})")
        status = resp.status_code
        if status == 200:
            try:
                data = fast_json.loads(resp.content)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ModelResponseError(
                    f"{self.url} answered 200 with a body that is not JSON: "
                    f"{self._redact(_snippet(resp))}",
                    hint="is this an OpenAI-compatible chat-completions endpoint?",
                ) from None
            try:
                return response_from_openai(
                    data, latency_s=time.perf_counter() - start, default_model=self.model
                )
            except ModelResponseError as exc:
                raise ModelResponseError(
                    f"malformed response from {self.url}: {exc.message}",
                    hint="is this an OpenAI-compatible chat-completions endpoint?",
                ) from None
        detail = self._redact(_server_message(resp))
        if status in (401, 403):
            raise ModelAuthError(
                f"{self.url} rejected the credentials (HTTP {status}: {detail})",
                hint=self._auth_hint(),
            )
        if status == 404:
            raise ModelUnavailableError(
                f"{self.url} answered 404 for model {self.model!r}: {detail}",
                hint="check the base URL (it must include /v1) and the model name after '#'",
            )
        if status in _RETRY_STATUS or status >= 500:
            return _Failure(f"HTTP {status}: {detail}", retry_after=_retry_after(resp))
        return ChatResponse(
            text="",
            finish_reason="error",
            model=self.model,
            latency_s=time.perf_counter() - start,
            error=f"HTTP {status}: {detail}",
        )

    def _redact(self, text: object) -> str:
        # Some proxies echo request headers in their error pages; server text goes into
        # exceptions and stored error responses, so the key is masked before it can.
        out = str(text)
        return out.replace(self._key, "***") if self._key else out

    def _auth_hint(self) -> str:
        if not self.api_key_env:
            return (
                "this server needs an API key: set api_key_env to the name of the "
                "environment variable holding it"
            )
        if "Authorization" not in self._headers:
            return f"set the environment variable {self.api_key_env} to a valid API key"
        return (
            f"the key in the environment variable {self.api_key_env} was refused; "
            "check that it is valid for this server"
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s)
        # Full jitter: spreads retries of many concurrent requests instead of synchronizing
        # them into waves that hit a recovering server together.
        return self._rng() * min(self.backoff_max_s, self.backoff_base_s * 2.0**attempt)


def _retry_after(resp: httpx.Response | PostAnswer) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(resp: httpx.Response | PostAnswer) -> str:
    try:
        data: Any = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _snippet(resp)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:_ERROR_TEXT_LIMIT]
        if isinstance(err, str):
            return err[:_ERROR_TEXT_LIMIT]
        if "detail" in data:
            return str(data["detail"])[:_ERROR_TEXT_LIMIT]
    return _snippet(resp)


def _snippet(resp: httpx.Response | PostAnswer) -> str:
    text = resp.content[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace").strip()
    return repr(text) if text else "empty body"


@register("backend", "openai")
def openai_factory(spec: str, options: BackendOptions) -> ModelBackend:
    """Build an :class:`OpenAIBackend` from ``BASE_URL#MODEL``."""
    base_url, model = parse_openai_spec(spec)
    return OpenAIBackend(base_url, model, options, uri=f"openai:{spec}")
