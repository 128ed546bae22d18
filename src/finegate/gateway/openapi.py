"""JSON schemas of the gateway's API, used in its OpenAPI document (and fuzzed by schemathesis).

The chat endpoint reads its body itself (so every problem gets an OpenAI-shaped 400 and the
body-size limit applies before parsing); these schemas only document it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHAT_REQUEST", "ERROR", "IGNORED_FIELDS", "KNOWN_FIELDS", "error_responses"]

_CONTENT: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "null"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                "required": ["type", "text"],
            },
        },
    ]
}

_TOOL_CALL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
            "required": ["name"],
        },
    },
    "required": ["function"],
}

_MESSAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": _CONTENT,
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": _TOOL_CALL},
        "tool_call_id": {"type": "string"},
    },
    "required": ["role"],
}

_TOOL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "parameters": {"type": "object"},
            },
            "required": ["name"],
        },
    },
    "required": ["function"],
}

IGNORED_FIELDS = frozenset({
    "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
    "response_format", "user", "parallel_tool_calls", "metadata", "store", "service_tier",
})  # fmt: skip
"""OpenAI request fields the gateway accepts and does not forward."""

CHAT_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "enum": [1]},
        "stream": {"type": "boolean"},
        "stream_options": {
            "type": "object",
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "seed": {"type": "integer"},
        "tools": {"type": "array", "items": _TOOL},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        **{name: {} for name in sorted(IGNORED_FIELDS)},
    },
    "required": ["model", "messages"],
    "additionalProperties": False,
}

KNOWN_FIELDS = frozenset(CHAT_REQUEST["properties"])

ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error status codes (OpenAI's error shape)."""
    return {
        code: {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
        for code in codes
    }
