"""finegate serve-model: in-process (httpx.ASGITransport) and over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving import uvicorn_thread

from finegate.errors import ModelAuthError, ModelUnavailableError
from finegate.models import (
    BackendOptions,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    GenerationParams,
    ModelIdentity,
    ToolCall,
    ToolSpec,
    load_backend,
)
from finegate.models.mock import MockBackend, MockRule, MockScript
from finegate.models.openai_backend import OpenAIBackend
from finegate.models.server import MicroBatcher, ServerSettings, create_app

SECRET = "sk-serve-Kx7-very-secret-value"
CHAT = "/v1/chat/completions"


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "any", "messages": [{"role": "user", "content": text}], **extra}


class RecordingBackend:
    """Echoes the last user message; records each batch; can be held at a gate."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[ChatRequest]] = []
        self.gate = gate
        self.entered = asyncio.Event()

    def identity(self) -> ModelIdentity:
        return ModelIdentity("test:recording", "test", "0" * 64)

    async def aclose(self) -> None:
        pass

    async def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.batches.append(list(requests))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if any(r.messages[-1].content == "explode" for r in requests):
            raise RuntimeError("backend bug")
        return [
            ChatResponse(text=r.messages[-1].content, prompt_tokens=1, completion_tokens=1)
            for r in requests
        ]


@asynccontextmanager
async def asgi_client(app: Any, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client


def mock_app(name: str = "echo", **settings: Any) -> Any:
    return create_app(load_backend(f"mock:{name}"), ServerSettings(**settings))


# --------------------------------------------------------------------------- endpoints


async def test_chat_completion_has_openai_shape() -> None:
    async with asgi_client(mock_app()) as client:
        resp = await client.post(CHAT, json=user("Hello there", max_tokens=50))
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "mock:echo"
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hello there"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def test_models_and_healthz() -> None:
    async with asgi_client(mock_app(model_name="smollm2")) as client:
        models = (await client.get("/v1/models")).json()
        health = (await client.get("/healthz")).json()
    assert [m["id"] for m in models["data"]] == ["smollm2"]
    assert health == {"status": "ok", "model": "smollm2", "backend": "mock"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not an object"),
        (json.dumps({"model": "m"}).encode(), "'messages' must be a non-empty array"),
        (
            json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(),
            r"messages\[0\].role",
        ),
        (json.dumps(user("x", n=2)).encode(), "'n' = 2"),
        (json.dumps(user("x", temperature=5)).encode(), "'temperature'"),
        (json.dumps(user("x", max_tokens=0)).encode(), "'max_tokens'"),
        (json.dumps(user("x", stop=[1])).encode(), "'stop'"),
        (
            json.dumps(
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image_url", "image_url": {"url": "http://x"}}],
                        }
                    ]
                }
            ).encode(),
            "image_url",
        ),
        (json.dumps(user("x", tools=[{"type": "function"}])).encode(), r"tools\[0\]"),
        (b'{"messages": [{"role": "user", "content": "caf\\udce9"}]}', "not valid Unicode"),
    ],
)
async def test_malformed_requests_get_400(body: bytes, expected: str) -> None:
    async with asgi_client(mock_app()) as client:
        resp = await client.post(CHAT, content=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert re.search(expected, error["message"]), error["message"]


async def test_text_parts_and_developer_role_are_accepted() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "sys"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    }
    async with asgi_client(mock_app()) as client:
        resp = await client.post(CHAT, json=body)
    assert resp.json()["choices"][0]["message"]["content"] == "ab"


async def test_unknown_route_and_method_use_openai_error_shape() -> None:
    async with asgi_client(mock_app()) as client:
        missing = await client.get("/v1/nope")
        wrong_method = await client.get(CHAT)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


async def test_unavailable_backend_gives_503() -> None:
    async with asgi_client(mock_app("unavailable")) as client:
        resp = await client.post(CHAT, json=user("x"))
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "model_unavailable"


async def test_backend_bug_gives_500_and_server_keeps_serving() -> None:
    app = create_app(RecordingBackend())
    async with asgi_client(app) as client:
        bad = await client.post(CHAT, json=user("explode"))
        good = await client.post(CHAT, json=user("fine"))
    assert bad.status_code == 500 and bad.json()["error"]["code"] == "internal_error"
    assert "backend bug" not in bad.text  # internals stay in the server log
    assert good.status_code == 200


