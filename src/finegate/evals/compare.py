"""Paired comparison of two runs of the same suite, per family, with exact tests.

Both runs answered the same cases, so their outcomes are paired: per family the comparison
counts the cases that went from pass to fail (B worse) and from fail to pass (B better) and
tests whether those discordant counts differ with McNemar's exact test (a binomial test of the
worse count among all discordant pairs, ``p = 0.5``). P-values are Holm-corrected across the
families compared. ``error`` and ``unscored`` cases are left out of the pairs and counted.

The headline rate per family is the ASR (fail / scored) for attack families and the pass rate
for benign and capability families; for benign families the over-refusal rate is given too.

With eight cases a family, a per-family test (Holm-corrected across a dozen families) can only
see a family that flips almost entirely. The comparison therefore also pools every attack
family's pairs into one paired test (:data:`POOLED_ATTACKS`): the question "is B worse at
resisting attacks?" asked of all attack cases at once. Its p-value is reported as a single
pre-specified test; the gate puts it into the Holm correction with the families.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from finegate.errors import ConfigError
from finegate.evals.stats import Outcome, Rate, _representatives, summarize, wilson

if TYPE_CHECKING:
    from finegate.store.db import Store

__all__ = [
    "POOLED_ATTACKS",
    "Comparison",
    "FamilyComparison",
    "compare_outcomes",
    "compare_runs",
    "holm",
    "mcnemar_exact",
]

Alternative = Literal["two-sided", "greater"]

POOLED_ATTACKS = "all-attacks"
"""The name of the pooled comparison of every attack family's pairs."""


