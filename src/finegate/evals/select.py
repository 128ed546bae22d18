"""Model selection: run (or reuse) the evaluations of each candidate and rank them.

Per candidate the scorecard has, each in ``[0, 1]`` (higher is better):

- **task fit**: pass rate on the policy's task-fit families;
- **controllability**: pass rate on schema adherence, tool boundaries and instruction
  hierarchy families;
- **stability**: 1 - the share of cases whose verdict flips under the suite's perturbations
  (system prompt paraphrased or reformatted, retrieved documents reordered);
- **safety**: 1 - the mean ASR over the attack families;
- **debuggability**: 1 - the share of cases whose verdict differs across repeated greedy runs;
- **latency**: the fastest candidate's median per-case latency / this one's;
- **throughput**: this candidate's tokens/s / the fastest's.

The overall score is the weighted mean (weights from the selection policy) over the
dimensions measured for every candidate; candidates are ranked by it, and the ranking says
which weighted differences decided it. Evaluations are ordinary eval runs (cached calls are
reused); the scorecard is stored as a run of kind ``select``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError
from finegate.gate.selection_policy import SelectionPolicy, load_selection_policy

if TYPE_CHECKING:
    from rich.console import Console

    from finegate.evals.results import CaseResult
    from finegate.evals.runner import EvalConfig, EvalRun
    from finegate.evals.schema import Suite
    from finegate.models.types import ModelBackend
    from finegate.store.db import Store

__all__ = [
    "DIMENSIONS",
    "Candidate",
    "Scorecard",
    "SelectionPolicy",
    "SelectionResult",
    "load_selection_policy",
    "load_selection_suite",
    "parse_candidates",
    "print_scorecard",
    "select_models",
]

DIMENSIONS = (
    "task_fit",
    "controllability",
    "stability",
    "safety",
    "debuggability",
    "latency",
    "throughput",
)
_SYSTEM_MARK = "::system="


def load_selection_suite(spec: str) -> Suite:
    """Load a suite for selection: ``selection`` is the built-in suite with perturbations."""
    from importlib import resources
    from pathlib import Path

    from finegate.evals.loader import load_suite, load_suite_file

    if spec == "selection" and not Path(spec).exists():
        entry = resources.files("finegate.resources").joinpath("suites").joinpath("selection.yaml")
        with resources.as_file(entry) as path:
            return load_suite_file(path)
    return load_suite(spec)


@dataclass(frozen=True)
class Candidate:
    """A model URI, optionally with a deployment system prefix."""

    uri: str
    system_prefix: str | None = None
    label: str = ""

    @property
    def name(self) -> str:
        """The label, or the URI."""
        return self.label or self.uri


def parse_candidates(text: str) -> list[Candidate]:
    """Parse ``URI1,URI2::system=builtin:safety,...``.

    Raises:
        ConfigError: for fewer than two candidates, duplicates or a bad system prefix.
    """
    from finegate.evals.perturb import resolve_system_prefix

    out: list[Candidate] = []
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        uri, sep, prefix = raw.partition(_SYSTEM_MARK)
        out.append(
            Candidate(
                uri=uri.strip(),
                system_prefix=resolve_system_prefix(prefix) if sep else None,
                label=raw,
            )
        )
    if len(out) < 2:
        raise ConfigError(
            "selection needs at least two candidates",
            hint="--candidates URI1,URI2 (URI::system=builtin:safety adds a system prefix)",
        )
    if len({c.name for c in out}) != len(out):
        raise ConfigError("the same candidate is listed twice")
    return out


@dataclass(frozen=True)
class Dimension:
    """One scorecard entry: the score in [0, 1], the raw measure, and what it counts."""

    score: float | None
    value: float | None
    detail: str


@dataclass(frozen=True)
class Scorecard:
    """One candidate's measured dimensions, weighted total and rank."""

    candidate: str
    model_uri: str
    model_hash: str
    run_id: str
    determinism_run_id: str | None
    perturbed_run_id: str | None
    dimensions: dict[str, Dimension]
    asr: dict[str, float | None]
    total: float = 0.0
    rank: int = 0
    why: str = ""


@dataclass(frozen=True)
class SelectionResult:
    """The ranked scorecards and the run id under which they are stored."""

    select_run_id: str
    suite: str
    suite_hash: str
    policy: str
    policy_hash: str
    weights: dict[str, float]
    used: list[str]
    cards: list[Scorecard] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return asdict(self)


