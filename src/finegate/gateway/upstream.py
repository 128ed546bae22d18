"""Upstream models behind the gateway: any backend URI, ``registry:`` ones re-resolved live.

A ``registry:NAME@production`` upstream is resolved through the registry at start and then
every ``registry_poll_s`` seconds with one cheap query; when the production version changed
(promotion or rollback) the new backend is loaded and swapped in without a restart, and the
old one is closed once its in-flight requests had time to finish.

Streaming: ``openai:`` upstreams are streamed for real (server-sent events, text deltas as
they arrive); other backends produce complete answers, which are delivered as one delta.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finegate.errors import ModelError, ModelUnavailableError
from finegate.gateway.config import UpstreamConfig
from finegate.models.openai_wire import request_to_openai
from finegate.models.types import ChatRequest, ChatResponse, ModelBackend, ToolCall
from finegate.models.uri import BackendOptions, load_backend, split_uri

if TYPE_CHECKING:
    import httpx

    from finegate.store.db import Store

__all__ = ["Delta", "Upstream"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer; the last one carries finish reason, tool calls, usage."""

    text: str = ""
    final: ChatResponse | None = None


class Upstream:
    """One served model: its backend, re-resolved when it comes from the registry.

    Args:
        config: Name, URI and client settings.
        store: The store (needed for ``registry:`` URIs).
    """

    def __init__(self, config: UpstreamConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store
        self.backend: ModelBackend | None = None
        self.resolved_uri = ""
        self.version: str | None = None
        self._http: httpx.AsyncClient | None = None
        self._old: list[ModelBackend] = []

    @property
    def name(self) -> str:
        """The client-facing model name."""
        return self.config.name

    @property
    def is_registry(self) -> bool:
        """Whether the URI is a ``registry:`` reference."""
        return self.config.uri.startswith("registry:")

    def _options(self) -> BackendOptions:
        c = self.config
        return BackendOptions(
            concurrency=c.concurrency,
            timeout_s=c.timeout_s,
            max_retries=c.max_retries,
            api_key_env=c.api_key_env,
            extra={"backoff_base_s": 0.05, "backoff_max_s": 1.0},
        )

    def _resolve(self) -> tuple[str, str | None]:
        if not self.is_registry:
            return self.config.uri, None
        from finegate.registry import get_version

        assert self.store is not None, "registry upstreams need a store"
        info = get_version(self.store, split_uri(self.config.uri)[1])
        return info.resolved_uri, f"{info.name}@{info.version}"

    async def start(self) -> None:
        """Resolve the URI and load the backend (in a thread: local models load slowly)."""
        uri, version = await asyncio.to_thread(self._resolve)
        self.backend = await asyncio.to_thread(load_backend, uri, self._options())
        self.resolved_uri, self.version = uri, version

    async def refresh(self) -> bool:
        """Re-resolve a registry upstream; swap the backend when the version changed."""
        if not self.is_registry:
            return False
        uri, version = await asyncio.to_thread(self._resolve)
        if version == self.version and uri == self.resolved_uri:
            return False
        new = await asyncio.to_thread(load_backend, uri, self._options())
        old, self.backend = self.backend, new
        log.info("gateway: %s now served by %s", self.name, version)
        self.resolved_uri, self.version = uri, version
        if old is not None:
            self._old.append(old)
            asyncio.get_running_loop().call_later(
                self.config.timeout_s + 1, lambda: asyncio.ensure_future(self._close_old(old))
            )
        return True

    async def _close_old(self, backend: ModelBackend) -> None:
        if backend in self._old:
            self._old.remove(backend)
            await backend.aclose()

    async def generate(self, request: ChatRequest) -> ChatResponse:
        """Answer one request."""
        if self.backend is None:
            raise ModelUnavailableError(f"upstream {self.name} is not loaded")
        (response,) = await self.backend.generate([request])
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Yield the answer as text deltas, then a final `Delta` with the complete response."""
        if split_uri(self.resolved_uri)[0] != "openai":
            response = await self.generate(request)
            if response.error is not None:
                yield Delta(final=response)
                return
            yield Delta(text=response.text)
            yield Delta(final=response)
            return
        async for delta in self._stream_openai(request):
            yield delta

    def _client(self) -> httpx.AsyncClient:
        import httpx

        from finegate.models.http_transport import default_transport

        if self._http is None:
            headers = {"Content-Type": "application/json"}
            env = self.config.api_key_env
            if env and os.environ.get(env):
                headers["Authorization"] = f"Bearer {os.environ[env]}"
            limits = httpx.Limits(
                max_connections=self.config.concurrency,
                max_keepalive_connections=self.config.concurrency,
            )
            self._http = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self.config.timeout_s),
                limits=limits,
                transport=default_transport(self.config.concurrency),
            )
        return self._http

    async def _stream_openai(self, request: ChatRequest) -> AsyncIterator[Delta]:
        import httpx

        from finegate.models.openai_backend import parse_openai_spec

        base, model = parse_openai_spec(split_uri(self.resolved_uri)[1])
        body = request_to_openai(request, model, stream=True)
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish = "stop"
        usage: dict[str, Any] = {}
        try:
            async with self._client().stream("POST", f"{base}/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise ModelError(f"upstream answered HTTP {resp.status_code}")
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    chunk = json.loads(payload)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        piece = delta.get("content")
                        if isinstance(piece, str) and piece:
                            text.append(piece)
                            yield Delta(text=piece)
                        for tc in delta.get("tool_calls") or ():
                            slot = calls.setdefault(
                                int(tc.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                            )
                            fn = tc.get("function") or {}
                            slot["id"] = tc.get("id") or slot["id"]
                            slot["name"] += fn.get("name") or ""
                            slot["arguments"] += fn.get("arguments") or ""
                        if choice.get("finish_reason"):
                            finish = str(choice["finish_reason"])
        except httpx.ConnectError as exc:
            raise ModelUnavailableError(f"cannot reach upstream {self.name}: {exc}") from None
        except httpx.TimeoutException:
            raise ModelUnavailableError(f"upstream {self.name} timed out") from None
        except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
            raise ModelError(
                f"bad stream from upstream {self.name}: {type(exc).__name__}"
            ) from None
        tool_calls = tuple(
            ToolCall(name=c["name"], arguments=c["arguments"], id=c["id"])
            for _, c in sorted(calls.items())
        )
        final = ChatResponse(
            text="".join(text),
            finish_reason="tool_calls"
            if tool_calls
            else ("length" if finish == "length" else "stop"),
            tool_calls=tool_calls,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=model,
        )
        yield Delta(final=final)

    async def aclose(self) -> None:
        """Close the backend and streaming client."""
        for backend in [self.backend, *self._old]:
            if backend is not None:
                await backend.aclose()
        self._old.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
