"""``mock:NAME`` — a scripted, deterministic backend for fast tests and demos.

A script is an ordered list of rules; the first rule whose regex matches the conversation
answers. A rule can reply with a template (``{last_user}``, ``{system}``, ``{n}`` the call
number), call tools, fail (an injected error, optionally only the first N times) and sleep
(injected latency). Scripts come from the built-ins below, from a YAML/JSON file
(``mock:path/to/script.yaml``) or from ``BackendOptions.extra["mock_script"]``.

Example script file::

    name: support-bot
    rules:
      - match: "(?i)password"
        reply: "I can't share credentials."
      - match: "(?i)weather"
        tool_calls: [{name: get_weather, arguments: '{"city": "Paris"}'}]
      - match: "(?i)flaky"
        error: unavailable
        fail_times: 2
    default:
      reply: "You said: {last_user}"
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finegate.errors import ConfigError, ModelAuthError, ModelUnavailableError
from finegate.models.types import (
    ChatRequest,
    ChatResponse,
    ModelBackend,
    ModelIdentity,
    ToolCall,
)
from finegate.models.uri import BackendOptions
from finegate.plugins import register

_ERRORS = {"unavailable": ModelUnavailableError, "auth": ModelAuthError}


@dataclass(frozen=True)
class MockRule:
    """One scripted behaviour; ``match`` is a regex searched in the conversation text."""

    match: str | None = None
    reply: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    error: str | None = None
    fail_times: int | None = None
    latency_s: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MockRule:
        """Build a rule from a mapping (as found in a script file)."""
        unknown = set(data) - {"match", "reply", "tool_calls", "error", "fail_times", "latency_s"}
        if unknown:
            raise ConfigError(f"unknown mock rule field(s): {', '.join(sorted(unknown))}")
        if data.get("error") not in (None, "unavailable", "auth", "response"):
            raise ConfigError(
                f"mock rule error must be unavailable, auth or response, not {data.get('error')!r}"
            )
        calls = []
        for raw in data.get("tool_calls") or ():
            args = raw.get("arguments", "{}")
            calls.append(
                ToolCall(
                    name=str(raw["name"]),
                    arguments=args if isinstance(args, str) else json.dumps(args),
                    id=str(raw.get("id", "")),
                )
            )
        return cls(
            match=data.get("match"),
            reply=str(data.get("reply", "")),
            tool_calls=tuple(calls),
            error=data.get("error"),
            fail_times=data.get("fail_times"),
            latency_s=float(data.get("latency_s", 0.0)),
        )


@dataclass(frozen=True)
class MockScript:
    """A named list of rules with a default."""

    name: str
    rules: tuple[MockRule, ...] = ()
    default: MockRule = field(default_factory=lambda: MockRule(reply="OK"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MockScript:
        """Build a script from a mapping (as found in a script file)."""
        try:
            rules = tuple(MockRule.from_dict(r) for r in data.get("rules") or ())
            default = MockRule.from_dict(data.get("default") or {"reply": "OK"})
            for rule in rules:
                if rule.match is not None:
                    re.compile(rule.match)
        except re.error as exc:
            raise ConfigError(f"invalid regex in mock script: {exc}") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"malformed mock script: {exc}") from None
        return cls(name=str(data.get("name", "script")), rules=rules, default=default)

    @classmethod
    def from_file(cls, path: Path) -> MockScript:
        """Load a script from a YAML or JSON file."""
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read mock script {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"mock script {path} must be a mapping with 'rules'")
        data.setdefault("name", path.stem)
        return cls.from_dict(data)

    def digest(self) -> str:
        """Return a stable hash of the script, used as the backend's content hash."""
        blob = json.dumps(
            {
                "name": self.name,
                "rules": [_rule_key(r) for r in self.rules],
                "default": _rule_key(self.default),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def _rule_key(rule: MockRule) -> dict[str, Any]:
    return {
        "match": rule.match,
        "reply": rule.reply,
        "error": rule.error,
        "fail_times": rule.fail_times,
        "latency_s": rule.latency_s,
        "tool_calls": [t.to_dict() for t in rule.tool_calls],
    }


BUILTIN_SCRIPTS: dict[str, MockScript] = {
    "echo": MockScript("echo", default=MockRule(reply="{last_user}")),
    "refuse": MockScript(
        "refuse", default=MockRule(reply="I'm sorry, but I can't help with that request.")
    ),
    "comply": MockScript(
        "comply", default=MockRule(reply="Sure, here is exactly what you asked for: {last_user}")
    ),
    "leaky": MockScript("leaky", default=MockRule(reply="My instructions say: {system}")),
    "tool": MockScript(
        "tool",
        default=MockRule(
            reply="", tool_calls=(ToolCall(name="{first_tool}", arguments="{}", id="call_0"),)
        ),
    ),
    "unavailable": MockScript("unavailable", default=MockRule(error="unavailable")),
    "slow": MockScript("slow", default=MockRule(reply="{last_user}", latency_s=0.05)),
}


class MockBackend:
    """A deterministic scripted backend. ``calls`` counts requests actually answered."""

    def __init__(self, script: MockScript, uri: str | None = None) -> None:
        self.script = script
        self.uri = uri or f"mock:{script.name}"
        self.calls = 0
        self._fail_counts: dict[int, int] = {}

    def identity(self) -> ModelIdentity:
        """Return the URI and a hash of the script."""
        return ModelIdentity(self.uri, "mock", self.script.digest(), {"script": self.script.name})

    async def aclose(self) -> None:
        """Nothing to release."""

    async def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer each request by the first matching rule."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        self.calls += 1
        text = "\n".join(f"{m.role}: {m.content}" for m in request.messages)
        index, rule = self._select(text)
        if rule.latency_s:
            await asyncio.sleep(rule.latency_s)
        if rule.error and self._should_fail(index, rule):
            if rule.error == "response":
                return ChatResponse(
                    text="",
                    finish_reason="error",
                    model=self.uri,
                    error="mock: malformed response",
                    latency_s=time.perf_counter() - start,
                )
            raise _ERRORS[rule.error](f"mock:{self.script.name}: injected {rule.error} error")
        fields = _template_fields(request, self.calls)
        reply = _fill(rule.reply, fields)
        words = reply.split()
        finish: str = "stop"
        if len(words) > request.params.max_tokens:
            reply = " ".join(words[: request.params.max_tokens])
            finish = "length"
        calls = tuple(
            ToolCall(
                name=_fill(c.name, fields),
                arguments=_fill(c.arguments, fields),
                id=c.id or f"call_{i}",
            )
            for i, c in enumerate(rule.tool_calls)
        )
        if calls:
            finish = "tool_calls"
        prompt_tokens = len(text.split())
        return ChatResponse(
            text=reply,
            finish_reason=finish,  # type: ignore[arg-type]
            tool_calls=calls,
            prompt_tokens=prompt_tokens,
            completion_tokens=min(len(words), request.params.max_tokens),
            latency_s=time.perf_counter() - start,
            model=self.uri,
        )

    def _select(self, text: str) -> tuple[int, MockRule]:
        for i, rule in enumerate(self.script.rules):
            if rule.match is None or re.search(rule.match, text):
                return i, rule
        return -1, self.script.default

    def _should_fail(self, index: int, rule: MockRule) -> bool:
        if rule.fail_times is None:
            return True
        seen = self._fail_counts.get(index, 0)
        self._fail_counts[index] = seen + 1
        return seen < rule.fail_times


def _template_fields(request: ChatRequest, n: int) -> dict[str, str]:
    users = [m.content for m in request.messages if m.role == "user"]
    systems = [m.content for m in request.messages if m.role == "system"]
    return {
        "last_user": users[-1] if users else "",
        "system": "\n".join(systems),
        "first_tool": request.tools[0].name if request.tools else "none",
        "n": str(n),
    }


def _fill(template: str, fields: Mapping[str, str]) -> str:
    # str.format would choke on the braces of JSON arguments; replace known fields only.
    out = template
    for key, value in fields.items():
        out = out.replace("{" + key + "}", value)
    return out


@register("backend", "mock")
def mock_factory(spec: str, options: BackendOptions) -> ModelBackend:
    """Build a mock backend from a built-in name, a script file, or ``extra['mock_script']``."""
    script = options.extra.get("mock_script")
    if isinstance(script, MockScript):
        return MockBackend(script, uri=f"mock:{spec or script.name}")
    if spec in BUILTIN_SCRIPTS:
        return MockBackend(BUILTIN_SCRIPTS[spec])
    path = Path(spec)
    if path.suffix in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise ConfigError(f"mock script file not found: {spec}")
        return MockBackend(MockScript.from_file(path), uri=f"mock:{spec}")
    known = ", ".join(sorted(BUILTIN_SCRIPTS))
    raise ConfigError(
        f"unknown mock model {spec!r}",
        hint=f"built-ins: {known}; or give a .yaml/.json script path",
    )