def _rate(
    results: Sequence[CaseResult], families: Sequence[str], count: str = "pass"
) -> tuple[float | None, str]:
    from finegate.evals.stats import _representatives

    reps = [r for r in _representatives(results) if r.family in families]
    scored = [r for r in reps if r.verdict in ("pass", "fail")]
    if not scored:
        return None, "no scored case"
    k = sum(1 for r in scored if r.verdict == count)
    return k / len(scored), f"{k}/{len(scored)} cases"


def _stability(base: Sequence[CaseResult], perturbed: Sequence[CaseResult]) -> Dimension:
    from finegate.evals.perturb import base_case_id

    verdict = {r.case_id: r.verdict for r in base if r.repeat == 0}
    tested: set[str] = set()
    flipped: set[str] = set()
    for r in perturbed:
        orig = base_case_id(r.case_id)
        if (
            r.repeat
            or r.verdict not in ("pass", "fail")
            or verdict.get(orig) not in ("pass", "fail")
        ):
            continue
        tested.add(orig)
        if r.verdict != verdict[orig]:
            flipped.add(orig)
    if not tested:
        return Dimension(None, None, "no perturbable case was scored")
    share = len(flipped) / len(tested)
    return Dimension(
        1 - share,
        share,
        f"{len(flipped)}/{len(tested)} cases flip under a perturbation"
        + (f" ({', '.join(sorted(flipped)[:5])})" if flipped else ""),
    )


def _determinism(results: Sequence[CaseResult]) -> Dimension:
    by_case: dict[str, list[CaseResult]] = {}
    for r in results:
        by_case.setdefault(r.case_id, []).append(r)
    groups = [g for g in by_case.values() if len(g) > 1]
    if not groups:
        return Dimension(None, None, "no repeated case")
    flips = sum(1 for g in groups if len({r.verdict for r in g}) > 1)
    same_text = sum(1 for g in groups if len({r.output for r in g}) == 1)
    share = flips / len(groups)
    return Dimension(
        1 - share,
        share,
        f"{flips}/{len(groups)} cases change verdict across "
        f"{len(groups[0])} greedy runs; {same_text}/{len(groups)} identical text",
    )


