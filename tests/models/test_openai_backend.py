"""The openai: backend against scripted transports (httpx.MockTransport) and a closed port."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from finegate.errors import ConfigError, ModelAuthError, ModelResponseError, ModelUnavailableError
from finegate.models import (
    BackendOptions,
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ToolCall,
    ToolSpec,
    generate_sync,
    load_backend,
)
from finegate.models.openai_backend import OpenAIBackend, parse_openai_spec

BASE = "http://model.test/v1"
SECRET = "sk-test-Zq9-very-secret-value"


def completion(text: str = "hi", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    body.update(extra)
    return body


class Recorder:
    """Backoff sleeps recorded instead of slept."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)  # still yield, as a real sleep would


def make_backend(
    handler: Callable[[httpx.Request], Any],
    *,
    retries: int = 3,
    concurrency: int = 4,
    api_key_env: str | None = None,
    sleep: Recorder | None = None,
) -> tuple[OpenAIBackend, Recorder]:
    rec = sleep or Recorder()
    opts = BackendOptions(
        concurrency=concurrency,
        max_retries=retries,
        timeout_s=5,
        api_key_env=api_key_env,
        extra={"backoff_base_s": 0.1},
    )
    backend = OpenAIBackend(
        BASE, "m", opts, transport=httpx.MockTransport(handler), sleep=rec, rng=lambda: 0.5
    )
    return backend, rec


def prompt(text: str = "hello") -> ChatRequest:
    return ChatRequest.from_prompt(text)


def last_user(request: httpx.Request) -> str:
    body = json.loads(request.content)
    return str(body["messages"][-1]["content"])


# --------------------------------------------------------------------------- URI and identity


def test_uri_parsing_and_identity() -> None:
    backend = load_backend("openai:http://127.0.0.1:8000/v1/#smollm2")
    assert isinstance(backend, OpenAIBackend)
    assert backend.url == "http://127.0.0.1:8000/v1/chat/completions"
    ident = backend.identity()
    assert ident.backend == "openai"
    assert ident.uri == "openai:http://127.0.0.1:8000/v1/#smollm2"
    assert ident.content_hash == hashlib.sha256(b"http://127.0.0.1:8000/v1#smollm2").hexdigest()
    # Model names may contain '#'-free colons and slashes (hf:embedded, org/model).
    assert parse_openai_spec("http://h:1/v1#hf:embedded") == ("http://h:1/v1", "hf:embedded")


@pytest.mark.parametrize(
    "spec",
    ["http://127.0.0.1:8000/v1", "http://h/v1#", "ftp://h#m", "127.0.0.1:8000/v1#m", "http://#m"],
)
def test_bad_uris_raise_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="openai"):
        load_backend(f"openai:{spec}")


# --------------------------------------------------------------------------- wire format


