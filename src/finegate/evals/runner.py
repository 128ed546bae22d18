"""The eval runner: cases through a backend in batches, scored, recorded, resumable.

- **Batches and concurrency.** Pending (case, repeat) units are ordered by prompt length;
  ``concurrency`` workers each take up to ``batch_size`` of them as one batch; an HTTP backend
  fans a batch out. A backend that batches concurrent calls itself (``batch_slots``, the local
  ``hf:`` one) gets single conversations instead, enough in flight to fill its slots, and its
  decode loop keeps its batch full as they finish.
- **Multi-turn.** A conversation that needs another model turn goes back into the queue, so
  the later turns of different cases share batches too (continuous batching).
- **Recorded and cached.** Every call goes through
  :class:`~finegate.models.recording.RecordingBackend`: identical requests to the same model
  are answered from the store, so a re-run gives identical results in seconds.
- **Resumable.** Each batch's results are written as soon as it finishes; the store keeps
  (run, case, repeat) unique. Resuming a run skips cases that have a result and retries the
  ones that ended in ``error``: nothing is lost and nothing is duplicated.
- **Deterministic.** Greedy decoding by default; the seed (``seed + repeat``) and every
  generation parameter are stored in the run's config with the suite's content hash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError
from finegate.evals.render import Conversation
from finegate.evals.results import (
    CaseResult,
    delete_errored,
    done_keys,
    load_results,
    write_results,
)
from finegate.evals.schema import Case, Suite
from finegate.evals.scorers import score_case
from finegate.evals.scoring import CaseOutput, Score, combine_verdicts
from finegate.evals.stats import Summary, summarize
from finegate.models.types import ChatResponse, GenerationParams, ModelBackend

if TYPE_CHECKING:
    from finegate.evals.judge import JudgeScorer
    from finegate.models.recording import RecordingBackend
    from finegate.store.db import Store

__all__ = ["EvalConfig", "EvalRun", "ProgressCallback", "family_kinds", "run_eval", "run_eval_sync"]

ProgressCallback = Callable[[int, int, CaseResult | None], None]
"""Called with (done, total, result) after each case; result is None for the initial call."""

_RESUME_KEYS = ("suite_hash", "model_hash", "params", "seed", "repeat", "judge", "system_prefix")


@dataclass(frozen=True)
class EvalConfig:
    """How a suite is run.

    Attributes:
        params: Decoding settings (greedy, 128 new tokens by default).
        seed: Base seed; repeat ``r`` uses ``seed + r``.
        repeat: How many times each case is sampled (flip rates need > 1 and sampling).
        batch_size: Requests per batch handed to the backend.
        concurrency: Batches in flight at once.
        use_cache: Answer identical earlier requests from the store.
        judge: The LLM judge scorer, if any (applied to cases expecting a refusal).
        system_prefix: Text put before every case's system prompt (a deployment's own
            safety prompt, say); stored in the run's config. The suite and its hash are
            unchanged, so runs with and without a prefix compare case by case.
    """

    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_tokens=128))
    seed: int = 0
    repeat: int = 1
    batch_size: int = 16
    concurrency: int = 4
    use_cache: bool = True
    judge: JudgeScorer | None = None
    system_prefix: str | None = None

    def params_for(self, repeat: int) -> GenerationParams:
        """Return the decoding settings of one repeat."""
        p = self.params
        return GenerationParams(
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            seed=self.seed + repeat,
            stop=p.stop,
        )


@dataclass(frozen=True)
class EvalRun:
    """The outcome of :func:`run_eval`.

    Attributes:
        run_id: The run's id in the store.
        results: Every case result of the run (resumed ones included), in suite order.
        summary: The statistics.
        resumed: Results that were already stored and not recomputed.
        cache_hits: Model calls answered from the store in this session.
        model_calls: Model calls really sent in this session.
        wall_s: Seconds this session took.
    """

    run_id: str
    suite: str
    suite_hash: str
    model_uri: str
    results: list[CaseResult]
    summary: Summary
    resumed: int = 0
    cache_hits: int = 0
    model_calls: int = 0
    wall_s: float = 0.0


def family_kinds(suite: Suite) -> dict[str, str]:
    """Return each family's kind: declared, or inferred from its cases' expectations."""
    kinds: dict[str, str] = {f.name: f.kind for f in suite.families}
    for case in suite.cases:
        if case.family in kinds:
            continue
        exps = {e.kind for e in case.expect}
        if exps & {"refuse", "no_leak", "no_tool_call"}:
            kinds[case.family] = "attack"
        elif exps == {"comply"}:
            kinds[case.family] = "benign"
        else:
            kinds[case.family] = "capability"
    return kinds


@dataclass
class _Unit:
    case: Case
    repeat: int
    conversation: Conversation
    responses: list[ChatResponse] = field(default_factory=list)
    error: str | None = None


def _unit_order(unit: _Unit, continuous: bool) -> tuple[int, ...]:
    """Batches: similar prompt lengths together. Continuous: the most model turns first."""
    case = unit.case
    length = (
        sum(len(m.content or "") for m in case.messages)
        + len(case.system or "")
        + sum(len(d.content) for d in case.documents)
    )
    if continuous:
        return (unit.repeat, -unit.conversation.turns, length)
    return (unit.repeat, case.max_tokens or 0, length)


def _result(unit: _Unit, scores: Sequence[Score]) -> CaseResult:
    verdict, reason = combine_verdicts(scores)
    output_msgs = unit.conversation.transcript(unit.responses)
    final = unit.responses[-1] if unit.responses else None
    return CaseResult(
        case_id=unit.case.id,
        family=unit.case.family,
        repeat=unit.repeat,
        verdict=verdict,
        reason=reason,
        scores=[s.to_dict() for s in scores],
        messages=[m.to_dict() for m in output_msgs],
        output=final.text if final else "",
        tool_calls=[c.to_dict() for r in unit.responses for c in r.tool_calls],
        latency_s=round(sum(r.latency_s for r in unit.responses), 4),
        prompt_tokens=sum(r.prompt_tokens for r in unit.responses),
        completion_tokens=sum(r.completion_tokens for r in unit.responses),
        cached=bool(unit.responses) and all(r.cached for r in unit.responses),
        error=unit.error or next((r.error for r in unit.responses if r.error), None),
    )


async def _step(backend: ModelBackend, batch: list[_Unit]) -> list[_Unit]:
    """Send each unit's next request as one batch; return the units whose case is over."""
    requests = [u.conversation.request(u.responses) for u in batch]
    try:
        responses = await backend.generate([r for r in requests if r is not None])
    except Exception as exc:  # noqa: BLE001 - recorded per case as an error, retried on resume
        for unit in batch:
            unit.error = f"{type(exc).__name__}: {exc}"[:500]
        return batch
    over = []
    answers = iter(responses)
    for unit, request in zip(batch, requests, strict=True):
        if request is not None:
            response = next(answers)
            unit.responses.append(response)
            if response.error:
                unit.error = response.error
        if unit.error is not None or unit.conversation.request(unit.responses) is None:
            over.append(unit)
    return over