async def test_per_request_model_error_is_500_and_client_reports_it() -> None:
    script = MockScript(
        "flaky",
        rules=(MockRule(match="broken", error="response"),),
        default=MockRule(reply="{last_user}"),
    )
    app = create_app(MockBackend(script))
    async with asgi_client(app) as client:
        resp = await client.post(CHAT, json=user("broken"))
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "model_error"

    async def no_sleep(_: float) -> None:
        pass

    backend = OpenAIBackend(
        "http://test/v1",
        "flaky",
        BackendOptions(max_retries=1),
        transport=httpx.ASGITransport(app=app),
        sleep=no_sleep,
    )
    ok, broken = await backend.generate(
        [ChatRequest.from_prompt("fine"), ChatRequest.from_prompt("broken")]
    )
    assert ok.text == "fine" and ok.error is None
    assert broken.finish_reason == "error"
    assert broken.error is not None and "malformed response" in broken.error
    await backend.aclose()


async def test_streaming_sends_text_finish_and_done() -> None:
    async with asgi_client(mock_app()) as client:
        resp = await client.post(
            CHAT, json=user("streamed words", stream=True, stream_options={"include_usage": True})
        )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in resp.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "streamed words"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "stop"]
    assert chunks[-1]["usage"]["completion_tokens"] == 2


# --------------------------------------------------------------------------- auth


async def test_api_key_is_required_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ServerSettings(api_key=SECRET)
    app = create_app(load_backend("mock:echo"), settings)
    async with asgi_client(app) as anon:
        assert (await anon.post(CHAT, json=user("x"))).status_code == 401
        assert (await anon.get("/v1/models")).status_code == 401
        assert (await anon.get("/healthz")).status_code == 200
    async with asgi_client(app, authorization="Bearer wrong") as wrong:
        denied = await wrong.post(CHAT, json=user("x"))
    assert denied.json()["error"]["code"] == "invalid_api_key"
    async with asgi_client(app, authorization=f"Bearer {SECRET}") as ok:
        assert (await ok.post(CHAT, json=user("x"))).status_code == 200
    assert SECRET not in repr(settings)
    assert SECRET not in caplog.text and SECRET not in denied.text


# --------------------------------------------------------------------------- tool calls


async def test_tool_calls_round_trip_through_server_and_client() -> None:
    recorder = RecordingBackend()
    tool_app = mock_app("tool")
    echo_app = create_app(recorder)
    opts = BackendOptions(max_retries=0)
    tools = (
        ToolSpec(
            "get_weather",
            "Weather by city",
            {"type": "object", "properties": {"city": {"type": "string"}}},
        ),
    )
    asked = ChatRequest(messages=(ChatMessage("user", "weather in Paris?"),), tools=tools)

    # The model's tool call travels server -> client.
    client = OpenAIBackend(
        "http://test/v1", "mock:tool", opts, transport=httpx.ASGITransport(app=tool_app)
    )
    (resp,) = await client.generate([asked])
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == (ToolCall("get_weather", "{}", id="call_0"),)
    await client.aclose()

    # The call and its result travel client -> server -> backend unchanged.
    follow_up = ChatRequest(
        messages=(
            *asked.messages,
            ChatMessage("assistant", "", tool_calls=resp.tool_calls),
            ChatMessage("tool", '{"temp": 21}', tool_call_id="call_0"),
        ),
        tools=tools,
    )
    client = OpenAIBackend("http://test/v1", "m", opts, transport=httpx.ASGITransport(app=echo_app))
    (answer,) = await client.generate([follow_up])
    assert answer.error is None
    (received,) = recorder.batches[0]
    assert received.messages == follow_up.messages
    assert received.tools == tools
    await client.aclose()


# --------------------------------------------------------------------------- micro-batching


async def test_requests_queued_behind_a_running_batch_form_one_batch() -> None:
    gate = asyncio.Event()
    backend = RecordingBackend(gate)
    batcher = MicroBatcher(backend, window_s=0, max_batch=16, max_concurrent=1)
    first = asyncio.create_task(batcher.submit(ChatRequest.from_prompt("first")))
    await backend.entered.wait()
    rest = [asyncio.create_task(batcher.submit(ChatRequest.from_prompt(f"r{i}"))) for i in range(5)]
    while batcher.queued < 5:
        await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(first, *rest)
    assert [a.text for a in answers] == ["first", "r0", "r1", "r2", "r3", "r4"]
    assert [len(b) for b in backend.batches] == [1, 5]
    await batcher.aclose()


async def test_max_batch_splits_and_errors_stay_in_their_batch() -> None:
    gate = asyncio.Event()
    backend = RecordingBackend(gate)
    batcher = MicroBatcher(backend, window_s=0, max_batch=2, max_concurrent=1)
    blocker = asyncio.create_task(batcher.submit(ChatRequest.from_prompt("block")))
    await backend.entered.wait()
    prompts = ["a", "explode", "c", "d"]
    tasks = [asyncio.create_task(batcher.submit(ChatRequest.from_prompt(p))) for p in prompts]
    while batcher.queued < 4:
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
    assert [len(b) for b in backend.batches] == [1, 2, 2]
    # "a" shared its batch with "explode", so it gets the batch's error; the next batch
    # ("c", "d") is unaffected.
    assert [type(r).__name__ for r in results[1:3]] == ["RuntimeError", "RuntimeError"]
    assert [r.text for r in results[3:] if isinstance(r, ChatResponse)] == ["c", "d"]
    await batcher.aclose()


