"""Conversions between finegate's model types and the OpenAI chat-completions JSON.

One module serves both directions so the ``openai:`` client, ``finegate serve-model`` and (later)
the gateway agree on every field:

* client side: :func:`request_to_openai` builds a request body, :func:`response_from_openai`
  validates and parses a server's answer (malformed answers raise
  :class:`~finegate.errors.ModelResponseError` naming what was wrong);
* server side: :func:`request_from_openai` validates an incoming body (problems raise
  :class:`WireRequestError`, which a server turns into HTTP 400), :func:`response_to_openai`
  and :func:`stream_chunks` render the answer.

Prompts must be valid Unicode: a lone surrogate (what ``surrogateescape`` leaves behind when
non-UTF-8 bytes were decoded) cannot be sent as UTF-8 JSON, so :func:`check_text` raises a
:class:`~finegate.errors.ConfigError` naming the message and position instead of sending
mangled text that would silently change what is being evaluated.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from finegate import _json as fast_json
from finegate.errors import ConfigError, ModelResponseError
from finegate.models.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FinishReason,
    GenerationParams,
    Role,
    ToolCall,
    ToolSpec,
)

__all__ = [
    "WireRequestError",
    "check_text",
    "encode_body",
    "error_body",
    "message_to_openai",
    "models_list",
    "new_completion_id",
    "request_from_openai",
    "request_to_openai",
    "response_from_openai",
    "response_to_openai",
    "stream_chunks",
]

_ROLES = ("system", "user", "assistant", "tool")
# "developer" is OpenAI's newer name for the system role; accepting it keeps new clients working.
_ROLE_ALIASES = {"developer": "system"}
_FINISH_MAP: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    # A provider-side filter ended the text normally from the caller's point of view; the
    # scorers judge the text itself.
    "content_filter": "stop",
    "eos": "stop",
    "end_turn": "stop",
}


class WireRequestError(ConfigError):
    """An incoming chat-completions request body is malformed (a server answers 400)."""


# --------------------------------------------------------------------------- text checks


def check_text(text: str, where: str) -> None:
    """Raise :class:`ConfigError` if ``text`` cannot be encoded as UTF-8.

    Args:
        text: The text to check.
        where: Names the text in the error, e.g. ``"request 3, message 0"``.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{where} is not valid Unicode (invalid surrogate {text[exc.start]!r} at "
            f"character {exc.start}); the prompt was probably read from non-UTF-8 bytes",
            hint="decode the input as UTF-8 (or the right encoding) before sending it",
        ) from None


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Serialize a JSON body as compact UTF-8 bytes."""
    return fast_json.dumps(body)


# --------------------------------------------------------------------------- client side


def message_to_openai(message: ChatMessage) -> dict[str, Any]:
    """Render one message in OpenAI form (tool calls nested under ``function``)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [_tool_call_to_openai(t, i) for i, t in enumerate(message.tool_calls)]
        if not message.content:
            out["content"] = None
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tool_call_to_openai(call: ToolCall, index: int) -> dict[str, Any]:
    return {
        "id": call.id or f"call_{index}",
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def request_to_openai(
    request: ChatRequest, model: str, *, where: str = "request", stream: bool = False
) -> dict[str, Any]:
    """Build a chat-completions request body.

    Args:
        request: The finegate request.
        model: The server-side model name.
        where: Names the request in errors (e.g. ``"request 3"``).
        stream: Ask for server-sent events.

    Raises:
        ConfigError: if a message is not valid Unicode.
    """
    for i, msg in enumerate(request.messages):
        check_text(msg.content, f"{where}, message {i} ({msg.role})")
        for call in msg.tool_calls:
            check_text(call.arguments, f"{where}, message {i}, tool call {call.name!r}")
    params = request.params
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_to_openai(m) for m in request.messages],
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if request.tools:
        body["tools"] = [{"type": "function", "function": t.to_dict()} for t in request.tools]
    if stream:
        body["stream"] = True
    return body