def _speed(results: Sequence[CaseResult]) -> tuple[float | None, float | None]:
    lat = sorted(r.latency_s for r in results if r.latency_s > 0 and r.verdict != "error")
    tokens = sum(r.completion_tokens for r in results if r.verdict != "error")
    total = sum(lat)
    median = lat[len(lat) // 2] if lat else None
    return median, (tokens / total if total > 0 else None)


def _find_run(store: Store, suite: Suite, backend: ModelBackend, config: EvalConfig) -> str | None:
    """Return a finished run of exactly this evaluation, if one is stored."""
    ident = backend.identity()
    want = {
        "suite_hash": suite.content_hash(),
        "model_hash": ident.content_hash,
        "params": config.params.to_dict(),
        "seed": config.seed,
        "repeat": config.repeat,
        "system_prefix": config.system_prefix or None,
    }
    for run in store.list_runs(kind="eval", limit=500):
        if (
            run.status == "done"
            and all(run.config.get(k) == v for k, v in want.items())
            and run.config.get("judge") is None
        ):
            return run.id
    return None


def _run(
    store: Store, backend: ModelBackend, suite: Suite, config: EvalConfig, label: str
) -> tuple[str, list[CaseResult]]:
    from finegate.evals.results import load_results
    from finegate.evals.runner import run_eval

    rid = _find_run(store, suite, backend, config)
    if rid is not None:
        return rid, load_results(store, rid)
    run: EvalRun = asyncio.run(
        run_eval(
            backend,
            suite,
            store=store,
            config=config,
            labels={"suite_spec": label, "selection": True},
        )
    )
    return run.run_id, run.results


def _evaluate(
    store: Store,
    backend: ModelBackend,
    cand: Candidate,
    suite: Suite,
    policy: SelectionPolicy,
    params: Any,
    batch_size: int,
    say: Callable[[str], None],
) -> Scorecard:
    from finegate.evals.perturb import perturbed_suite
    from finegate.evals.runner import EvalConfig, family_kinds

    config = EvalConfig(params=params, batch_size=batch_size, system_prefix=cand.system_prefix)
    say(f"{cand.name}: {suite.name} ({len(suite.cases)} cases)")
    rid, base = _run(store, backend, suite, config, suite.name)
    kinds = family_kinds(suite)
    dims: dict[str, Dimension] = {}
    for name, fams in (
        ("task_fit", policy.task_fit_families),
        ("controllability", policy.controllability_families),
    ):
        value, detail = _rate(base, [f for f in fams if f in kinds])
        dims[name] = Dimension(value, value, f"pass rate {detail} ({', '.join(fams)})")
    attack = sorted(f for f, k in kinds.items() if k == "attack")
    asr = {f: _rate(base, [f], count="fail")[0] for f in attack}
    measured = [v for v in asr.values() if v is not None]
    mean_asr = sum(measured) / len(measured) if measured else None
    dims["safety"] = Dimension(
        None if mean_asr is None else 1 - mean_asr,
        mean_asr,
        f"mean ASR {_pct(mean_asr)} over {len(measured)} attack families",
    )
    pert_id = None
    variants = perturbed_suite(suite)
    if variants is not None:
        say(f"{cand.name}: {len(variants.cases)} perturbed cases")
        pert_id, pert = _run(store, backend, variants, config, variants.name)
        dims["stability"] = _stability(base, pert)
    else:
        dims["stability"] = Dimension(None, None, "the suite declares no perturbation")
    det = policy.determinism
    sample = suite.model_copy(
        update={"name": f"{suite.name}~determinism", "cases": suite.cases[: det.max_cases]}
    )
    say(f"{cand.name}: {len(sample.cases)} cases x {det.repeats} greedy repeats")
    det_config = EvalConfig(
        params=params, batch_size=batch_size, repeat=det.repeats, system_prefix=cand.system_prefix
    )
    det_id, det_results = _run(store, backend, sample, det_config, sample.name)
    dims["debuggability"] = _determinism(det_results)
    median, tps = _speed(base)
    dims["latency"] = Dimension(
        None, median, "median seconds per case" if median is not None else "no timing"
    )
    dims["throughput"] = Dimension(None, tps, "completion tokens per second")
    ident = backend.identity()
    return Scorecard(
        candidate=cand.name,
        model_uri=cand.uri,
        model_hash=ident.content_hash,
        run_id=rid,
        determinism_run_id=det_id,
        perturbed_run_id=pert_id,
        dimensions=dims,
        asr=asr,
    )


def _relative(cards: list[Scorecard]) -> list[Scorecard]:
    """Score latency and throughput relative to the best candidate."""
    from dataclasses import replace

    lats = [c.dimensions["latency"].value for c in cards]
    tps = [c.dimensions["throughput"].value for c in cards]
    best_lat = min((v for v in lats if v), default=None)
    best_tps = max((v for v in tps if v), default=None)
    out = []
    for c in cards:
        dims = dict(c.dimensions)
        lat, thr = dims["latency"], dims["throughput"]
        if lat.value and best_lat:
            dims["latency"] = replace(
                lat, score=best_lat / lat.value, detail=f"median {lat.value:.2f} s per case"
            )
        if thr.value and best_tps:
            dims["throughput"] = replace(
                thr, score=thr.value / best_tps, detail=f"{thr.value:.1f} completion tokens/s"
            )
        out.append(replace(c, dimensions=dims))
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _label(dim: str) -> str:
    return dim.replace("_", " ")


def _rank(cards: list[Scorecard], weights: dict[str, float]) -> tuple[list[Scorecard], list[str]]:
    from dataclasses import replace

    used = [
        d
        for d in DIMENSIONS
        if weights.get(d, 0) > 0 and all(c.dimensions[d].score is not None for c in cards)
    ]
    total_w = sum(weights[d] for d in used) or 1.0

    def contrib(card: Scorecard, d: str) -> float:
        return weights[d] * float(card.dimensions[d].score or 0.0) / total_w

    scored = [replace(c, total=round(sum(contrib(c, d) for d in used), 4)) for c in cards]
    scored.sort(key=lambda c: (-c.total, c.candidate))
    ranked: list[Scorecard] = []
    for i, card in enumerate(scored):
        if i + 1 < len(scored):
            other, verb = scored[i + 1], "ahead of"
        elif i > 0:
            other, verb = scored[i - 1], "behind"
        else:
            ranked.append(replace(card, rank=1))
            continue
        diffs = sorted(((contrib(card, d) - contrib(other, d), d) for d in used), reverse=True)
        gains = [f"{_label(d)} (+{v:.3f})" for v, d in diffs if v > 0.0005][:2]
        losses = [f"{_label(d)} ({v:.3f})" for v, d in sorted(diffs) if v < -0.0005][:2]
        why = f"{verb} {other.candidate} by {card.total - other.total:+.3f}"
        if gains:
            why += "; better on " + ", ".join(gains)
        if losses:
            why += "; worse on " + ", ".join(losses)
        ranked.append(replace(card, rank=i + 1, why=why))
    return ranked, used


def select_models(
    store: Store,
    candidates: Sequence[Candidate],
    suite: str | Suite,
    *,
    policy: SelectionPolicy | None = None,
    max_tokens: int = 128,
    batch_size: int = 16,
    progress: Callable[[str], None] | None = None,
) -> SelectionResult:
    """Evaluate (or reuse the evaluations of) every candidate and rank them.

    Args:
        store: Where runs are found and written.
        candidates: At least two candidates.
        suite: A suite, or a name/file for :func:`load_selection_suite`.
        policy: Weights and families (default: the built-in selection policy).
        max_tokens: New tokens per reply (greedy decoding).
        batch_size: Requests per batch.
        progress: Called with a line per step.

    Raises:
        ConfigError: for fewer than two candidates or a bad suite/policy.
        PermissionDeniedError: when the current principal may not run evaluations.
    """
    from finegate.governance import Action, audit_event, authorize, resolve_actor
    from finegate.models.types import GenerationParams
    from finegate.models.uri import BackendOptions, load_backend

    if len(candidates) < 2:
        raise ConfigError("selection needs at least two candidates")
    pol = policy or load_selection_policy()
    the_suite = suite if not isinstance(suite, str) else load_selection_suite(suite)
    actor = resolve_actor(store, None)
    authorize(store, actor, Action.RUN_EVALS, object_type="suite", object_id=the_suite.name)
    say = progress or (lambda _msg: None)
    params = GenerationParams(max_tokens=max_tokens)
    backends: dict[str, ModelBackend] = {}
    cards = []
    try:
        for cand in candidates:
            if cand.uri not in backends:
                backends[cand.uri] = load_backend(cand.uri, BackendOptions(batch_size=batch_size))
            cards.append(
                _evaluate(store, backends[cand.uri], cand, the_suite, pol, params, batch_size, say)
            )
    finally:
        for backend in backends.values():
            asyncio.run(backend.aclose())
    weights = pol.weights.model_dump()
    ranked, used = _rank(_relative(cards), weights)
    notes = [
        f"{_label(d)} not scored for every candidate: left out of the total"
        for d in DIMENSIONS
        if d not in used and weights.get(d, 0) > 0
    ]
    config = {
        "candidates": [asdict(c) for c in candidates],
        "suite": the_suite.name,
        "suite_hash": the_suite.content_hash(),
        "policy": pol.model_dump(mode="json"),
        "policy_hash": pol.content_hash(),
        "max_tokens": max_tokens,
    }
    rid = store.start_run("select", config=config)
    result = SelectionResult(
        select_run_id=rid,
        suite=the_suite.name,
        suite_hash=the_suite.content_hash(),
        policy=pol.name,
        policy_hash=pol.content_hash(),
        weights=weights,
        used=used,
        cards=ranked,
        notes=notes,
    )
    summary = result.to_dict()
    store.finish_run(rid, summary=summary)
    audit_event(
        store,
        actor,
        "select.rank",
        "run",
        rid,
        after={"ranking": [c.candidate for c in ranked]},
        details={
            "suite_hash": result.suite_hash,
            "policy_hash": result.policy_hash,
            "runs": [c.run_id for c in ranked],
        },
    )
    return result


def print_scorecard(result: SelectionResult, out: Console) -> None:
    """Print the ranked scorecard table and the reasons."""
    from rich.markup import escape
    from rich.table import Table

    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(
        f"[bold]selection[/] on {result.suite} [dim]{result.suite_hash[:12]}[/], "
        f"policy {result.policy} [dim]{result.policy_hash[:12]}[/]"
    )
    table = Table("rank", "candidate", *[_label(d) for d in DIMENSIONS], "total")
    for c in result.cards:
        cells = []
        for d in DIMENSIONS:
            dim = c.dimensions[d]
            cells.append("n/a" if dim.score is None else f"{dim.score:.2f}")
        table.add_row(str(c.rank), escape(c.candidate), *cells, f"[bold]{c.total:.3f}[/]")
    out.print(table)
    out.print("weights: " + ", ".join(f"{_label(d)} {result.weights[d]:g}" for d in DIMENSIONS))
    for c in result.cards:
        out.print(f"[bold]{c.rank}. {escape(c.candidate)}[/] (run {c.run_id}): {c.why}")
        for d in DIMENSIONS:
            out.print(f"   {_label(d):16} {escape(c.dimensions[d].detail)}")
        worst = sorted(((v, f) for f, v in c.asr.items() if v is not None), reverse=True)[:3]
        if worst:
            out.print("   highest ASR: " + ", ".join(f"{f} {100 * v:.0f}%" for v, f in worst))
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")
    out.print(f"[dim]stored as run {result.select_run_id}[/]")
