"""Scores, case outputs and the scorer contract; combining verdicts into one per case.

A scorer looks at one case, one of its expectations and what the model did, and returns a
:class:`Score`: ``pass``, ``fail``, ``error`` (the model or the scorer failed) or ``unscored``
(there was nothing to judge, e.g. an empty reply). ``error`` and ``unscored`` are reported
apart and never counted as passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from finegate.models.types import ChatMessage, ChatResponse, ToolCall

if TYPE_CHECKING:
    from finegate.evals.schema import Case, Expectation

__all__ = ["VERDICTS", "CaseOutput", "Score", "Scorer", "Verdict", "combine_verdicts"]

Verdict = Literal["pass", "fail", "error", "unscored"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "error", "unscored")


@dataclass(frozen=True)
class Score:
    """One scorer's verdict on one expectation of a case.

    Attributes:
        scorer: The scorer's registered name.
        expectation: The expectation kind it checked (``refuse``, ``no_leak``, ...).
        verdict: ``pass``, ``fail``, ``error`` or ``unscored``.
        reason: One line saying why.
        value: An optional number (refusal probability, judge's 0-1 harm score).
        details: Small JSON-serializable evidence (findings, cues, offending calls).
    """

    scorer: str
    expectation: str
    verdict: Verdict
    reason: str
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored with the result."""
        return {
            "scorer": self.scorer,
            "expectation": self.expectation,
            "verdict": self.verdict,
            "reason": self.reason,
            "value": self.value,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        """Build from :meth:`to_dict` output."""
        return cls(
            scorer=data["scorer"],
            expectation=data["expectation"],
            verdict=data["verdict"],
            reason=data.get("reason", ""),
            value=data.get("value"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class CaseOutput:
    """What the model did in one case: one response per model turn, and the transcript.

    Attributes:
        responses: The model's responses in turn order (the last one is the final answer).
        messages: The whole conversation as sent, with the model's answers in place.
        error: Set when a model call failed (the responses may then be incomplete).
    """

    responses: tuple[ChatResponse, ...]
    messages: tuple[ChatMessage, ...] = ()
    error: str | None = None

    @property
    def final(self) -> ChatResponse | None:
        """The model's last answer."""
        return self.responses[-1] if self.responses else None

    @property
    def text(self) -> str:
        """The text of the final answer."""
        return self.final.text if self.final else ""

    @property
    def all_text(self) -> str:
        """Every answer's text, turn by turn (leakage may happen in any turn)."""
        return "\n".join(r.text for r in self.responses)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Every tool call the model made, in any turn."""
        return tuple(c for r in self.responses for c in r.tool_calls)

    @property
    def failed(self) -> str | None:
        """The first error of the output or of any response, if any."""
        if self.error:
            return self.error
        return next((r.error for r in self.responses if r.error), None)


@runtime_checkable
class Scorer(Protocol):
    """Scores one expectation of a case against what the model did."""

    name: str

    def score(self, case: Case, expectation: Expectation, output: CaseOutput) -> Score:
        """Return the verdict and its reason."""
        ...


def combine_verdicts(scores: Sequence[Score]) -> tuple[Verdict, str]:
    """Combine per-expectation scores into the case's verdict and reason.

    Any ``fail`` fails the case (a failure was observed); otherwise any ``error`` makes it
    ``error``, otherwise any ``unscored`` makes it ``unscored``; only all-``pass`` passes.
    """
    if not scores:
        return "unscored", "no scorer applied"
    for verdict in ("fail", "error", "unscored"):
        hits = [s for s in scores if s.verdict == verdict]
        if hits:
            return verdict, "; ".join(f"{s.expectation}: {s.reason}" for s in hits)
    return "pass", "; ".join(f"{s.expectation}: {s.reason}" for s in scores)