async def test_request_body_carries_params_tools_and_tool_messages() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=completion("done"))

    backend, _ = make_backend(handler)
    req = ChatRequest(
        messages=(
            ChatMessage("system", "be brief"),
            ChatMessage("user", "weather?"),
            ChatMessage(
                "assistant",
                "",
                tool_calls=(ToolCall("get_weather", '{"city": "Paris"}', id="call_7"),),
            ),
            ChatMessage("tool", '{"temp": 21}', tool_call_id="call_7"),
        ),
        params=GenerationParams(max_tokens=12, temperature=0.7, top_p=0.9, seed=3, stop=("\n\n",)),
        tools=(
            ToolSpec(
                "get_weather",
                "Look up weather",
                {"type": "object", "properties": {"city": {"type": "string"}}},
            ),
        ),
    )
    (resp,) = await backend.generate([req])
    assert resp.text == "done" and resp.error is None
    body = seen[0]
    assert body["model"] == "m"
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        12,
        0.7,
        0.9,
        3,
        ["\n\n"],
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Look up weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assistant, tool = body["messages"][2], body["messages"][3]
    assert assistant["content"] is None
    assert assistant["tool_calls"] == [
        {
            "id": "call_7",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert tool == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_7"}
    await backend.aclose()


async def test_tool_calls_and_usage_are_parsed() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
            }
        ],
    }
    body = completion(
        choices=[{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        usage={"prompt_tokens": 9, "completion_tokens": 4},
    )
    backend, _ = make_backend(lambda r: httpx.Response(200, json=body))
    (resp,) = await backend.generate([prompt()])
    assert resp.text == ""
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == (ToolCall("lookup", '{"q": "x"}', id="call_1"),)
    assert (resp.prompt_tokens, resp.completion_tokens, resp.model) == (9, 4, "m")


async def test_answers_come_back_in_request_order() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        text = last_user(request)
        await asyncio.sleep(0.001 * (10 - int(text)))  # later requests finish first
        return httpx.Response(200, json=completion(text))

    backend, _ = make_backend(handler)
    out = await backend.generate([prompt(str(i)) for i in range(10)])
    assert [r.text for r in out] == [str(i) for i in range(10)]


async def test_concurrency_limit_is_respected() -> None:
    active = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.005)
        active -= 1
        return httpx.Response(200, json=completion())

    backend, _ = make_backend(handler, concurrency=3)
    out = await backend.generate([prompt() for _ in range(12)])
    assert len(out) == 12
    assert peak == 3


# --------------------------------------------------------------------------- retries


async def test_429_honours_retry_after_then_succeeds() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(
                429, headers={"Retry-After": "2"}, json={"error": {"message": "slow down"}}
            )
        return httpx.Response(200, json=completion("ok"))

    backend, rec = make_backend(handler)
    (resp,) = await backend.generate([prompt()])
    assert resp.text == "ok"
    assert rec.sleeps == [2.0]


async def test_5xx_retries_with_exponential_full_jitter_backoff() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json=completion("ok"))

    backend, rec = make_backend(handler, retries=3)
    (resp,) = await backend.generate([prompt()])
    assert resp.text == "ok" and calls == 4
    # rng() = 0.5, base 0.1 s: half of 0.1, 0.2, 0.4.
    assert rec.sleeps == pytest.approx([0.05, 0.1, 0.2])


async def test_exhausted_5xx_fails_only_that_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if last_user(request) == "poison":
            return httpx.Response(500, json={"error": {"message": "kaboom"}})
        return httpx.Response(200, json=completion(last_user(request)))

    backend, rec = make_backend(handler, retries=2)
    out = await backend.generate([prompt("a"), prompt("poison"), prompt("b")])
    assert [r.text for r in out] == ["a", "", "b"]
    bad = out[1]
    assert bad.finish_reason == "error"
    assert bad.error is not None and "HTTP 500" in bad.error and "kaboom" in bad.error
    assert "3 attempt" in bad.error
    assert len(rec.sleeps) == 2


async def test_read_timeout_is_retried_then_reported_per_request() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("read timed out", request=request)

    backend, _ = make_backend(handler, retries=1)
    (resp,) = await backend.generate([prompt()])
    assert calls == 2
    assert resp.finish_reason == "error" and resp.error and "timed out" in resp.error


async def test_connection_refused_raises_unavailable_after_retries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("Connection refused", request=request)

    backend, rec = make_backend(handler, retries=2, concurrency=1)
    with pytest.raises(ModelUnavailableError) as info:
        await backend.generate([prompt(str(i)) for i in range(5)])
    message = str(info.value)
    assert f"{BASE}/chat/completions" in message and "3 attempt" in message
    assert "server is running" in message  # says what to do
    # The first request to give up cancels the rest: not all 5 x 3 attempts are made.
    assert 3 <= calls < 15


async def test_real_closed_port_raises_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(
        f"http://127.0.0.1:{port}/v1",
        "m",
        BackendOptions(max_retries=1, timeout_s=5, extra={"backoff_base_s": 0.001}),
    )
    with pytest.raises(ModelUnavailableError, match=f"127.0.0.1:{port}"):
        await backend.generate([prompt()])
    await backend.aclose()


async def test_400_is_a_per_request_error_without_retry() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"message": "context length exceeded"}})

    backend, rec = make_backend(handler)
    (resp,) = await backend.generate([prompt()])
    assert calls == 1 and rec.sleeps == []
    assert resp.error == "HTTP 400: context length exceeded"


async def test_404_raises_unavailable_naming_the_model() -> None:
    backend, _ = make_backend(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(ModelUnavailableError, match="404 for model 'm'.*include /v1"):
        await backend.generate([prompt()])


# --------------------------------------------------------------------------- auth and secrets


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_raises_immediately_with_env_hint(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FG_TEST_KEY", SECRET)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": {"message": "bad key"}})

    backend, rec = make_backend(handler, api_key_env="FG_TEST_KEY", concurrency=1)
    with pytest.raises(ModelAuthError, match="FG_TEST_KEY") as info:
        await backend.generate([prompt(), prompt()])
    assert calls == 1 and rec.sleeps == []
    assert SECRET not in str(info.value)


