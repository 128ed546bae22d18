"""The scripted mock backend: replies, regex rules, tool calls, injected errors and latency."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.errors import ConfigError, ModelUnavailableError
from finegate.models import (
    BackendOptions,
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ToolSpec,
    generate_sync,
    load_backend,
)
from finegate.models.mock import MockBackend, MockRule, MockScript


def ask(uri: str, prompt: str, **kw: object) -> str:
    (resp,) = generate_sync(load_backend(uri), [ChatRequest.from_prompt(prompt, **kw)])  # type: ignore[arg-type]
    return resp.text


def test_builtin_scripts() -> None:
    assert ask("mock:echo", "hello") == "hello"
    assert "can't help" in ask("mock:refuse", "anything")
    assert ask("mock:leaky", "hi", system="SECRET-42") == "My instructions say: SECRET-42"


def test_regex_rules_first_match_wins(tmp_path: Path) -> None:
    script = tmp_path / "bot.yaml"
    script.write_text(
        "rules:\n"
        "  - match: '(?i)password'\n    reply: 'no'\n"
        "  - match: 'weather'\n    tool_calls: [{name: get_weather, arguments: {city: Paris}}]\n"
        "default:\n  reply: 'said {last_user}'\n"
    )
    backend = load_backend(f"mock:{script}")
    reqs = [
        ChatRequest.from_prompt("PASSWORD please"),
        ChatRequest.from_prompt("weather?"),
        ChatRequest.from_prompt("other"),
    ]
    a, b, c = generate_sync(backend, reqs)
    assert a.text == "no"
    assert b.finish_reason == "tool_calls" and b.tool_calls[0].name == "get_weather"
    assert b.tool_calls[0].arguments == '{"city": "Paris"}'
    assert c.text == "said other"


def test_tool_script_calls_first_offered_tool() -> None:
    req = ChatRequest(
        messages=(ChatMessage("user", "go"),), tools=(ToolSpec("send_email"), ToolSpec("read_file"))
    )
    (resp,) = generate_sync(load_backend("mock:tool"), [req])
    assert resp.tool_calls[0].name == "send_email"


def test_injected_errors_fail_n_times_then_recover() -> None:
    script = MockScript(
        "flaky",
        rules=(MockRule(match="x", error="unavailable", fail_times=2),),
        default=MockRule(reply="fine"),
    )
    backend = MockBackend(script)
    req = [ChatRequest.from_prompt("x")]
    for _ in range(2):
        with pytest.raises(ModelUnavailableError):
            generate_sync(backend, req)
    # After its two failures the rule stops failing and falls through to its (empty) reply.
    (resp,) = generate_sync(backend, req)
    assert resp.error is None


def test_malformed_response_injection_sets_error() -> None:
    backend = MockBackend(MockScript("bad", default=MockRule(error="response")))
    (resp,) = generate_sync(backend, [ChatRequest.from_prompt("x")])
    assert resp.finish_reason == "error" and resp.error


def test_max_tokens_truncates_with_length_finish() -> None:
    req = ChatRequest.from_prompt("one two three four five", params=GenerationParams(max_tokens=2))
    (resp,) = generate_sync(load_backend("mock:echo"), [req])
    assert resp.text == "one two" and resp.finish_reason == "length"
    assert resp.completion_tokens == 2


def test_identity_hash_depends_on_script() -> None:
    a = load_backend("mock:echo").identity()
    b = load_backend("mock:refuse").identity()
    assert a.backend == "mock" and a.content_hash != b.content_hash
    assert load_backend("mock:echo").identity() == a


def test_script_via_options() -> None:
    script = MockScript("inline", default=MockRule(reply="inline!"))
    backend = load_backend("mock:inline", BackendOptions(extra={"mock_script": script}))
    (resp,) = generate_sync(backend, [ChatRequest.from_prompt("q")])
    assert resp.text == "inline!"


@pytest.mark.parametrize(
    "uri,needle",
    [
        ("mock:nope", "unknown mock model"),
        ("mock:missing.yaml", "not found"),
        ("nonsense:x", "unknown model URI scheme"),
        ("no-scheme", "has no scheme"),
    ],
)
def test_bad_uris_are_clear_errors(uri: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_backend(uri)


def test_bad_script_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - match: '('\n")
    with pytest.raises(ConfigError, match="invalid regex"):
        load_backend(f"mock:{bad}")
    bad.write_text("rules:\n  - mtch: x\n")
    with pytest.raises(ConfigError, match="unknown mock rule field"):
        load_backend(f"mock:{bad}")
    bad.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_backend(f"mock:{bad}")
