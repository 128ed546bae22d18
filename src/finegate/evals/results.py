"""Per-case results: the record type and reading/writing them in the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError

if TYPE_CHECKING:
    from finegate.store.db import Store
    from finegate.store.schema import EvalResult, Run

__all__ = [
    "CaseResult",
    "delete_errored",
    "done_keys",
    "eval_runs",
    "get_eval_run",
    "load_results",
    "write_results",
]


@dataclass(frozen=True)
class CaseResult:
    """The full trace of one case (one repeat): what was sent, what came back, every verdict.

    Attributes:
        scores: Per-scorer verdicts (``Score.to_dict()`` forms).
        messages: The conversation as sent, with the model's answers in place.
        output: The final reply's text.
        tool_calls: Every tool call the model made.
        latency_s: Model time summed over the case's turns.
        cached: Whether every model answer came from the call store.
    """

    case_id: str
    family: str
    repeat: int
    verdict: str
    reason: str
    scores: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (as printed by ``--json`` and ``runs trace``)."""
        return {
            "case_id": self.case_id,
            "family": self.family,
            "repeat": self.repeat,
            "verdict": self.verdict,
            "reason": self.reason,
            "scores": self.scores,
            "messages": self.messages,
            "output": self.output,
            "tool_calls": self.tool_calls,
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached": self.cached,
            "error": self.error,
        }

    @classmethod
    def from_row(cls, row: EvalResult) -> CaseResult:
        """Build from a stored row."""
        return cls(
            case_id=row.case_id,
            family=row.family,
            repeat=row.repeat,
            verdict=row.verdict,
            reason=row.reason,
            scores=list(row.scores),
            messages=list(row.messages),
            output=row.output,
            tool_calls=list(row.tool_calls),
            latency_s=row.latency_s,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            cached=row.cached,
            error=row.error,
        )


def write_results(store: Store, run_id: str, results: Sequence[CaseResult]) -> int:
    """Insert results; a (case, repeat) already stored for the run is left as it is.

    Returns:
        How many rows were inserted.
    """
    from sqlalchemy.exc import IntegrityError

    from finegate.store.schema import EvalResult

    def row(r: CaseResult) -> EvalResult:
        return EvalResult(
            run_id=run_id,
            case_id=r.case_id,
            family=r.family,
            repeat=r.repeat,
            messages=r.messages,
            output=r.output,
            tool_calls=r.tool_calls,
            scores=r.scores,
            verdict=r.verdict,
            reason=r.reason[:4000],
            latency_s=r.latency_s,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cached=r.cached,
            error=r.error,
        )

    if not results:
        return 0
    try:
        with store.session() as s:
            s.add_all(row(r) for r in results)
        return len(results)
    except IntegrityError:
        inserted = 0
        for r in results:  # someone else wrote some of them: keep theirs, add the rest
            try:
                with store.session() as s:
                    s.add(row(r))
                inserted += 1
            except IntegrityError:
                continue
        return inserted


def done_keys(store: Store, run_id: str) -> set[tuple[str, int]]:
    """Return the (case id, repeat) pairs of a run that have a non-error result."""
    from sqlalchemy import select

    from finegate.store.schema import EvalResult

    with store.session() as s:
        stmt = select(EvalResult.case_id, EvalResult.repeat).where(
            EvalResult.run_id == run_id, EvalResult.verdict != "error"
        )
        return {(cid, rep) for cid, rep in s.execute(stmt)}


def delete_errored(store: Store, run_id: str) -> int:
    """Delete a run's ``error`` results so that resuming retries them; return how many."""
    from sqlalchemy import delete

    from finegate.store.schema import EvalResult

    with store.session() as s:
        res = s.execute(
            delete(EvalResult).where(EvalResult.run_id == run_id, EvalResult.verdict == "error")
        )
        return int(getattr(res, "rowcount", 0) or 0)


def load_results(store: Store, run_id: str, *, case_id: str | None = None) -> list[CaseResult]:
    """Return a run's results ordered by case id and repeat (optionally one case)."""
    from sqlalchemy import select

    from finegate.store.schema import EvalResult

    with store.session() as s:
        stmt = select(EvalResult).where(EvalResult.run_id == run_id)
        if case_id is not None:
            stmt = stmt.where(EvalResult.case_id == case_id)
        stmt = stmt.order_by(EvalResult.case_id, EvalResult.repeat)
        return [CaseResult.from_row(r) for r in s.scalars(stmt)]


def get_eval_run(store: Store, run_id: str) -> Run:
    """Return an eval run by id.

    Raises:
        ConfigError: when there is no eval run with that id.
    """
    run = store.get_run(run_id)
    if run is None or run.kind != "eval":
        raise ConfigError(f"no eval run {run_id!r}", hint="see finegate runs list")
    return run


def eval_runs(store: Store, limit: int = 50) -> list[Run]:
    """Return the most recent eval runs, newest first."""
    return store.list_runs(kind="eval", limit=limit)