async def test_cancelled_request_is_skipped_and_worker_survives() -> None:
    gate = asyncio.Event()
    backend = RecordingBackend(gate)
    batcher = MicroBatcher(backend, window_s=0, max_concurrent=1)
    blocker = asyncio.create_task(batcher.submit(ChatRequest.from_prompt("block")))
    await backend.entered.wait()
    gone = asyncio.create_task(batcher.submit(ChatRequest.from_prompt("gone")))
    kept = asyncio.create_task(batcher.submit(ChatRequest.from_prompt("kept")))
    while batcher.queued < 2:
        await asyncio.sleep(0)
    gone.cancel()  # a client that disconnected while queued
    gate.set()
    assert (await kept).text == "kept"
    await blocker
    assert [r.messages[-1].content for r in backend.batches[1]] == ["kept"]
    assert (await batcher.submit(ChatRequest.from_prompt("later"))).text == "later"
    await batcher.aclose()


async def test_concurrent_requests_each_get_their_own_answer() -> None:
    app = mock_app(batch_window_s=0.002, max_batch=8)
    async with asgi_client(app) as client:
        resps = await asyncio.gather(
            *(client.post(CHAT, json=user(f"prompt {i}")) for i in range(30))
        )
    texts = [r.json()["choices"][0]["message"]["content"] for r in resps]
    assert texts == [f"prompt {i}" for i in range(30)]
    assert 1 <= app.state.batcher.batches <= 30


# --------------------------------------------------------------------------- real sockets


