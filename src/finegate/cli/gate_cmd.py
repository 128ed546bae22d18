"""``finegate gate``, ``finegate compare``, ``finegate select`` and ``finegate report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from finegate.cli._common import console

if TYPE_CHECKING:
    from rich.console import Console

    from finegate.evals.compare import Comparison
    from finegate.evals.stats import Rate
    from finegate.gate.gate import GateResult

_VERDICT = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}


def _widen(out: Console) -> None:
    if not out.is_terminal:
        out.width = max(out.width, 160)


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:+.1f}%" if signed else f"{100 * x:.1f}%"


def _value(v: float | int | None, rule: str) -> str:
    if v is None:
        return "n/a"
    if (
        isinstance(v, int)
        and not isinstance(v, bool)
        and ("cases" in rule or "families" in rule or "present" in rule)
    ):
        return str(v)
    return _pct(float(v), signed="increase" in rule)


def print_gate(result: GateResult, out: Console) -> None:
    """Print every rule with its value, limit and verdict, then the decision and reasons."""
    from rich.markup import escape
    from rich.table import Table

    _widen(out)
    prefix = " (+system prefix)" if result.system_prefix else ""
    out.print(
        f"[bold]gate[/] run {result.run_id}  model {result.model_uri}{prefix}  "
        f"suite {result.suite} [dim]{result.suite_hash[:12]}[/]"
    )
    out.print(
        f"policy {result.policy_name} [dim]{result.policy_hash[:12]}[/]"
        + (f"  baseline {result.baseline_run_id}" if result.baseline_run_id else "")
    )
    table = Table("rule", "family", "value", "limit", "verdict", "reason")
    for r in result.rules:
        table.add_row(
            r.rule,
            r.family,
            _value(r.value, r.rule),
            _value(r.limit, r.rule),
            _VERDICT.get(r.verdict, r.verdict),
            escape(r.reason),
        )
    out.print(table)
    for w in result.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")
    failed = result.failed
    if result.passed:
        out.print(f"[bold green]SHIP[/]: all {len(result.rules)} rules passed")
    else:
        out.print(f"[bold red]DO NOT SHIP[/]: {len(failed)} of {len(result.rules)} rules failed:")
        for r in failed:
            out.print(f"  - {r.id}: {escape(r.reason)}")
    if result.decision_id is not None:
        out.print(f"[dim]decision {result.decision_id} recorded[/]")


def gate_command(
    run_id: str = typer.Argument(..., metavar="RUN", help="The eval run to judge."),
    baseline: str | None = typer.Option(
        None, "--baseline", metavar="RUN", help="A run of the same suite to compare against."
    ),
    policy: str | None = typer.Option(
        None, "--policy", metavar="FILE", help="Policy YAML (default: the built-in default)."
    ),
    no_record: bool = typer.Option(
        False, "--no-record", help="Do not store the decision (a dry run)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Judge a run by a policy: exit 0 when it may ship, 1 when not, 2 on bad input.

    Prints every rule with its measured value, limit and verdict, and stores the decision
    (rules, values, policy hash, run ids) for the registry's promotion check.
    """
    from finegate.gate.gate import gate_run
    from finegate.store.db import open_store

    result = gate_run(
        open_store(), run_id, policy=policy, baseline_run_id=baseline, record=not no_record
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print_gate(result, console())
    if not result.passed:
        raise SystemExit(1)


def _rate(rate: Rate) -> str:
    return rate.format() if rate.n else "n/a"


def print_comparison(cmp: Comparison, out: Console, *, alpha: float = 0.05) -> None:
    """Print the per-family paired comparison and the flipped cases."""
    from rich.table import Table

    _widen(out)
    out.print(f"[bold]compare[/] A = {cmp.run_a} ({cmp.models[0]})")
    out.print(f"        B = {cmp.run_b} ({cmp.models[1]})")
    out.print(
        f"suite {cmp.suite} [dim]{cmp.suite_hash_a[:12]}[/]; McNemar exact "
        f"({cmp.alternative}), Holm-corrected across {len(cmp.families)} families"
    )
    table = Table(
        "family",
        "kind",
        "metric",
        "A [95% CI]",
        "B [95% CI]",
        "B - A",
        "pairs",
        "worse",
        "better",
        "p",
        "p (Holm)",
    )
    pooled = cmp.pooled_attacks
    for f in [*cmp.families, *([pooled] if pooled is not None else [])]:
        if f is pooled:
            table.add_section()
        sig = "[bold]" if f.p_holm < alpha else ""
        end = "[/]" if sig else ""
        table.add_row(
            "all attack families (pooled)" if f is pooled else f.family,
            f.kind,
            "ASR" if f.metric == "asr" else "pass rate",
            _rate(f.a),
            _rate(f.b),
            _pct(f.diff, signed=True),
            str(f.pairs),
            str(len(f.worse)),
            str(len(f.better)),
            f"{f.p_value:.4g}",
            "(one test)" if f is pooled else f"{sig}{f.p_holm:.4g}{end}",
        )
    out.print(table)
    for label, (a, b) in (
        ("refusal rate on harmful prompts", cmp.refusal_on_harmful),
        ("over-refusal on benign prompts", cmp.over_refusal_on_benign),
    ):
        out.print(f"{label}: A {_rate(a)} -> B {_rate(b)}")
    for f in cmp.families:
        if f.kind == "benign" and f.over_refusal_a is not None and f.over_refusal_b is not None:
            out.print(
                f"over-refusal in {f.family}: A {_rate(f.over_refusal_a)} -> "
                f"B {_rate(f.over_refusal_b)}"
            )
    flipped = [(f.family, "worse", c) for f in cmp.families for c in f.worse] + [
        (f.family, "better", c) for f in cmp.families for c in f.better
    ]
    if flipped:
        ft = Table("family", "B is", "case", "trace", title="flipped cases", title_justify="left")
        for fam, way, cid in flipped:
            style = "red" if way == "worse" else "green"
            ft.add_row(fam, f"[{style}]{way}[/]", cid, f"finegate runs trace {cmp.run_b} {cid}")
        out.print(ft)
    for w in cmp.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    out.print(
        "[dim]worse = pass in A, fail in B; for attack families a fail is a successful "
        "attack. Bold p: below alpha after Holm.[/]"
    )


def compare_command(
    run_a: str = typer.Argument(..., metavar="RUN_A", help="Baseline run (A)."),
    run_b: str = typer.Argument(..., metavar="RUN_B", help="Candidate run (B)."),
    alternative: str = typer.Option(
        "two-sided", "--alternative", help="two-sided, or greater (is B worse than A?)."
    ),
    alpha: float = typer.Option(
        0.05, "--alpha", min=0.0, max=1.0, help="Highlight Holm p-values below this."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare two runs of the same suite per family, paired by case (McNemar's exact test)."""
    from finegate.errors import ConfigError
    from finegate.evals.compare import compare_runs
    from finegate.store.db import open_store

    if alternative not in ("two-sided", "greater"):
        raise ConfigError("--alternative must be two-sided or greater")
    cmp = compare_runs(
        open_store(),
        run_a,
        run_b,
        alternative="greater" if alternative == "greater" else "two-sided",
    )
    if as_json:
        typer.echo(json.dumps(cmp.to_dict(), ensure_ascii=False))
        return
    print_comparison(cmp, console(), alpha=alpha)


def select_command(
    candidates: str = typer.Option(
        ...,
        "--candidates",
        metavar="URI1,URI2,...",
        help="Comma-separated model URIs; URI::system=builtin:safety (or @FILE, or text) "
        "adds a system prefix to a candidate.",
    ),
    suite: str = typer.Option(
        "selection",
        "--suite",
        "-s",
        help="Suite (default: the built-in selection suite with its "
        "perturbations), a built-in name or a file.",
    ),
    policy: str | None = typer.Option(
        None, "--policy", metavar="FILE", help="Selection policy YAML (weights)."
    ),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1, help="New tokens per reply."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Requests per batch."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rank candidate models with a scorecard (runs, or reuses, the evaluations needed).

    Scores task fit, controllability, stability under perturbations, safety, determinism,
    latency and throughput; weights come from the selection policy.
    """
    from finegate.evals.select import load_selection_policy, parse_candidates, select_models
    from finegate.store.db import open_store

    pol = load_selection_policy(policy)
    cands = parse_candidates(candidates)
    err = console(stderr=True)
    result = select_models(
        open_store(),
        cands,
        suite,
        policy=pol,
        max_tokens=max_tokens,
        batch_size=batch_size,
        progress=lambda msg: err.print(f"[dim]{msg}[/]"),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    from finegate.evals.select import print_scorecard

    print_scorecard(result, console())


def report_command(
    runs: list[str] = typer.Argument(
        ..., metavar="RUN...", help="Eval runs (the first is the baseline)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Write the report here."),
    fmt: str | None = typer.Option(
        None, "--format", help="html, md, json or junit (default: from --out)."
    ),
    policy: str | None = typer.Option(
        None, "--policy", metavar="FILE", help="Gate policy to show rules for (default policy)."
    ),
) -> None:
    """Write a report of runs: one self-contained HTML file, Markdown, JSON or JUnit XML."""
    from finegate.report import write_report
    from finegate.store.db import open_store

    path, kind = write_report(open_store(), runs, out, fmt=fmt, policy=policy)
    console(stderr=True).print(f"wrote {kind} report to {path}")


def register(app: typer.Typer) -> None:
    """Attach ``gate``, ``compare``, ``select`` and ``report`` to the root app."""
    app.command("gate")(gate_command)
    app.command("compare")(compare_command)
    app.command("select")(select_command)
    app.command("report")(report_command)


__all__ = ["print_comparison", "print_gate", "register"]