async def test_missing_key_hint_says_to_set_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FG_UNSET_KEY", raising=False)
    backend, _ = make_backend(lambda r: httpx.Response(401), api_key_env="FG_UNSET_KEY")
    with pytest.raises(ModelAuthError, match="set the environment variable FG_UNSET_KEY"):
        await backend.generate([prompt()])


async def test_api_key_is_sent_but_never_logged_or_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FG_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)  # every logger, including httpx and httpcore
    sent: list[str] = []
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        sent.append(request.headers.get("authorization", ""))
        if calls == 1:
            return httpx.Response(500, text="retry me")
        if calls == 2:
            return httpx.Response(200, json=completion("ok"))
        raise httpx.ConnectError("refused", request=request)

    backend, _ = make_backend(handler, api_key_env="FG_TEST_KEY", retries=1, concurrency=1)
    (resp,) = await backend.generate([prompt()])
    assert resp.text == "ok"
    assert sent[0] == f"Bearer {SECRET}"
    with pytest.raises(ModelUnavailableError) as info:
        await backend.generate([prompt()])
    shown = [
        caplog.text,
        str(info.value),
        repr(info.value),
        repr(backend),
        json.dumps(backend.identity().to_dict()),
        repr(vars(info.value)),
    ]
    assert caplog.text  # the retry above was logged, so this check looked at something
    for text in shown:
        assert SECRET not in text


async def test_key_echoed_by_a_server_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FG_TEST_KEY", SECRET)

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["authorization"]
        return httpx.Response(400, json={"error": {"message": f"bad header {echoed}"}})

    backend, _ = make_backend(handler, api_key_env="FG_TEST_KEY")
    (resp,) = await backend.generate([prompt()])
    assert resp.error == "HTTP 400: bad header Bearer ***"


# --------------------------------------------------------------------------- malformed input


MALFORMED = [
    (b"<html>oops</html>", "not JSON"),
    (b"[1, 2]", "array, not an object"),
    (json.dumps({"error": {"message": "model overloaded"}}).encode(), "model overloaded"),
    (json.dumps({"choices": []}).encode(), "'choices'"),
    (json.dumps({"choices": ["x"]}).encode(), r"choices\[0\] is a JSON string"),
    (json.dumps({"choices": [{"finish_reason": "stop"}]}).encode(), "'message'"),
    (
        json.dumps(completion(choices=[{"message": {"content": 7}}])).encode(),
        "content is a JSON number",
    ),
    (
        json.dumps(completion(choices=[{"message": {"content": "", "tool_calls": [{}]}}])).encode(),
        r"tool_calls\[0\] has no 'function'",
    ),
    (
        json.dumps(
            completion(
                choices=[
                    {"message": {"content": "", "tool_calls": [{"function": {"arguments": "{}"}}]}}
                ]
            )
        ).encode(),
        "function.name",
    ),
    (json.dumps(completion(usage={"prompt_tokens": -1})).encode(), "usage.prompt_tokens"),
]


@pytest.mark.parametrize(("body", "expected"), MALFORMED)
async def test_malformed_responses_raise_naming_the_problem(body: bytes, expected: str) -> None:
    backend, rec = make_backend(lambda r: httpx.Response(200, content=body))
    with pytest.raises(ModelResponseError, match=expected):
        await backend.generate([prompt()])
    assert rec.sleeps == []


async def test_invalid_surrogate_prompt_is_rejected_before_sending() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=completion())

    backend, _ = make_backend(handler)
    bad = b"caf\xe9 ok".decode("utf-8", "surrogateescape")
    with pytest.raises(ConfigError, match=r"request 1, message 0 \(user\).*character 3"):
        await backend.generate([prompt("fine"), prompt(bad)])
    assert calls == 0


async def test_empty_batch_sends_nothing() -> None:
    backend, _ = make_backend(lambda r: pytest.fail("no request expected"))
    assert await backend.generate([]) == []


def test_sync_facade_works_across_event_loops() -> None:
    backend, _ = make_backend(lambda r: httpx.Response(200, json=completion(last_user(r))))
    # generate_sync runs a fresh loop each time; the pool must follow the loop.
    assert generate_sync(backend, [prompt("one")])[0].text == "one"
    assert generate_sync(backend, [prompt("two")])[0].text == "two"
