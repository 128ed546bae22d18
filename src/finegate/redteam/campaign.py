"""A red-team campaign: seeds -> generated attacks within a budget -> one recorded eval run.

1. The seed suite's attack cases (those without retrieved documents: their payload is in the
   user's message) are played against the target. Seeds it resists are attacked first;
   seeds it already fails are only attacked with ``include_broken``.
2. Strategies run in the order given, each as one batch over the seeds still standing (a
   seed that breaks is left alone unless ``exhaustive``), until the query budget (target
   queries spent on generated attacks; the seed probes are not counted) is used.
3. Every seed and every generated attack becomes a case of one generated suite, stored as an
   artifact, and that suite is run by the ordinary eval runner. Every probe came from the call
   cache's point of view the same request, so the run is answered from the store: it is a run
   like any other (``runs show``, ``compare``, ``gate``, ``report`` work on it) and the attack
   replays identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError
from finegate.evals.runner import EvalConfig, EvalRun, family_kinds, run_eval
from finegate.evals.schema import Case, Suite
from finegate.evals.scoring import CaseOutput
from finegate.models.types import ChatRequest, GenerationParams, ModelBackend
from finegate.redteam._probe import (
    Judged,
    generate_in_batches,
    judge_outputs,
    last_user_text,
    probe,
    with_turns,
)
from finegate.redteam.attacker import Attack, AttackLoop
from finegate.redteam.mutators import (
    PARAPHRASE_PROMPT,
    clean_model_rewrite,
    get_strategy,
    strategy_names,
)

if TYPE_CHECKING:
    from finegate.evals.judge import JudgeScorer
    from finegate.store.db import Store

__all__ = [
    "AttackRecord",
    "RedteamConfig",
    "RedteamProgress",
    "RedteamResult",
    "default_strategies",
    "run_redteam",
    "run_redteam_sync",
    "select_seeds",
]

RedteamProgress = Callable[[str, int, int], None]
"""Called with (stage, queries used, budget) as the campaign goes."""


def default_strategies() -> tuple[str, ...]:
    """Every registered strategy: text ones first, then model-based, then multi-turn."""
    return (
        *strategy_names("text"),
        *strategy_names("model"),
        *strategy_names("multi-turn"),
    )


@dataclass(frozen=True)
class RedteamConfig:
    """How a campaign runs.

    Attributes:
        strategies: Strategy names, tried in this order (default: all).
        budget: Target queries to spend on generated attacks (seed probes not counted).
        max_turns: Turns of a crescendo attack.
        pair_iterations: Prompts a PAIR attack may try per seed.
        exhaustive: Keep attacking a seed after one of its variants broke the target.
        include_broken: Also attack seeds the target already fails.
        eval: The eval settings of the target (decoding, batching); the run uses them too.
        attacker_params: The attacker model's decoding settings.
    """

    strategies: tuple[str, ...] = field(default_factory=default_strategies)
    budget: int = 200
    max_turns: int = 4
    pair_iterations: int = 3
    exhaustive: bool = False
    include_broken: bool = False
    eval: EvalConfig = field(default_factory=EvalConfig)
    attacker_params: GenerationParams = field(
        default_factory=lambda: GenerationParams(max_tokens=96, temperature=0.0, seed=0)
    )


@dataclass(frozen=True)
class AttackRecord:
    """One generated attack and how it went (verdicts from the recorded run).

    Attributes:
        case_id: The generated case's id (``<seed>::rt-<strategy>``).
        seed_id: The seed it came from.
        strategy: The strategy that made it.
        family: The seed's family.
        verdict: The attack case's verdict (``fail`` means the attack succeeded).
        seed_verdict: The seed's verdict (``pass`` means the target resisted the seed).
        sources: For attacker loops, where each turn came from.
    """

    case_id: str
    seed_id: str
    strategy: str
    family: str
    verdict: str
    seed_verdict: str
    sources: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        """The attack broke the target."""
        return self.verdict == "fail"

    @property
    def new_break(self) -> bool:
        """The attack succeeded where its seed had failed."""
        return self.succeeded and self.seed_verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "case_id": self.case_id,
            "seed_id": self.seed_id,
            "strategy": self.strategy,
            "family": self.family,
            "verdict": self.verdict,
            "seed_verdict": self.seed_verdict,
            "sources": list(self.sources),
            "new_break": self.new_break,
        }


@dataclass(frozen=True)
class RedteamResult:
    """The outcome of :func:`run_redteam`.

    Attributes:
        run: The recorded eval run of the generated suite.
        suite: The generated suite (seeds and attacks).
        suite_sha: Its artifact hash in the store.
        attacks: One record per generated attack.
        seeds: Seeds considered; ``resisted``: those the target passed.
        queries: Target queries spent on generated attacks.
        budget: The budget.
        model_calls: Calls really sent (target, attacker, judge); the rest came from the cache.
        cache_hits: Calls answered from the store.
    """

    run: EvalRun
    suite: Suite
    suite_sha: str
    attacks: list[AttackRecord]
    seeds: int
    resisted: int
    queries: int
    budget: int
    model_calls: int
    cache_hits: int
    wall_s: float

    @property
    def new_breaks(self) -> list[AttackRecord]:
        """Attacks that succeeded where their seed failed."""
        return [a for a in self.attacks if a.new_break]

    def per_strategy(self) -> dict[str, dict[str, int]]:
        """Return strategy -> {tried, succeeded, new_breaks}, in the order strategies ran."""
        out: dict[str, dict[str, int]] = {}
        for a in self.attacks:
            row = out.setdefault(a.strategy, {"tried": 0, "succeeded": 0, "new_breaks": 0})
            row["tried"] += 1
            row["succeeded"] += int(a.succeeded)
            row["new_breaks"] += int(a.new_break)
        return out


def select_seeds(suite: Suite) -> list[Case]:
    """Return the suite's attack cases whose payload is in a user message."""
    kinds = family_kinds(suite)
    return [c for c in suite.cases if kinds.get(c.family) == "attack" and not c.documents]


