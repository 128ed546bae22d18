"""The model contract: chat requests, responses, identities and the backend protocol.

Plain frozen dataclasses keep ``import finegate`` fast; ``to_dict``/``from_dict`` give the
canonical JSON form that request hashing, the call store and the OpenAI wire format use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from finegate._fast_init import fast_init

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "error"]


@fast_init
@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the raw JSON text it produced."""

    name: str
    arguments: str
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """Build from :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            arguments=str(data.get("arguments", "")),
            id=str(data.get("id", "")),
        )


@fast_init
@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form (empty optional fields omitted)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatMessage:
        """Build from :meth:`to_dict` output."""
        return cls(
            role=data["role"],
            content=str(data.get("content") or ""),
            name=data.get("name"),
            tool_calls=tuple(ToolCall.from_dict(t) for t in data.get("tool_calls") or ()),
            tool_call_id=data.get("tool_call_id"),
        )


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: name, description and JSON-Schema parameters."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolSpec:
        """Build from :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            parameters=dict(data.get("parameters") or {"type": "object"}),
        )


@fast_init
@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings. Greedy (temperature 0) by default; ``seed`` makes sampling repeatable."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationParams:
        """Build from :meth:`to_dict` output."""
        return cls(
            max_tokens=int(data.get("max_tokens", 256)),
            temperature=float(data.get("temperature", 0.0)),
            top_p=float(data.get("top_p", 1.0)),
            seed=data.get("seed"),
            stop=tuple(data.get("stop") or ()),
        )

    @property
    def greedy(self) -> bool:
        """Whether decoding is deterministic argmax."""
        return self.temperature <= 0.0


@fast_init
@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request. ``metadata`` is carried along but never hashed."""

    messages: tuple[ChatMessage, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: tuple[ToolSpec, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_prompt(
        cls, prompt: str, *, system: str | None = None, params: GenerationParams | None = None
    ) -> ChatRequest:
        """Build a single-turn request from a user prompt and an optional system prompt."""
        msgs: list[ChatMessage] = []
        if system:
            msgs.append(ChatMessage("system", system))
        msgs.append(ChatMessage("user", prompt))
        return cls(messages=tuple(msgs), params=params or GenerationParams())

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form (without metadata)."""
        return {
            "messages": [m.to_dict() for m in self.messages],
            "params": self.params.to_dict(),
            "tools": [t.to_dict() for t in self.tools],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatRequest:
        """Build from :meth:`to_dict` output."""
        return cls(
            messages=tuple(ChatMessage.from_dict(m) for m in data["messages"]),
            params=GenerationParams.from_dict(data.get("params") or {}),
            tools=tuple(ToolSpec.from_dict(t) for t in data.get("tools") or ()),
        )

    def request_hash(self) -> str:
        """Return the sha256 of the canonical JSON form: equal requests hash equal."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


@fast_init
@dataclass(frozen=True)
class ChatResponse:
    """A model's answer to one request.

    ``error`` is set (and ``finish_reason`` is ``"error"``) when this one request failed while
    the rest of the batch succeeded; scorers count such responses as ``error``, never ``pass``.
    """

    text: str
    finish_reason: FinishReason = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    model: str = ""
    cached: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form."""
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "tool_calls": [t.to_dict() for t in self.tool_calls],
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "model": self.model,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, cached: bool = False) -> ChatResponse:
        """Build from :meth:`to_dict` output."""
        return cls(
            text=str(data.get("text", "")),
            finish_reason=data.get("finish_reason", "stop"),
            tool_calls=tuple(ToolCall.from_dict(t) for t in data.get("tool_calls") or ()),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            latency_s=float(data.get("latency_s", 0.0)),
            model=str(data.get("model", "")),
            cached=cached,
            error=data.get("error"),
        )


@dataclass(frozen=True)
class ModelIdentity:
    """What exactly answered: the URI, the backend kind and a content hash.

    For local models ``content_hash`` covers the weights (and adapter); for remote models it is
    a hash of the base URL and model name, which is the best a client can know.
    """

    uri: str
    backend: str
    content_hash: str
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict form."""
        return {
            "uri": self.uri,
            "backend": self.backend,
            "content_hash": self.content_hash,
            "details": dict(self.details),
        }

    def cache_key(self) -> str:
        """Return the key under which this model's answers are cached.

        The same weights run in bfloat16 on a GPU and in float32 on a CPU give different
        answers, so local numerics (``device``, ``dtype`` in ``details``) are part of the key.
        """
        numerics = [f"{k}={self.details[k]}" for k in ("device", "dtype") if k in self.details]
        if not numerics:
            return self.content_hash
        blob = self.content_hash + "|" + "|".join(numerics)
        return hashlib.sha256(blob.encode()).hexdigest()


@runtime_checkable
class ModelBackend(Protocol):
    """The one async contract every model backend implements."""

    async def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer a batch of requests, in order. Local backends batch; HTTP ones fan out."""
        ...

    def identity(self) -> ModelIdentity:
        """Return what exactly answers (URI plus content hash)."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads or memory."""
        ...


@runtime_checkable
class LogprobBackend(Protocol):
    """Local backends that can score text, for memorization and membership tests."""

    def token_logprobs(self, texts: Sequence[str]) -> list[list[float]]:
        """Return, per text, the log-probability of each token given the tokens before it."""
        ...