def response_from_openai(
    data: Any, *, latency_s: float = 0.0, default_model: str = ""
) -> ChatResponse:
    """Validate a chat-completions response body and convert it.

    Args:
        data: The decoded JSON body.
        latency_s: Wall time the caller waited, recorded on the response.
        default_model: Model name to record when the body does not say.

    Raises:
        ModelResponseError: naming the first thing that is wrong with the body.
    """
    if not isinstance(data, dict):
        raise ModelResponseError(f"response body is a JSON {_kind(data)}, not an object")
    if "error" in data and "choices" not in data:
        raise ModelResponseError(f"server answered with an error: {_error_message(data)}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ModelResponseError("response has no 'choices' list (or it is empty)")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ModelResponseError(f"choices[0] is a JSON {_kind(choice)}, not an object")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ModelResponseError("choices[0] has no 'message' object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ModelResponseError(
            f"choices[0].message.content is a JSON {_kind(content)}, not a string or null"
        )
    calls = _parse_tool_calls(message.get("tool_calls"))
    finish = _parse_finish(choice.get("finish_reason"), has_calls=bool(calls))
    prompt_tokens, completion_tokens = _parse_usage(data.get("usage"))
    model = data.get("model")
    return ChatResponse(
        text=content or "",
        finish_reason=finish,
        tool_calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
        model=model if isinstance(model, str) and model else default_model,
    )


def _parse_tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ModelResponseError(
            f"choices[0].message.tool_calls is a JSON {_kind(raw)}, not a list"
        )
    calls = []
    for i, item in enumerate(raw):
        where = f"choices[0].message.tool_calls[{i}]"
        fn = item.get("function") if isinstance(item, dict) else None
        if not isinstance(fn, dict):
            raise ModelResponseError(f"{where} has no 'function' object")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ModelResponseError(f"{where}.function.name is missing or not a string")
        args = fn.get("arguments", "")
        if isinstance(args, dict):
            # Some servers (older Ollama) send arguments as an object rather than JSON text;
            # re-serializing loses nothing and keeps ToolCall.arguments uniformly a string.
            args = json.dumps(args, ensure_ascii=False)
        elif args is None:
            args = ""
        elif not isinstance(args, str):
            raise ModelResponseError(
                f"{where}.function.arguments is a JSON {_kind(args)}, not a string"
            )
        call_id = item.get("id")
        calls.append(
            ToolCall(name=name, arguments=args, id=call_id if isinstance(call_id, str) else "")
        )
    return tuple(calls)


def _parse_finish(raw: Any, *, has_calls: bool) -> FinishReason:
    if raw is None:
        # Several servers omit finish_reason on a complete non-streamed answer.
        return "tool_calls" if has_calls else "stop"
    if not isinstance(raw, str):
        raise ModelResponseError(f"choices[0].finish_reason is a JSON {_kind(raw)}")
    # Unknown reasons (servers invent their own, e.g. "abort") are not malformed; the text is
    # still the answer, so record it as a normal stop rather than failing the whole batch.
    return _FINISH_MAP.get(raw, "tool_calls" if has_calls else "stop")


def _parse_usage(raw: Any) -> tuple[int, int]:
    if raw is None:
        return 0, 0
    if not isinstance(raw, dict):
        raise ModelResponseError(f"'usage' is a JSON {_kind(raw)}, not an object")
    out = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = raw.get(key, 0)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelResponseError(f"usage.{key} is {value!r}, not a non-negative integer")
        out.append(value)
    return out[0], out[1]


def _error_message(data: Mapping[str, Any]) -> str:
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)[:500]
    return str(err)[:500]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- server side


def request_from_openai(data: Any) -> tuple[ChatRequest, bool]:
    """Validate an incoming chat-completions body.

    Returns:
        The request and whether the client asked for streaming.

    Raises:
        WireRequestError: naming the first problem (a server answers HTTP 400).
    """
    if not isinstance(data, dict):
        raise WireRequestError(f"request body is a JSON {_kind(data)}, not an object")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise WireRequestError("'messages' must be a non-empty array")
    messages = tuple(_message_from_openai(m, i) for i, m in enumerate(raw_messages))
    n = data.get("n", 1)
    if n not in (1, None):
        raise WireRequestError(f"'n' = {n!r} is not supported; only one choice per request")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise WireRequestError("'stream' must be a boolean")
    tools = _tools_from_openai(data.get("tools"))
    if data.get("tool_choice") == "none":
        tools = ()
    return ChatRequest(messages=messages, params=_params_from_openai(data), tools=tools), stream