async def _score_batch(units: list[_Unit], judge: JudgeScorer | None) -> list[CaseResult]:
    outputs = [
        CaseOutput(tuple(u.responses), tuple(u.conversation.transcript(u.responses)), u.error)
        for u in units
    ]
    scores = [score_case(u.case, out) for u, out in zip(units, outputs, strict=True)]
    if judge is not None:
        judged = await judge.score_many([(u.case, o) for u, o in zip(units, outputs, strict=True)])
        for case_scores, extra in zip(scores, judged, strict=True):
            if extra is not None:
                case_scores.append(extra)
    return [_result(u, s) for u, s in zip(units, scores, strict=True)]


def _run_config(suite: Suite, backend: ModelBackend, config: EvalConfig) -> dict[str, Any]:
    ident = backend.identity()
    judge = None
    if config.judge is not None:
        judge = {
            "model": config.judge.backend.identity().to_dict(),
            "threshold": config.judge.threshold,
        }
    return {
        "suite": suite.name,
        "suite_version": suite.version,
        "suite_hash": suite.content_hash(),
        "cases": len(suite.cases),
        "families": sorted({c.family for c in suite.cases}),
        "kinds": family_kinds(suite),
        "model": ident.to_dict(),
        "model_hash": ident.content_hash,
        "params": config.params.to_dict(),
        "seed": config.seed,
        "repeat": config.repeat,
        "batch_size": config.batch_size,
        "concurrency": config.concurrency,
        "use_cache": config.use_cache,
        "judge": judge,
        "system_prefix": config.system_prefix or None,
    }


def _prefixed(case: Case, prefix: str | None) -> Case:
    """Return the case with ``prefix`` before its system prompt (the case itself if none)."""
    if not prefix:
        return case
    system = f"{prefix}\n\n{case.system}" if case.system else prefix
    return case.model_copy(update={"system": system})


def _recording(
    backend: ModelBackend, store: Store, config: EvalConfig, run_id: str
) -> RecordingBackend:
    from finegate.models.recording import RecordingBackend

    if isinstance(backend, RecordingBackend):
        backend.run_id = run_id
        return backend
    return RecordingBackend(backend, store, use_cache=config.use_cache, run_id=run_id)


def _open_run(
    store: Store, run_id: str | None, run_config: dict[str, Any], model_uri: str
) -> tuple[str, bool]:
    """Start a new run, or check that an existing one is the same evaluation."""
    if run_id is not None:
        run = store.get_run(run_id)
        if run is not None:
            if run.kind != "eval":
                raise ConfigError(f"run {run_id!r} is a {run.kind} run, not an eval run")
            for key in _RESUME_KEYS:
                if run.config.get(key) != run_config.get(key):
                    raise ConfigError(
                        f"cannot resume run {run_id!r}: its {key} differs",
                        hint="resume with the same model, suite and options",
                    )
            from finegate.store.schema import Run

            with store.session() as s:
                row = s.get(Run, run_id)
                if row is not None:
                    row.status = "running"
                    row.finished_at = None
            return run_id, True
    rid = store.start_run(
        "eval",
        model_uri=model_uri,
        model_hash=str(run_config["model_hash"]),
        config=run_config,
        run_id=run_id,
    )
    return rid, False