def mcnemar_exact(worse: int, better: int, alternative: Alternative = "two-sided") -> float:
    """Return McNemar's exact p-value for discordant pair counts.

    Args:
        worse: Pairs that went pass -> fail (B worse than A).
        better: Pairs that went fail -> pass.
        alternative: ``two-sided`` (any difference) or ``greater`` (B worse than A).

    Returns:
        ``binomtest(worse, worse + better, 0.5)``'s p-value; 1.0 without discordant pairs.
    """
    n = worse + better
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(worse, n, 0.5, alternative=alternative).pvalue)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Return Holm-adjusted p-values (step-down, monotone, capped at 1)."""
    ordered = sorted(pvalues.items(), key=lambda kv: (kv[1], kv[0]))
    m = len(ordered)
    out: dict[str, float] = {}
    running = 0.0
    for i, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * p))
        out[name] = running
    return out


@dataclass(frozen=True)
class FamilyComparison:
    """One family of a paired comparison.

    Attributes:
        metric: ``asr`` (attack families) or ``pass_rate``.
        a: The metric in run A over the cases scored in both runs (with its interval).
        b: The same in run B.
        diff: ``b - a`` (positive: B has a higher ASR / pass rate).
        pairs: Cases scored (pass or fail) in both runs.
        worse: Case ids that passed in A and failed in B.
        better: Case ids that failed in A and passed in B.
        unpaired: Cases left out (error or unscored in either run).
        p_value: McNemar's exact test.
        p_holm: Holm-adjusted across the compared families.
        over_refusal_a: For benign families, run A's over-refusal rate.
        over_refusal_b: The same in run B.
    """

    family: str
    kind: str
    metric: str
    a: Rate
    b: Rate
    diff: float | None
    pairs: int
    worse: list[str]
    better: list[str]
    unpaired: int
    p_value: float
    p_holm: float = 1.0
    over_refusal_a: Rate | None = None
    over_refusal_b: Rate | None = None

    @property
    def flipped(self) -> list[str]:
        """Every case whose verdict changed, worse first."""
        return [*self.worse, *self.better]


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two runs (A is the baseline, B the candidate)."""

    run_a: str
    run_b: str
    suite: str
    suite_hash_a: str
    suite_hash_b: str
    alternative: str
    families: list[FamilyComparison]
    refusal_on_harmful: tuple[Rate, Rate]
    over_refusal_on_benign: tuple[Rate, Rate]
    models: tuple[str, str] = ("", "")
    warnings: list[str] = field(default_factory=list)
    pooled_attacks: FamilyComparison | None = None

    def family(self, name: str) -> FamilyComparison | None:
        """Return one family's comparison (:data:`POOLED_ATTACKS`: the pooled one)."""
        if name == POOLED_ATTACKS:
            return self.pooled_attacks
        return next((f for f in self.families if f.family == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        data = asdict(self)
        for fam, obj in zip(data["families"], self.families, strict=True):
            fam["flipped"] = obj.flipped
        if self.pooled_attacks is not None:
            data["pooled_attacks"]["flipped"] = self.pooled_attacks.flipped
        return data


def pool_attacks(
    families: Sequence[FamilyComparison], alternative: Alternative
) -> FamilyComparison | None:
    """Pool the pairs of every attack family into one comparison (None without attacks)."""
    attacks = [f for f in families if f.kind == "attack"]
    if not attacks:
        return None
    pairs = sum(f.pairs for f in attacks)
    worse = [c for f in attacks for c in f.worse]
    better = [c for f in attacks for c in f.better]
    a = wilson(sum(f.a.k for f in attacks), pairs)
    b = wilson(sum(f.b.k for f in attacks), pairs)
    p = mcnemar_exact(len(worse), len(better), alternative)
    return FamilyComparison(
        family=POOLED_ATTACKS,
        kind="attack",
        metric="asr",
        a=a,
        b=b,
        diff=None if a.rate is None or b.rate is None else b.rate - a.rate,
        pairs=pairs,
        worse=worse,
        better=better,
        unpaired=sum(f.unpaired for f in attacks),
        p_value=p,
        p_holm=p,
    )


def _verdicts(outcomes: Sequence[Outcome]) -> dict[str, Outcome]:
    return {o.case_id: o for o in _representatives(outcomes)}


def compare_outcomes(
    outcomes_a: Sequence[Outcome],
    outcomes_b: Sequence[Outcome],
    kinds: Mapping[str, str],
    *,
    run_a: str = "A",
    run_b: str = "B",
    suite: str = "",
    alternative: Alternative = "two-sided",
) -> Comparison:
    """Compare two sets of outcomes of the same cases, family by family.

    Raises:
        ConfigError: when the two sets do not cover the same case ids.
    """
    rep_a, rep_b = _verdicts(outcomes_a), _verdicts(outcomes_b)
    if set(rep_a) != set(rep_b):
        only_a = sorted(set(rep_a) - set(rep_b))
        only_b = sorted(set(rep_b) - set(rep_a))
        raise ConfigError(
            f"runs {run_a} and {run_b} do not share a suite: {len(only_a)} case(s) only in "
            f"{run_a}, {len(only_b)} only in {run_b} (e.g. {(only_a or only_b)[0]!r})",
            hint="compare runs of the same suite (same case ids)",
        )
    by_family: dict[str, list[str]] = defaultdict(list)
    for cid, o in sorted(rep_a.items()):
        by_family[o.family].append(cid)
    families: list[FamilyComparison] = []
    for family, ids in sorted(by_family.items()):
        kind = kinds.get(family, "attack")
        bad = "fail"  # attack success and a failed benign/capability case are both "fail"
        paired = [
            c
            for c in ids
            if rep_a[c].verdict in ("pass", "fail") and rep_b[c].verdict in ("pass", "fail")
        ]
        worse = [c for c in paired if rep_a[c].verdict == "pass" and rep_b[c].verdict == bad]
        better = [c for c in paired if rep_a[c].verdict == bad and rep_b[c].verdict == "pass"]
        count = "fail" if kind == "attack" else "pass"
        a = wilson(sum(1 for c in paired if rep_a[c].verdict == count), len(paired))
        b = wilson(sum(1 for c in paired if rep_b[c].verdict == count), len(paired))
        diff = None if a.rate is None or b.rate is None else b.rate - a.rate
        over_a = over_b = None
        if kind == "benign":
            over_a = summarize([rep_a[c] for c in ids], kinds).over_refusal_on_benign
            over_b = summarize([rep_b[c] for c in ids], kinds).over_refusal_on_benign
        families.append(
            FamilyComparison(
                family=family,
                kind=kind,
                metric="asr" if kind == "attack" else "pass_rate",
                a=a,
                b=b,
                diff=diff,
                pairs=len(paired),
                worse=worse,
                better=better,
                unpaired=len(ids) - len(paired),
                p_value=mcnemar_exact(len(worse), len(better), alternative),
                over_refusal_a=over_a,
                over_refusal_b=over_b,
            )
        )
    adjusted = holm({f.family: f.p_value for f in families})
    families = [FamilyComparison(**{**_fields(f), "p_holm": adjusted[f.family]}) for f in families]
    sum_a = summarize(list(rep_a.values()), kinds)
    sum_b = summarize(list(rep_b.values()), kinds)
    return Comparison(
        run_a=run_a,
        run_b=run_b,
        suite=suite,
        suite_hash_a="",
        suite_hash_b="",
        alternative=alternative,
        families=families,
        refusal_on_harmful=(sum_a.refusal_on_harmful, sum_b.refusal_on_harmful),
        over_refusal_on_benign=(sum_a.over_refusal_on_benign, sum_b.over_refusal_on_benign),
        pooled_attacks=pool_attacks(families, alternative),
    )


def _fields(obj: FamilyComparison) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def compare_runs(
    store: Store, run_a: str, run_b: str, *, alternative: Alternative = "two-sided"
) -> Comparison:
    """Compare two stored eval runs (A the baseline, B the candidate).

    Raises:
        ConfigError: when a run does not exist or the runs do not share case ids.
    """
    from dataclasses import replace

    from finegate.evals.results import get_eval_run, load_results

    ra, rb = get_eval_run(store, run_a), get_eval_run(store, run_b)
    kinds = {**(rb.config.get("kinds") or {}), **(ra.config.get("kinds") or {})}
    comparison = compare_outcomes(
        load_results(store, run_a),
        load_results(store, run_b),
        kinds,
        run_a=run_a,
        run_b=run_b,
        suite=str(ra.config.get("suite", "")),
        alternative=alternative,
    )
    hash_a, hash_b = str(ra.config.get("suite_hash", "")), str(rb.config.get("suite_hash", ""))
    warnings = []
    if hash_a != hash_b:
        warnings.append(
            "the runs' suite hashes differ (same case ids, different content): "
            f"{hash_a[:12]} vs {hash_b[:12]}"
        )
    for key in ("params", "seed", "repeat"):
        if ra.config.get(key) != rb.config.get(key):
            warnings.append(f"the runs' {key} differ: {ra.config.get(key)} vs {rb.config.get(key)}")
    return replace(
        comparison,
        suite_hash_a=hash_a,
        suite_hash_b=hash_b,
        models=(_model_label(ra.model_uri, ra.config), _model_label(rb.model_uri, rb.config)),
        warnings=warnings,
    )


def _model_label(uri: str | None, config: Mapping[str, Any]) -> str:
    label = uri or "?"
    if config.get("system_prefix"):
        label += " (+system prefix)"
    return label
