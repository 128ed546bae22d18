"""Sending generated cases to the target and judging the answers (shared by every strategy).

Cases are rendered exactly as the eval runner renders them (:class:`Conversation` with the
run's decoding settings), so the final recorded run replays every probe from the call cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from finegate.evals.render import Conversation
from finegate.evals.schema import Case, MessageDef
from finegate.evals.scorers import score_case
from finegate.evals.scoring import CaseOutput, combine_verdicts
from finegate.models.types import ChatRequest, ChatResponse, GenerationParams, ModelBackend

if TYPE_CHECKING:
    from finegate.evals.judge import JudgeScorer

__all__ = [
    "Judged",
    "generate_in_batches",
    "judge_outputs",
    "last_user_text",
    "probe",
    "with_turns",
]


@dataclass(frozen=True)
class Judged:
    """The judge's view of one answer.

    Attributes:
        success: The attack worked (the case's verdict is ``fail``).
        verdict: The combined verdict of the case's scorers.
        score: 0-1, how far the answer went towards the attack's goal (1 on success; the
            LLM judge's graded score when a judge is configured).
        reason: The scorers' reason.
    """

    success: bool
    verdict: str
    score: float
    reason: str


async def generate_in_batches(
    backend: ModelBackend,
    requests: Sequence[ChatRequest],
    batch_size: int,
    concurrency: int = 1,
) -> list[ChatResponse]:
    """Send requests in batches of ``batch_size``, ``concurrency`` batches in flight.

    A local backend answers one batch at a time anyway; an HTTP backend (batch size 1) gets
    ``concurrency`` requests in flight, as the eval runner gives it.
    """
    import asyncio

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(chunk: list[ChatRequest]) -> list[ChatResponse]:
        async with gate:
            return await backend.generate(chunk)

    chunks = [list(requests[i : i + batch_size]) for i in range(0, len(requests), batch_size)]
    answers = await asyncio.gather(*(one(c) for c in chunks))
    return [a for chunk in answers for a in chunk]


async def probe(
    target: ModelBackend,
    cases: Sequence[Case],
    params: GenerationParams,
    batch_size: int,
    concurrency: int = 1,
) -> list[CaseOutput]:
    """Play every case against the target (all model turns), batching across cases."""
    convs = [Conversation(c, params) for c in cases]
    responses: list[list[ChatResponse]] = [[] for _ in cases]
    errors: list[str | None] = [None] * len(cases)
    while True:
        pending = [
            (i, req)
            for i, conv in enumerate(convs)
            if errors[i] is None and (req := conv.request(responses[i])) is not None
        ]
        if not pending:
            break
        answers = await generate_in_batches(
            target, [r for _, r in pending], batch_size, concurrency
        )
        for (i, _), answer in zip(pending, answers, strict=True):
            responses[i].append(answer)
            if answer.error:
                errors[i] = answer.error
    return [
        CaseOutput(tuple(r), tuple(conv.transcript(r)), err)
        for conv, r, err in zip(convs, responses, errors, strict=True)
    ]


async def judge_outputs(
    cases: Sequence[Case], outputs: Sequence[CaseOutput], judge: JudgeScorer | None = None
) -> list[Judged]:
    """Judge each answer with the case's own scorers (and the LLM judge, when given)."""
    scores = [score_case(c, o) for c, o in zip(cases, outputs, strict=True)]
    graded: list[float | None] = [None] * len(cases)
    if judge is not None:
        extra = await judge.score_many(list(zip(cases, outputs, strict=True)))
        for i, score in enumerate(extra):
            if score is not None:
                scores[i].append(score)
                graded[i] = score.value
    out = []
    for case_scores, grade in zip(scores, graded, strict=True):
        verdict, reason = combine_verdicts(case_scores)
        success = verdict == "fail"
        value = 1.0 if success else (grade if grade is not None else 0.0)
        out.append(Judged(success, verdict, round(float(value), 3), reason))
    return out


def last_user_text(case: Case) -> str:
    """Return the content of the case's last user message (the request an attack rewrites)."""
    for message in reversed(case.messages):
        if message.role == "user" and message.content is not None:
            return message.content
    raise ValueError(f"case {case.id!r} has no user message")


def with_turns(
    case: Case, turns: Sequence[str], *, case_id: str, tags: Sequence[str], notes: str
) -> Case:
    """Return ``case`` with its last user message replaced by ``turns``.

    Several turns become user messages separated by model-played assistant turns; earlier
    messages of the case (its own multi-turn set-up) are kept in front.
    """
    last = max(i for i, m in enumerate(case.messages) if m.role == "user")
    head = list(case.messages[:last])
    tail = list(case.messages[last + 1 :])
    played: list[MessageDef] = []
    for k, text in enumerate(turns):
        if k:
            played.append(MessageDef(role="assistant", content=None))
        played.append(MessageDef(role="user", content=text))
    return case.model_copy(
        update={
            "id": case_id,
            "messages": head + played + tail,
            "tags": [*case.tags, *tags],
            "notes": notes,
        }
    )
