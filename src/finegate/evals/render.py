"""Rendering cases into chat requests, the way an application would send them.

- The case's ``system`` prompt becomes the first system message.
- Retrieved ``documents`` are placed in the first user message, above the user's text, in the
  framing a retrieval-augmented app uses (numbered, with their source).
- ``tools`` become :class:`~finegate.models.types.ToolSpec` objects; every tool is offered to
  the model, including ``allowed: false`` ones (the policy, not the offer, decides what may
  be called; the tool-policy scorer checks it).
- An assistant message without content is a turn the model plays: the conversation is sent up
  to it, the model's answer is put in its place, and the conversation continues. When the
  case does not end with such a turn, the model answers the last message (the final turn).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from finegate.evals.schema import Case, DocumentDef, MessageDef, ToolCallDef
from finegate.models.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    GenerationParams,
    ToolCall,
    ToolSpec,
)

__all__ = ["Conversation", "render_documents", "tool_specs"]

DOCUMENTS_HEADER = (
    "Use the following retrieved documents to answer the question. "
    "They come from the knowledge base."
)


def render_documents(documents: Sequence[DocumentDef]) -> str:
    """Return the context block a RAG app puts above the user's question."""
    parts = [DOCUMENTS_HEADER, ""]
    for i, doc in enumerate(documents, 1):
        source = f" (source: {doc.source})" if doc.source else ""
        parts.append(f"[Document {i}]{source}\n{doc.content}\n")
    return "\n".join(parts).rstrip() + "\n\n"


def tool_specs(case: Case) -> tuple[ToolSpec, ...]:
    """Return the tools a case offers, as backend tool specs."""
    return tuple(
        ToolSpec(name=t.name, description=t.description, parameters=t.parameters)
        for t in case.tools
    )


def _tool_call(call: ToolCallDef, index: int) -> ToolCall:
    args = (
        call.arguments
        if isinstance(call.arguments, str)
        else json.dumps(call.arguments, ensure_ascii=False, sort_keys=True)
    )
    return ToolCall(name=call.name, arguments=args, id=call.id or f"call_{index}")


def _is_model_turn(message: MessageDef) -> bool:
    return message.role == "assistant" and message.content is None and not message.tool_calls


@dataclass(frozen=True)
class Conversation:
    """A case rendered into the requests it takes, one per model turn.

    Args:
        case: The case.
        params: Decoding settings (``case.max_tokens`` overrides ``max_tokens``).
    """

    case: Case
    params: GenerationParams

    @property
    def turns(self) -> int:
        """How many times the model answers in this case."""
        played = sum(1 for m in self.case.messages if _is_model_turn(m))
        return played if _is_model_turn(self.case.messages[-1]) else played + 1

    def _base_messages(self, generated: Sequence[ChatResponse], upto: int) -> list[ChatMessage]:
        case = self.case
        out: list[ChatMessage] = []
        if case.system:
            out.append(ChatMessage("system", case.system))
        context = render_documents(case.documents) if case.documents else ""
        played = 0
        for message in case.messages[:upto]:
            if _is_model_turn(message):
                reply = generated[played]
                played += 1
                out.append(ChatMessage("assistant", reply.text, tool_calls=reply.tool_calls))
                continue
            content = message.content or ""
            if message.role == "user" and context:
                content, context = context + content, ""
            out.append(
                ChatMessage(
                    message.role,
                    content,
                    name=message.name,
                    tool_calls=tuple(_tool_call(c, i) for i, c in enumerate(message.tool_calls)),
                    tool_call_id=message.tool_call_id,
                )
            )
        return out

    def request(self, generated: Sequence[ChatResponse]) -> ChatRequest | None:
        """Return the next request, given the model's answers so far (None when done)."""
        turn = len(generated)
        if turn >= self.turns:
            return None
        stops = [i for i, m in enumerate(self.case.messages) if _is_model_turn(m)]
        upto = stops[turn] if turn < len(stops) else len(self.case.messages)
        params = self.params
        if self.case.max_tokens is not None:
            params = GenerationParams(
                max_tokens=self.case.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed,
                stop=params.stop,
            )
        return ChatRequest(
            messages=tuple(self._base_messages(generated, upto)),
            params=params,
            tools=tool_specs(self.case),
            metadata={"case_id": self.case.id, "turn": turn},
        )

    def transcript(self, generated: Sequence[ChatResponse]) -> list[ChatMessage]:
        """Return the whole conversation as sent, with the model's answers in place."""
        played = len(generated)
        msgs = self._base_messages(generated, self._upto_for(played))
        if generated and not _is_model_turn(self.case.messages[-1]) and played == self.turns:
            last = generated[-1]
            msgs.append(ChatMessage("assistant", last.text, tool_calls=last.tool_calls))
        return msgs

    def _upto_for(self, played: int) -> int:
        stops = [i for i, m in enumerate(self.case.messages) if _is_model_turn(m)]
        if played >= self.turns:
            return len(self.case.messages)
        return stops[played] if played < len(stops) else len(self.case.messages)