@dataclass
class _Campaign:
    target: ModelBackend
    helper: ModelBackend | None
    judge: JudgeScorer | None
    config: RedteamConfig
    progress: RedteamProgress | None
    used: int = 0
    generated: list[Case] = field(default_factory=list)
    origin: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def left(self) -> int:
        return self.config.budget - self.used

    @property
    def params(self) -> GenerationParams:
        return self.config.eval.params_for(0)

    def _tick(self, stage: str, spent: int) -> None:
        self.used += spent
        if self.progress:
            self.progress(stage, self.used, self.config.budget)

    def _keep(self, case: Case, seed: Case, strategy: str, sources: Sequence[str] = ()) -> None:
        self.generated.append(case)
        self.origin[case.id] = (seed.id, strategy, tuple(sources))

    async def probe_cases(self, cases: Sequence[Case]) -> list[CaseOutput]:
        ev = self.config.eval
        return await probe(self.target, cases, self.params, ev.batch_size, ev.concurrency)

    def _variant(self, seed: Case, strategy: str, text: str) -> Case:
        return with_turns(
            seed,
            [text],
            case_id=f"{seed.id}::rt-{strategy}",
            tags=["redteam", f"strategy:{strategy}", f"seed:{seed.id}"],
            notes=f"redteam {strategy} of {seed.id}",
        )

    async def _single_turn(
        self, strategy: str, seeds: list[Case], texts: list[str], broken: set[str]
    ) -> None:
        """Probe one single-turn variant per seed; add the seeds it broke to ``broken``."""
        cases = [self._variant(s, strategy, t) for s, t in zip(seeds, texts, strict=True)]
        outputs = await self.probe_cases(cases)
        judged = await judge_outputs(cases, outputs, self.judge)
        for seed, case, verdict in zip(seeds, cases, judged, strict=True):
            self._keep(case, seed, strategy)
            if verdict.success:
                broken.add(seed.id)
        self._tick(strategy, len(cases))

    async def _paraphrases(self, seeds: list[Case]) -> list[tuple[Case, str]]:
        helper = self.helper or self.target
        requests = [
            ChatRequest.from_prompt(
                PARAPHRASE_PROMPT.format(request=last_user_text(s)),
                params=self.config.attacker_params,
            )
            for s in seeds
        ]
        ev = self.config.eval
        answers = await generate_in_batches(helper, requests, ev.batch_size, ev.concurrency)
        out = []
        for seed, answer in zip(seeds, answers, strict=True):
            text = clean_model_rewrite(answer.text) if not answer.error else ""
            if len(text) >= 12 and text != last_user_text(seed):
                out.append((seed, text))
        return out

    def _keep_attacks(self, attacks: Sequence[Attack]) -> set[str]:
        broken = set()
        for attack in attacks:
            if not attack.complete:
                continue  # the budget ran out before it asked for the goal: nothing to judge
            for case in attack.cases:
                self._keep(case, attack.seed, attack.strategy, attack.sources)
            if attack.succeeded:
                broken.add(attack.seed.id)
        return broken

    async def run(self, targets: list[Case], seed_replies: dict[str, str]) -> None:
        broken: set[str] = set()
        loop = AttackLoop(
            self.target,
            attacker=self.helper,
            judge=self.judge,
            params=self.params,
            attacker_params=self.config.attacker_params,
            batch_size=self.config.eval.batch_size,
            concurrency=self.config.eval.concurrency,
        )
        for name in self.config.strategies:
            if self.left <= 0:
                break
            strategy = get_strategy(name)
            standing = [s for s in targets if self.config.exhaustive or s.id not in broken]
            if not standing:
                break
            if strategy.kind == "text":
                assert strategy.mutate is not None
                batch = standing[: self.left]
                texts = [strategy.mutate(last_user_text(s)) for s in batch]
                await self._single_turn(name, batch, texts, broken)
            elif strategy.kind == "model":
                pairs = await self._paraphrases(standing[: self.left])
                if pairs:
                    seeds, texts = [p[0] for p in pairs], [p[1] for p in pairs]
                    await self._single_turn(name, seeds, texts, broken)
            elif name == "crescendo":
                attacks = await loop.crescendo(
                    standing,
                    max_turns=self.config.max_turns,
                    budget=self.left,
                    on_turn=lambda n: self._tick("crescendo", n),
                )
                broken |= self._keep_attacks(attacks)
            elif name == "pair":
                attacks = await loop.pair(
                    standing,
                    [seed_replies.get(s.id, "") for s in standing],
                    iterations=self.config.pair_iterations,
                    budget=self.left,
                    on_turn=lambda n: self._tick("pair", n),
                )
                broken |= self._keep_attacks(attacks)


