"""Tool calls for chat templates: described in the system message, parsed from the answer.

Templates without tools support get the tool list in the system message and are asked to
answer ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; those blocks are parsed
back into ``ToolCall``s, and earlier calls are rendered in the same form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from finegate.models.types import ToolCall, ToolSpec

__all__ = ["json_or_text", "parse_tool_calls", "tool_call_text", "tools_in_system"]

_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def tools_in_system(
    messages: list[dict[str, Any]], tools: Sequence[ToolSpec]
) -> list[dict[str, Any]]:
    """Describe tools in the system message for templates that have no tools support."""
    listing = json.dumps([t.to_dict() for t in tools], ensure_ascii=False)
    note = (
        "You can call these functions: " + listing + "\nTo call one, answer only with "
        '<tool_call>{"name": NAME, "arguments": {...}}</tool_call>.'
    )
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{note}")
        return [first, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def json_or_text(arguments: str) -> Any:
    """Return the arguments as JSON when they parse, else as the raw text."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def tool_call_text(call: ToolCall) -> str:
    """Render a call as the ``<tool_call>`` block the model is asked to answer with."""
    body = {"name": call.name, "arguments": json_or_text(call.arguments)}
    return f"<tool_call>{json.dumps(body, ensure_ascii=False)}</tool_call>"


def parse_tool_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """Extract ``<tool_call>{json}</tool_call>`` blocks; malformed ones stay in the text."""
    calls: list[ToolCall] = []

    def take(match: re.Match[str]) -> str:
        try:
            body = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return match.group(0)
        args = body.get("arguments", {})
        calls.append(
            ToolCall(
                name=body["name"],
                id=f"call_{len(calls)}",
                arguments=(args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)),
            )
        )
        return ""

    remaining = _TOOL_CALL_RE.sub(take, text)
    return (remaining.strip() if calls else text), tuple(calls)