class _ClientRecorder:
    """ASGI wrapper recording the client address of every request (one per TCP connection)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clients: set[tuple[str, int]] = set()
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == CHAT:
            self.clients.add(tuple(scope["client"]))
            self.requests += 1
        await self.app(scope, receive, send)


@contextmanager
def served_v1(app: Any, **config: Any) -> Iterator[str]:
    """``app`` on a real socket: its ``/v1`` base URL."""
    with uvicorn_thread(app, **config) as (port, _):
        yield f"http://127.0.0.1:{port}/v1"


async def test_openai_backend_against_real_server_reuses_connections() -> None:
    recorder = _ClientRecorder(mock_app(batch_window_s=0.002))
    with served_v1(recorder) as base:
        backend = load_backend(
            f"openai:{base}#mock:echo", BackendOptions(concurrency=4, max_retries=0)
        )
        out = await backend.generate([ChatRequest.from_prompt(f"q{i}") for i in range(40)])
        again = await backend.generate([ChatRequest.from_prompt("once more")])
        await backend.aclose()
    assert [r.text for r in out] == [f"q{i}" for i in range(40)]
    assert again[0].text == "once more" and again[0].model == "mock:echo"
    assert recorder.requests == 41
    # Keep-alive: 41 requests over at most `concurrency` TCP connections.
    assert 1 <= len(recorder.clients) <= 4


async def test_tool_calls_over_a_real_socket() -> None:
    with served_v1(mock_app("tool")) as base:
        backend = load_backend(f"openai:{base}#mock:tool", BackendOptions(max_retries=0))
        request = ChatRequest(
            messages=(ChatMessage("user", "lookup"),), tools=(ToolSpec("search"),)
        )
        (resp,) = await backend.generate([request])
        await backend.aclose()
    assert resp.tool_calls == (ToolCall("search", "{}", id="call_0"),)


def without_ids(body: bytes) -> Any:
    """An answer's JSON (each event's, for a stream) without its random id and timestamp."""
    if body.startswith(b"data: "):
        events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
        return [without_ids(e) if e != b"[DONE]" else "[DONE]" for e in events]
    data = json.loads(body)
    if isinstance(data, dict):
        data.pop("id", None)
        data.pop("created", None)
    return data


async def test_the_fast_http_path_answers_chat_like_the_fastapi_route() -> None:
    """`serve` runs the app under FastPostProtocol: chat answers are those of the route."""
    requests: list[tuple[dict[str, str], bytes]] = [
        ({"Authorization": f"Bearer {SECRET}"}, json.dumps(user("same answer")).encode()),
        ({"Authorization": f"Bearer {SECRET}"}, json.dumps(user("s", stream=True)).encode()),
        ({"Authorization": "Bearer wrong"}, json.dumps(user("x")).encode()),
        ({"Authorization": f"Bearer {SECRET}"}, b"{not json"),
        ({"Authorization": f"Bearer {SECRET}"}, json.dumps(user("x" * 300)).encode()),
    ]
    app = mock_app(api_key=SECRET, batch_window_s=0, max_body_bytes=200)
    async with asgi_client(app) as client:
        routed = [await client.post(CHAT, content=b, headers=h) for h, b in requests]
    protocol = {"http": "finegate.models.http_fastpath:FastPostProtocol", "access_log": False,
                "proxy_headers": False}  # fmt: skip
    with served_v1(mock_app(api_key=SECRET, batch_window_s=0, max_body_bytes=200),
                        **protocol) as base:  # fmt: skip
        async with httpx.AsyncClient() as client:
            fast = [await client.post(f"{base}/chat/completions", content=b, headers=h)
                    for h, b in requests]  # fmt: skip
    assert [r.status_code for r in fast] == [r.status_code for r in routed] == [
        200, 200, 401, 400, 413
    ]  # fmt: skip
    for a, b in zip(fast, routed, strict=True):
        assert without_ids(a.content) == without_ids(b.content)
        assert a.headers["content-type"] == b.headers["content-type"]
    assert fast[0].json()["choices"][0]["message"]["content"] == "same answer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cli_server(
    uri: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None, startup_s: float = 60
) -> Iterator[str]:
    """Run ``finegate serve-model`` in a subprocess; yield its base URL."""
    port = _free_port()
    log_path = tmp_path / "serve.log"
    cmd = [
        sys.executable,
        "-c",
        "from finegate.cli.main import run; run()",
        "serve-model",
        uri,
        "--port",
        str(port),
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve-model exited {proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve-model did not start: {log_path.read_text()}")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_cli_serve_model_with_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"FG_SERVE_KEY": SECRET}
    with cli_server(
        "mock:echo", tmp_path, "--api-key-env", "FG_SERVE_KEY", "--model-name", "echo", env=env
    ) as base:
        monkeypatch.setenv("FG_CLIENT_KEY", SECRET)
        good = load_backend(f"openai:{base}#echo", BackendOptions(api_key_env="FG_CLIENT_KEY"))
        (resp,) = await good.generate([ChatRequest.from_prompt("over the wire")])
        await good.aclose()
        monkeypatch.delenv("FG_CLIENT_KEY")
        anon = load_backend(f"openai:{base}#echo", BackendOptions(api_key_env="FG_CLIENT_KEY"))
        with pytest.raises(ModelAuthError, match="FG_CLIENT_KEY") as info:
            await anon.generate([ChatRequest.from_prompt("x")])
        await anon.aclose()
    assert resp.text == "over the wire" and resp.model == "echo"
    assert SECRET not in str(info.value)
    assert SECRET not in (tmp_path / "serve.log").read_text()


def test_cli_serve_model_rejects_missing_key_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FG_NOT_SET"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from finegate.cli.main import run; run()",
            "serve-model",
            "mock:echo",
            "--api-key-env",
            "FG_NOT_SET",
            "--port",
            str(_free_port()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "FG_NOT_SET is not set" in proc.stderr and "Traceback" not in proc.stderr


async def test_unreachable_server_after_shutdown(tmp_path: Path) -> None:
    with cli_server("mock:echo", tmp_path) as base:
        pass
    backend = load_backend(
        f"openai:{base}#mock:echo", BackendOptions(max_retries=1, extra={"backoff_base_s": 0.001})
    )
    with pytest.raises(ModelUnavailableError, match="cannot reach"):
        await backend.generate([ChatRequest.from_prompt("x")])


@pytest.mark.slow
async def test_serve_embedded_model_over_http(tmp_path: Path) -> None:
    # Needs src/finegate/models/hf.py and the embedded model (installed by `make test`).
    with cli_server(
        "hf:embedded", tmp_path, "--model-name", "smollm2", "--log-level", "warning", startup_s=600
    ) as base:
        raw = httpx.post(
            f"{base}/chat/completions",
            timeout=300,
            json={
                "model": "smollm2",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "Say hello."}],
            },
        )
        backend = load_backend(
            f"openai:{base}#smollm2", BackendOptions(timeout_s=300, max_retries=0)
        )
        params = GenerationParams(max_tokens=16)
        out = await backend.generate(
            [ChatRequest.from_prompt(f"Count to {i}.", params=params) for i in range(3, 6)]
        )
        await backend.aclose()
    assert raw.status_code == 200, raw.text
    assert raw.json()["choices"][0]["message"]["content"].strip()
    for r in out:
        assert r.error is None and r.text.strip() and 0 < r.completion_tokens <= 16, r
    assert {r.model for r in out} == {"smollm2"}