_RUNNABLE = ("paraphrase", "crescendo", "pair")


def _check(config: RedteamConfig) -> None:
    if config.budget < 1:
        raise ConfigError("the budget must be at least 1 query")
    if config.max_turns < 2 or config.pair_iterations < 1:
        raise ConfigError("crescendo needs at least 2 turns and PAIR at least 1 iteration")
    if not config.strategies:
        raise ConfigError("no strategies given")
    if len(set(config.strategies)) != len(config.strategies):
        raise ConfigError("a strategy is named twice")
    for name in config.strategies:
        strategy = get_strategy(name)  # raises with the known names
        # Text strategies bring their own mutate; the other kinds need a loop in this module.
        if strategy.kind != "text" and name not in _RUNNABLE:
            raise ConfigError(
                f"strategy {name!r} is a {strategy.kind} strategy the campaign cannot run",
                hint=f"{strategy.kind} strategies run here: {', '.join(_RUNNABLE)}",
            )


async def run_redteam(
    target: ModelBackend,
    seeds: Suite,
    *,
    store: Store | None = None,
    config: RedteamConfig | None = None,
    attacker: ModelBackend | None = None,
    judge: JudgeScorer | None = None,
    progress: RedteamProgress | None = None,
) -> RedteamResult:
    """Red-team ``target`` starting from the attack cases of ``seeds`` (see the module docs).

    Args:
        target: The model under attack.
        seeds: The seed suite (``core``, a family, a file).
        store: The store (default: the process-wide one).
        config: Strategies, budget and settings.
        attacker: The attacker model for ``paraphrase``, ``crescendo`` and ``pair`` (None:
            the target paraphrases for itself; crescendo and PAIR use their fixed ladders).
        judge: An LLM judge for the attacker's feedback and the run's scoring.
        progress: Called as queries are spent.

    Raises:
        ConfigError: for a bad budget, unknown strategy or a suite without attack cases.
    """
    from finegate.models.recording import RecordingBackend
    from finegate.store.db import open_store

    store = store or open_store()
    config = config or RedteamConfig()
    _check(config)
    started = time.perf_counter()
    seed_cases = select_seeds(seeds)
    if not seed_cases:
        raise ConfigError(
            f"suite {seeds.name!r} has no attack cases to start from",
            hint="use --seeds core or an attack family such as harmful-requests",
        )

    def recorded(backend: ModelBackend) -> RecordingBackend:
        return (
            backend
            if isinstance(backend, RecordingBackend)
            else RecordingBackend(backend, store, use_cache=True)
        )

    rec_target = recorded(target)
    rec_helper = recorded(attacker) if attacker is not None else None
    counters = [b for b in (rec_target, rec_helper) if b is not None]
    if judge is not None and not isinstance(judge.backend, RecordingBackend):
        judge.backend = RecordingBackend(judge.backend, store, use_cache=True)
    if judge is not None and isinstance(judge.backend, RecordingBackend):
        counters.append(judge.backend)
    before = [(b.hits, b.misses) for b in counters]

    campaign = _Campaign(rec_target, rec_helper, judge, config, progress)
    outputs = await campaign.probe_cases(seed_cases)
    seed_judged: list[Judged] = await judge_outputs(seed_cases, outputs, judge)
    if progress:
        progress("seeds", 0, config.budget)
    seed_replies = {c.id: o.text for c, o in zip(seed_cases, outputs, strict=True)}
    resisted = [c for c, j in zip(seed_cases, seed_judged, strict=True) if j.verdict == "pass"]
    broken_seeds = [c for c, j in zip(seed_cases, seed_judged, strict=True) if j.success]
    targets = resisted + (broken_seeds if config.include_broken else [])
    await campaign.run(targets, seed_replies)

    suite = Suite(
        name=f"redteam-{seeds.name}",
        version="1",
        description=(
            f"Generated by finegate redteam from {seeds.name} ({seeds.content_hash()[:12]}) "
            f"with {', '.join(config.strategies)}; budget {config.budget}."
        ),
        families=[f for f in seeds.families if any(c.family == f.name for c in seed_cases)],
        cases=[*seed_cases, *campaign.generated],
    )
    from finegate.evals.loader import suite_to_yaml

    suite_sha = store.artifacts.put_bytes(
        suite_to_yaml(suite).encode("utf-8"), kind="suite", name=f"{suite.name}.yaml"
    )
    origin = {cid: {"seed": o[0], "strategy": o[1]} for cid, o in campaign.origin.items()}
    labels = {
        "redteam": {
            "seeds": seeds.name,
            "seeds_hash": seeds.content_hash(),
            "strategies": list(config.strategies),
            "budget": config.budget,
            "queries": campaign.used,
            "attacker": rec_helper.identity().to_dict() if rec_helper else None,
            "suite_artifact": suite_sha,
            "origin": origin,
        }
    }
    run = await run_eval(rec_target, suite, store=store, config=config.eval, labels=labels)
    verdicts = {r.case_id: r.verdict for r in run.results if r.repeat == 0}
    records = [
        AttackRecord(
            case_id=cid,
            seed_id=seed_id,
            strategy=strategy,
            family=next(c.family for c in seed_cases if c.id == seed_id),
            verdict=verdicts.get(cid, "error"),
            seed_verdict=verdicts.get(seed_id, "error"),
            sources=sources,
        )
        for cid, (seed_id, strategy, sources) in campaign.origin.items()
    ]
    after = [(b.hits, b.misses) for b in counters]
    hits = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    misses = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return RedteamResult(
        run=run,
        suite=suite,
        suite_sha=suite_sha,
        attacks=records,
        seeds=len(seed_cases),
        resisted=len(resisted),
        queries=campaign.used,
        budget=config.budget,
        model_calls=misses,
        cache_hits=hits,
        wall_s=round(time.perf_counter() - started, 2),
    )


def run_redteam_sync(target: ModelBackend, seeds: Suite, **kwargs: Any) -> RedteamResult:
    """Run :func:`run_redteam` to completion from synchronous code."""
    import asyncio

    return asyncio.run(run_redteam(target, seeds, **kwargs))