async def run_eval(
    backend: ModelBackend,
    suite: Suite,
    *,
    store: Store | None = None,
    config: EvalConfig | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    labels: dict[str, Any] | None = None,
) -> EvalRun:
    """Run a suite against a backend, recording every case; resume when ``run_id`` exists.

    Args:
        backend: Any backend; it is wrapped in a ``RecordingBackend`` unless it is one.
        suite: The suite to run.
        store: Where calls and results go (default: the process-wide store).
        config: Decoding, batching and scoring settings.
        run_id: Resume this run (or create a run with this id).
        progress: Called after each case.
        labels: Extra facts stored in a new run's config (e.g. how the suite was named).

    Raises:
        ConfigError: resuming a run whose suite, model or settings differ.
    """
    from finegate.store.db import open_store

    store = store or open_store()
    config = config or EvalConfig()
    if config.repeat < 1 or config.batch_size < 1 or config.concurrency < 1:
        raise ConfigError("repeat, batch size and concurrency must be at least 1")
    started = time.perf_counter()
    run_config = {**(labels or {}), **_run_config(suite, backend, config)}
    model_uri = str(run_config["model"]["uri"])
    rid, resuming = _open_run(store, run_id, run_config, model_uri)
    recording = _recording(backend, store, config, rid)
    hits0, misses0 = recording.hits, recording.misses
    try:
        if resuming:
            delete_errored(store, rid)
        done = done_keys(store, rid) if resuming else set()
        cases = [_prefixed(case, config.system_prefix) for case in suite.cases]
        units = [
            _Unit(case, r, Conversation(case, config.params_for(r)))
            for r in range(config.repeat)
            for case in cases
            if (case.id, r) not in done
        ]
        slots = recording.batch_slots
        continuous = slots > 0
        units.sort(key=lambda u: _unit_order(u, continuous))
        total = len(suite.cases) * config.repeat
        finished = total - len(units)
        if progress:
            progress(finished, total, None)
        # Workers take up to batch_size ready conversations; one that needs another model turn
        # goes back to the queue, so later turns of multi-turn cases share batches too. A
        # finished case is scored and written at once. A backend that batches concurrent calls
        # itself gets one conversation per call from its slots and a quarter more workers (a
        # few queued so freed slots refill at once), and a next turn goes to the front of the
        # queue: the turns of a long conversation are the run's critical path.
        take, workers = config.batch_size, config.concurrency
        if continuous:
            in_flight = config.batch_size * config.concurrency
            take, workers = 1, min(in_flight, slots + max(1, slots // 4))
        ready = list(units)
        open_units = len(units)
        wake = asyncio.Condition()

        def can_go() -> bool:
            return bool(ready) or open_units == 0

        async def worker() -> None:
            nonlocal finished, open_units
            while True:
                async with wake:
                    await wake.wait_for(can_go)
                    if not ready:
                        return
                    batch = ready[:take]
                    del ready[:take]
                over = await _step(recording, batch)
                results = await _score_batch(over, config.judge) if over else []
                write_results(store, rid, results)
                async with wake:
                    gone = {id(u) for u in over}
                    again = [u for u in batch if id(u) not in gone]
                    if continuous:
                        ready[:0] = again
                    else:
                        ready.extend(again)
                    open_units -= len(over)
                    wake.notify_all()
                for result in results:
                    finished += 1
                    if progress:
                        progress(finished, total, result)

        await asyncio.gather(*(worker() for _ in range(workers)))
    except BaseException:
        store.finish_run(rid, status="interrupted")
        raise
    results = load_results(store, rid)
    order = {c.id: i for i, c in enumerate(suite.cases)}
    results.sort(key=lambda r: (order.get(r.case_id, len(order)), r.repeat))
    summary = summarize(results, run_config["kinds"])
    wall = time.perf_counter() - started
    stored = {
        **summary.to_dict(),
        "wall_s": round(wall, 3),
        "cache_hits": recording.hits - hits0,
        "model_calls": recording.misses - misses0,
    }
    errors = sum(1 for r in results if r.verdict == "error")
    store.finish_run(rid, status="done" if not errors else "done_with_errors", summary=stored)
    return EvalRun(
        run_id=rid,
        suite=suite.name,
        suite_hash=str(run_config["suite_hash"]),
        model_uri=model_uri,
        results=results,
        summary=summary,
        resumed=len(done),
        cache_hits=recording.hits - hits0,
        model_calls=recording.misses - misses0,
        wall_s=wall,
    )


def run_eval_sync(backend: ModelBackend, suite: Suite, **kwargs: Any) -> EvalRun:
    """Run :func:`run_eval` to completion from synchronous code."""
    return asyncio.run(run_eval(backend, suite, **kwargs))