def _message_from_openai(raw: Any, index: int) -> ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise WireRequestError(f"{where} must be an object")
    raw_role = raw.get("role")
    role = _ROLE_ALIASES.get(raw_role, raw_role) if isinstance(raw_role, str) else raw_role
    if role not in _ROLES:
        raise WireRequestError(f"{where}.role must be one of {', '.join(_ROLES)}, not {raw_role!r}")
    content = _content_text(raw.get("content"), where)
    try:
        check_text(content, where)
    except ConfigError as exc:
        # JSON can carry lone surrogates as \ud800-style escapes; they would break the
        # tokenizer or the UTF-8 encoding of the answer, so they are a client error.
        raise WireRequestError(exc.message, hint=exc.hint) from None
    calls: list[ToolCall] = []
    raw_calls = raw.get("tool_calls")
    if raw_calls is not None:
        if not isinstance(raw_calls, list):
            raise WireRequestError(f"{where}.tool_calls must be an array")
        for j, item in enumerate(raw_calls):
            fn = item.get("function") if isinstance(item, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise WireRequestError(f"{where}.tool_calls[{j}].function.name is missing")
            args = fn.get("arguments", "")
            if not isinstance(args, str):
                args = json.dumps(args, ensure_ascii=False)
            calls.append(ToolCall(name=fn["name"], arguments=args, id=str(item.get("id") or "")))
    name = raw.get("name")
    tool_call_id = raw.get("tool_call_id")
    if name is not None and not isinstance(name, str):
        raise WireRequestError(f"{where}.name must be a string")
    if tool_call_id is not None and not isinstance(tool_call_id, str):
        raise WireRequestError(f"{where}.tool_call_id must be a string")
    return ChatMessage(
        role=cast(Role, role),
        content=content,
        name=name,
        tool_calls=tuple(calls),
        tool_call_id=tool_call_id,
    )


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # The array form of content: only text parts can be given to a text-only model.
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else _kind(part)
                raise WireRequestError(
                    f"{where}.content[{j}] is a {kind!r} part; only text parts are supported"
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise WireRequestError(f"{where}.content[{j}].text must be a string")
            parts.append(text)
        return "".join(parts)
    raise WireRequestError(f"{where}.content must be a string, an array of text parts or null")


def _tools_from_openai(raw: Any) -> tuple[ToolSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise WireRequestError("'tools' must be an array")
    tools = []
    for i, item in enumerate(raw):
        fn = item.get("function") if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise WireRequestError(
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}"
            )
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise WireRequestError(f"tools[{i}].function.parameters must be an object")
        tools.append(
            ToolSpec(
                name=fn["name"],
                description=str(fn.get("description") or ""),
                parameters=params or {"type": "object"},
            )
        )
    return tuple(tools)


def _params_from_openai(data: Mapping[str, Any]) -> GenerationParams:
    defaults = GenerationParams()
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is None:
        max_tokens = defaults.max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise WireRequestError(f"'max_tokens' must be a positive integer, not {max_tokens!r}")
    temperature = _number(data, "temperature", defaults.temperature, 0.0, 2.0)
    top_p = _number(data, "top_p", defaults.top_p, 0.0, 1.0)
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise WireRequestError(f"'seed' must be an integer, not {seed!r}")
    stop = data.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise WireRequestError("'stop' must be a string or an array of strings")
    return GenerationParams(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stops
    )


def _number(data: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not low <= value <= high
    ):
        raise WireRequestError(f"'{key}' must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def new_completion_id() -> str:
    """Return a fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{os.urandom(12).hex()}"


def _assistant_message(response: ChatResponse) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.tool_calls:
        message["tool_calls"] = [
            _tool_call_to_openai(t, i) for i, t in enumerate(response.tool_calls)
        ]
        if not response.text:
            # OpenAI sends null content alongside tool calls; some clients rely on it.
            message["content"] = None
    return message


def _usage(response: ChatResponse) -> dict[str, int]:
    return {
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "total_tokens": response.prompt_tokens + response.completion_tokens,
    }


def response_to_openai(
    response: ChatResponse,
    model: str,
    *,
    completion_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """Render a (successful) response as a ``chat.completion`` object."""
    return {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _assistant_message(response),
                "finish_reason": response.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(response),
    }


def stream_chunks(
    response: ChatResponse,
    model: str,
    *,
    include_usage: bool = False,
    completion_id: str | None = None,
    created: int | None = None,
) -> list[dict[str, Any]]:
    """Render a finished response as ``chat.completion.chunk`` events.

    The whole text goes in one delta: the backends produce complete answers, and one chunk
    followed by a finish chunk is valid SSE for every client that streams.
    """
    base = {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion.chunk",
        "created": created if created is not None else int(time.time()),
        "model": model,
    }
    delta = _assistant_message(response)
    if "tool_calls" in delta:
        delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(delta["tool_calls"])]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": response.finish_reason}]},
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(response)})
    return chunks


def error_body(
    message: str, *, type_: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    """Return an OpenAI-style error body."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def models_list(model_ids: Sequence[str], *, created: int) -> dict[str, Any]:
    """Return a ``/v1/models`` list body."""
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": created, "owned_by": "finegate"}
            for m in model_ids
        ],
    }
