"""The aiohttp-backed transport against a real HTTP server on a local port.

The OpenAI backend and the gateway's streaming client use it whenever aiohttp is installed,
so the httpx semantics they rely on (status, headers, decoded bodies, streaming, the httpx
exception types) are checked here over real sockets, not scripted transports.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

from finegate.models.http_transport import AiohttpTransport, default_transport
from finegate.models.openai_backend import OpenAIBackend
from finegate.models.sync import generate_sync
from finegate.models.types import ChatRequest
from finegate.models.uri import BackendOptions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "c1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }  # fmt: skip


def prompt(text: str = "hi") -> ChatRequest:
    return ChatRequest.from_prompt(text)


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on a free port; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def backend(base: str, **opts: Any) -> OpenAIBackend:
    options = BackendOptions(extra={"backoff_base_s": 0.001, "backoff_max_s": 0.01}, **opts)
    return OpenAIBackend(f"{base}/v1", "m", options)


def test_default_transport_is_aiohttp_unless_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(default_transport(8), AiohttpTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert default_transport(8) is None  # httpx's own transport honours proxies exactly


async def test_backend_round_trip_sends_headers_and_body(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, dict(request.headers), await request.json()))
        return web.json_response(completion("pong"))

    monkeypatch.setenv("FG_TEST_KEY", "sk-transport-test")
    async with server(handler) as base:
        be = backend(base, api_key_env="FG_TEST_KEY")
        assert be._fast is None  # built lazily, on the first call
        (resp,) = await be.generate([prompt("ping")])
        assert isinstance(be._fast, AiohttpTransport)  # the direct POST path was taken
        await be.aclose()
    assert resp.text == "pong" and resp.completion_tokens == 1
    path, headers, body = seen[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-transport-test"
    assert headers["Content-Type"] == "application/json"
    assert body["model"] == "m" and body["messages"][-1]["content"] == "ping"


async def test_gzip_bodies_are_decoded_and_5xx_is_retried() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        raw = gzip.compress(json.dumps(completion("zipped")).encode())
        return web.Response(
            body=raw, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with server(handler) as base:
        be = backend(base, max_retries=2)
        (resp,) = await be.generate([prompt()])
        await be.aclose()
    assert calls == 2 and resp.text == "zipped" and resp.error is None


async def test_read_timeout_and_dropped_connection_are_per_request_errors() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response(completion("late"))

    async with server(slow) as base:
        be = backend(base, max_retries=0, timeout_s=0.3)
        (resp,) = await be.generate([prompt()])
        await be.aclose()
    assert resp.finish_reason == "error" and "timed out" in (resp.error or "")

    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # no status line at all
        return web.Response()

    async with server(hang_up) as base:
        be = backend(base, max_retries=1)
        (resp,) = await be.generate([prompt()])
        await be.aclose()
    assert resp.finish_reason == "error" and "connection dropped" in (resp.error or "")
    assert "2 attempt" in (resp.error or "")


async def test_streaming_yields_chunks_as_they_arrive() -> None:
    release = asyncio.Event()

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Up": "1"})
        await resp.prepare(request)
        await resp.write(b'data: {"n": 1}\n\n')
        await release.wait()  # the client must see chunk 1 before chunk 2 exists
        await resp.write(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
        await resp.write_eof()
        return resp

    lines: list[str] = []

    async def read(base: str) -> None:
        async with httpx.AsyncClient(transport=AiohttpTransport(max_connections=2)) as client:
            async with client.stream("POST", f"{base}/v1/chat/completions", json={}) as r:
                assert r.status_code == 200 and r.headers["x-up"] == "1"
                async for line in r.aiter_lines():
                    if line:
                        lines.append(line)
                        release.set()

    async with server(sse) as base:
        # A transport that buffered the whole body would wait forever for chunk 2.
        await asyncio.wait_for(read(base), timeout=10)
    assert lines == ['data: {"n": 1}', 'data: {"n": 2}', "data: [DONE]"]


async def test_connect_errors_map_to_httpx_types() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async with server(ok) as base:
        pass  # the port is closed again now
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{base}/v1/models")
        with pytest.raises(httpx.ConnectError):
            await AiohttpTransport().post(f"{base}/x", {}, b"{}", 1.0)


def test_sync_facade_gets_a_pool_per_event_loop() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return web.json_response(completion(body["messages"][-1]["content"]))

    async def main() -> None:
        async with server(handler) as base:
            be = backend(base)
            # generate_sync runs a fresh loop per call, in a worker thread here.
            one = await asyncio.to_thread(generate_sync, be, [prompt("one")])
            two = await asyncio.to_thread(generate_sync, be, [prompt("two")])
            assert [one[0].text, two[0].text] == ["one", "two"]

    asyncio.run(main())
