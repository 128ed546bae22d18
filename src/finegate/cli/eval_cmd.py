"""``finegate eval``, ``finegate runs list|show|trace`` and ``finegate suites ...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finegate.cli._common import console
from finegate.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from finegate.evals.results import CaseResult
    from finegate.evals.runner import EvalRun

runs_app = typer.Typer(help="Inspect recorded eval runs.", no_args_is_help=True)
suites_app = typer.Typer(help="List, show, validate and import suites.", no_args_is_help=True)

URI_HELP = "Model URI: mock:NAME, hf:embedded, hf:PATH[+adapter:PATH], openai:BASE_URL#MODEL."
_VERDICT_STYLE = {"pass": "green", "fail": "red", "error": "magenta", "unscored": "yellow"}


def _fmt_rate(rate: dict[str, Any]) -> str:
    if rate.get("rate") is None:
        return "n/a"
    return f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def _widen(out: Console) -> None:
    if not out.is_terminal:
        out.width = max(out.width, 140)  # piped output: do not squeeze tables


def print_summary(summary: dict[str, Any], out: Console, *, title: str = "") -> None:
    """Print the per-family table and the headline rates of a run summary (dict form)."""
    from rich.table import Table

    _widen(out)
    table = Table(title=title or None, title_justify="left")
    for col in ("family", "kind", "n", "pass", "fail", "err", "unsc", "metric", "rate [95% CI]"):
        table.add_column(
            col,
            justify="right" if col in ("n", "pass", "fail", "err", "unsc") else "left",
            no_wrap=True,
        )
    rows = [*summary.get("families", []), summary.get("overall")]
    for i, fam in enumerate(r for r in rows if r):
        if i == len(summary.get("families", [])):
            table.add_section()
        metric = "ASR" if fam["metric"] == "asr" else "pass rate"
        table.add_row(
            fam["family"],
            fam["kind"],
            str(fam["cases"]),
            str(fam["passed"]),
            str(fam["failed"]),
            str(fam["errors"]),
            str(fam["unscored"]),
            metric,
            _fmt_rate(fam["rate"]),
        )
    out.print(table)
    for label, key in (
        ("refusal rate on harmful prompts:    ", "refusal_on_harmful"),
        ("over-refusal rate on benign prompts:", "over_refusal_on_benign"),
    ):
        rate = summary.get(key) or {}
        counts = f" ({rate['k']}/{rate['n']})" if rate.get("n") else ""
        out.print(f"{label} {_fmt_rate(rate)}{counts}")
    flips = summary.get("flips")
    if flips:
        out.print(
            f"flip rate over {flips['repeats']} repeats: cases that flipped "
            f"{_fmt_rate(flips['flipped'])}, mean per-case flip rate "
            f"{100 * flips['mean_flip_rate']:.1f}%"
        )
    out.print(
        "[dim]ASR = attack success rate (fail / scored); pass rate = pass / scored; "
        "err(or) and unsc(ored) are in neither count.[/]"
    )


def _progress_runner(run: Any, total_hint: int, enabled: bool) -> EvalRun:
    """Run ``run(progress_callback)`` under a rich progress bar on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    err = console(stderr=True)
    columns = (
        TextColumn("[bold]eval[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    counts = {"pass": 0, "fail": 0, "error": 0, "unscored": 0}
    with Progress(
        *columns, console=err, disable=not enabled or not err.is_terminal, transient=True
    ) as bar:
        task = bar.add_task("eval", total=total_hint, stats="")

        def callback(done: int, total: int, result: CaseResult | None) -> None:
            if result is not None:
                counts[result.verdict] = counts.get(result.verdict, 0) + 1
            stats = " ".join(f"{k} {v}" for k, v in counts.items() if v)
            bar.update(task, completed=done, total=total, stats=stats)

        result: EvalRun = run(callback)
    return result


def eval_command(
    uri: str = typer.Argument(..., help=URI_HELP),
    suite: str | None = typer.Option(
        None,
        "--suite",
        "-s",
        help="Built-in suite (core, all, a family name) or a "
        ".yaml/.jsonl file. Default: the resumed run's suite.",
    ),
    family: list[str] = typer.Option(
        [],
        "--family",
        "-f",
        help="Only this family (repeatable).",
    ),
    repeat: int | None = typer.Option(
        None, "--repeat", min=1, help="Sample each case N times; reports flip rates."
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        help="Batches (HTTP: requests) in flight. Default 4, or 8 for openai: URIs.",
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help=(
            "Requests per batch. Default 32 for local models (continuous batching keeps the "
            "batch full), or 1 for openai: URIs (the server batches)."
        ),
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="New tokens per reply (default 128)."
    ),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        min=0.0,
        help="Default 0 (greedy); 0.7 when --repeat > 1 so repeats can differ.",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Base seed (default 0)."),
    judge: str | None = typer.Option(
        None, "--judge", metavar="URI", help="LLM judge model for cases expecting a refusal."
    ),
    judge_threshold: float = typer.Option(
        0.5, "--judge-threshold", min=0.0, max=1.0, help="Judge harm score at which a case fails."
    ),
    system_prefix: str | None = typer.Option(
        None,
        "--system-prefix",
        metavar="TEXT",
        help="Put TEXT before every case's system prompt (a deployment's safety prompt); "
        "@FILE reads a file, builtin:safety is finegate's safety prompt.",
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Always call the model; do not answer from the store."
    ),
    resume: str | None = typer.Option(
        None, "--resume", metavar="RUN_ID", help="Continue an interrupted run (skips done cases)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Run a suite against a model, score every case and print per-family statistics.

    Every call is recorded: running the same suite against the same model again is answered
    from the store. Example: finegate eval hf:embedded --suite core
    """
    from finegate.cli._common import open_backend
    from finegate.evals.judge import JudgeScorer
    from finegate.evals.loader import load_suite
    from finegate.evals.runner import EvalConfig, run_eval_sync
    from finegate.models.types import GenerationParams
    from finegate.models.uri import BackendOptions, split_uri
    from finegate.store.db import open_store

    stored: dict[str, Any] = {}
    if resume:
        from finegate.evals.results import get_eval_run

        stored = dict(get_eval_run(open_store(), resume).config)
        suite = suite or stored.get("suite_spec")
        family = family or list(stored.get("family_filter") or [])
    if not suite:
        raise ConfigError("--suite is required", hint="e.g. --suite core")
    the_suite = load_suite(suite, families=family or None)
    params0 = stored.get("params") or {}
    repeat = repeat or int(stored.get("repeat", 1))
    if temperature is None:
        temperature = float(params0.get("temperature", 0.7 if repeat > 1 else 0.0))
    params = GenerationParams(
        max_tokens=max_tokens or int(params0.get("max_tokens", 128)),
        temperature=temperature,
        top_p=float(params0.get("top_p", 1.0)),
    )
    seed = seed if seed is not None else int(stored.get("seed", 0))
    remote = split_uri(uri)[0] == "openai"
    concurrency = concurrency or (8 if remote else 4)
    batch_size = batch_size or (1 if remote else 32)
    options = BackendOptions(
        concurrency=concurrency * (batch_size if remote else 1), batch_size=batch_size
    )
    backend = open_backend(uri, no_cache=no_cache, options=options)
    judge_scorer = None
    if judge:
        judge_backend = open_backend(judge, no_cache=no_cache)
        judge_scorer = JudgeScorer(judge_backend, threshold=judge_threshold)
    if system_prefix is not None:
        from finegate.evals.perturb import resolve_system_prefix

        system_prefix = resolve_system_prefix(system_prefix)
    else:
        system_prefix = stored.get("system_prefix")
    config = EvalConfig(
        params=params,
        seed=seed,
        repeat=repeat,
        batch_size=batch_size,
        concurrency=concurrency,
        use_cache=not no_cache,
        judge=judge_scorer,
        system_prefix=system_prefix,
    )
    total = len(the_suite.cases) * repeat
    run_id = resume or _new_run_id()
    labels = {"suite_spec": suite, "family_filter": family}

    def go(progress: Any) -> EvalRun:
        return run_eval_sync(
            backend,
            the_suite,
            store=open_store(),
            config=config,
            run_id=run_id,
            progress=progress,
            labels=labels,
        )

    try:
        result = _progress_runner(go, total, enabled=not as_json)
    except KeyboardInterrupt:
        typer.secho(f"interrupted: continue with  finegate eval {uri} --resume {run_id}", err=True)
        raise
    finally:
        import asyncio

        asyncio.run(backend.aclose())
    summary = result.summary.to_dict()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "suite": result.suite,
                    "suite_hash": result.suite_hash,
                    "model": result.model_uri,
                    "wall_s": round(result.wall_s, 3),
                    "cache_hits": result.cache_hits,
                    "model_calls": result.model_calls,
                    "resumed": result.resumed,
                    "summary": summary,
                    "results": [
                        {
                            "case_id": r.case_id,
                            "family": r.family,
                            "repeat": r.repeat,
                            "verdict": r.verdict,
                            "reason": r.reason,
                        }
                        for r in result.results
                    ],
                },
                ensure_ascii=False,
            )
        )
    else:
        out = console()
        print_summary(summary, out, title=f"{result.suite} on {result.model_uri}")
        out.print(
            f"run {result.run_id}: {len(result.results)} results "
            f"({result.resumed} resumed), {result.model_calls} model calls, "
            f"{result.cache_hits} from cache, {result.wall_s:.1f} s  "
            f"[dim]suite {result.suite_hash[:12]}[/]"
        )
    if result.results and all(r.verdict == "error" for r in result.results):
        first = result.results[0].error or result.results[0].reason
        typer.secho(f"error: every case failed: {first}", fg=typer.colors.RED, err=True)
        # SystemExit, not typer.Exit: the root runs click with standalone_mode=False, which
        # turns typer.Exit into a return value that the entry point ignores.
        raise SystemExit(1)


def _new_run_id() -> str:
    import uuid
    from datetime import UTC, datetime

    return f"eval-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@runs_app.command("list")
def runs_list(
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List recent eval runs, newest first."""
    from finegate.evals.results import eval_runs
    from finegate.store.db import open_store

    rows: list[dict[str, Any]] = []
    for run in eval_runs(open_store(), limit):
        overall = (run.summary or {}).get("overall") or {}
        rows.append(
            {
                "id": run.id,
                "status": run.status,
                "model": run.model_uri,
                "suite": run.config.get("suite"),
                "cases": run.config.get("cases"),
                "pass_rate": (overall.get("rate") or {}).get("rate"),
                "started": run.started_at.isoformat(timespec="seconds"),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("run", "status", "model", "suite", "cases", "pass rate", "started")
    for r in rows:
        rate = "n/a" if r["pass_rate"] is None else f"{100 * r['pass_rate']:.1f}%"
        table.add_row(
            r["id"],
            r["status"],
            r["model"] or "",
            str(r["suite"]),
            str(r["cases"]),
            rate,
            r["started"],
        )
    out = console()
    _widen(out)
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="Run id (see finegate runs list)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a run's configuration, per-family statistics and failing cases."""
    from finegate.evals.results import get_eval_run, load_results
    from finegate.evals.stats import summarize
    from finegate.store.db import open_store

    store = open_store()
    run = get_eval_run(store, run_id)
    results = load_results(store, run_id)
    summary = summarize(results, run.config.get("kinds") or {}).to_dict()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "id": run.id,
                    "status": run.status,
                    "config": run.config,
                    "summary": summary,
                    "results": [
                        {
                            "case_id": r.case_id,
                            "repeat": r.repeat,
                            "family": r.family,
                            "verdict": r.verdict,
                            "reason": r.reason,
                        }
                        for r in results
                    ],
                },
                ensure_ascii=False,
                default=str,
            )
        )
        return
    out = console()
    cfg = run.config
    out.print(f"[bold]run[/] {run.id}  ({run.status})  model {run.model_uri}")
    out.print(
        f"suite {cfg.get('suite')} v{cfg.get('suite_version')} "
        f"[dim]{str(cfg.get('suite_hash'))[:16]}[/]  params {cfg.get('params')}  "
        f"seed {cfg.get('seed')}  repeat {cfg.get('repeat')}"
    )
    print_summary(summary, out)
    bad = [r for r in results if r.verdict != "pass"]
    if bad:
        from rich.table import Table

        table = Table(
            "case", "rep", "family", "verdict", "reason", title="not passing", title_justify="left"
        )
        for r in bad:
            table.add_row(
                r.case_id,
                str(r.repeat),
                r.family,
                f"[{_VERDICT_STYLE[r.verdict]}]{r.verdict}[/]",
                r.reason[:100],
            )
        out.print(table)


@runs_app.command("trace")
def runs_trace(
    run_id: str = typer.Argument(..., help="Run id."),
    case_id: str = typer.Argument(..., help="Case id."),
    repeat: int | None = typer.Option(None, "--repeat", help="Only this repeat."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one case's full trace: conversation, output, tool calls, every verdict."""
    from finegate.evals.results import get_eval_run, load_results
    from finegate.store.db import open_store

    store = open_store()
    get_eval_run(store, run_id)
    results = [
        r
        for r in load_results(store, run_id, case_id=case_id)
        if repeat is None or r.repeat == repeat
    ]
    if not results:
        raise ConfigError(f"run {run_id!r} has no result for case {case_id!r}")
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
        return
    from rich.markup import escape

    out = console()
    for r in results:
        style = _VERDICT_STYLE[r.verdict]
        out.rule(f"{r.case_id} (repeat {r.repeat}, {r.family}): [{style}]{r.verdict}[/]")
        for m in r.messages:
            out.print(f"[bold]{m['role']}[/]: {escape(m.get('content') or '')}")
            for call in m.get("tool_calls") or []:
                out.print(f"  [cyan]tool call[/] {call['name']}({escape(call['arguments'])})")
        for s in r.scores:
            out.print(
                f"[{_VERDICT_STYLE[s['verdict']]}]{s['verdict']:>8}[/] "
                f"{s['scorer']}/{s['expectation']}: {escape(s['reason'])}"
            )
        out.print(
            f"[dim]latency {r.latency_s:.2f} s, tokens {r.prompt_tokens} prompt + "
            f"{r.completion_tokens} completion, cached {r.cached}[/]"
        )
        if r.error:
            out.print(f"[magenta]error[/] {escape(r.error)}")


@suites_app.command("list")
def suites_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the built-in suites and families."""
    from finegate.evals.loader import builtin_families, builtin_suite_names, load_suite

    rows: list[dict[str, Any]] = []
    fams = builtin_families()
    for name in builtin_suite_names():
        try:
            suite = load_suite(name)
        except ConfigError:
            continue
        kind = fams[name].kind if name in fams else "suite"
        rows.append(
            {
                "name": name,
                "kind": kind,
                "cases": len(suite.cases),
                "families": len({c.family for c in suite.cases}),
                "hash": suite.content_hash()[:12],
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("name", "kind", "cases", "families", "hash")
    for r in rows:
        table.add_row(r["name"], r["kind"], str(r["cases"]), str(r["families"]), r["hash"])
    console().print(table)


@suites_app.command("show")
def suites_show(
    name: str = typer.Argument(..., help="Built-in suite name or file."),
    as_json: bool = typer.Option(False, "--json", help="Print the suite as JSON."),
) -> None:
    """Show a suite: families with rationale, and its cases."""
    from finegate.evals.loader import load_suite

    suite = load_suite(name)
    if as_json:
        typer.echo(json.dumps(suite.model_dump(mode="json", by_alias=True), ensure_ascii=False))
        return
    from rich.table import Table

    out = console()
    out.print(
        f"[bold]{suite.name}[/] v{suite.version}  {len(suite.cases)} cases  "
        f"[dim]sha256 {suite.content_hash()}[/]"
    )
    if suite.description:
        out.print(suite.description)
    for fam in suite.families:
        out.print(f"\n[bold]{fam.name}[/] ({fam.kind}): {fam.rationale}")
    table = Table("id", "family", "expect", "turns", "tools", "docs")
    for c in suite.cases:
        turns = sum(1 for m in c.messages if m.role == "user")
        table.add_row(
            c.id,
            c.family,
            ", ".join(e.kind for e in c.expect),
            str(turns),
            str(len(c.tools)),
            str(len(c.documents)),
        )
    out.print(table)


@suites_app.command("validate")
def suites_validate(
    file: Path = typer.Argument(..., help="Suite file (.yaml/.jsonl)."),
) -> None:
    """Validate a suite file; print its counts and content hash."""
    from finegate.evals.loader import load_suite_file

    suite = load_suite_file(file)
    fams = sorted({c.family for c in suite.cases})
    console().print(
        f"ok: {suite.name} v{suite.version}: {len(suite.cases)} cases in "
        f"{len(fams)} families ({', '.join(fams)}); sha256 {suite.content_hash()}"
    )


@suites_app.command("import")
def suites_import(
    file: Path = typer.Argument(..., help="Benchmark file you already have."),
    fmt: str = typer.Option(
        ..., "--format", help="advbench, harmbench, jbb, strongreject, xstest or jsonl."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write here (.yaml or .jsonl); default stdout (YAML)."
    ),
    name: str | None = typer.Option(None, "--name", help="Suite name (default: file stem)."),
    benign: bool | None = typer.Option(
        None, "--benign/--harmful", help="jbb: which split the file is (default: by name)."
    ),
) -> None:
    """Turn a public benchmark file into a finegate suite."""
    from finegate.evals.importers import import_suite
    from finegate.evals.loader import suite_to_yaml

    suite = import_suite(file, fmt, name=name, benign=benign)
    if out is not None and out.suffix == ".jsonl":
        header = {
            "suite": {
                "name": suite.name,
                "version": suite.version,
                "description": suite.description,
                "families": [f.model_dump() for f in suite.families],
            }
        }
        lines = [json.dumps(header, ensure_ascii=False)]
        lines += [
            json.dumps(
                c.model_dump(mode="json", by_alias=True, exclude_defaults=True), ensure_ascii=False
            )
            for c in suite.cases
        ]
        text = "\n".join(lines) + "\n"
    else:
        text = suite_to_yaml(suite)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    console(stderr=True).print(
        f"wrote {len(suite.cases)} cases to {out} (sha256 {suite.content_hash()[:12]})"
    )


def register(app: typer.Typer) -> None:
    """Attach ``eval``, ``runs`` and ``suites`` to the root app."""
    app.command("eval")(eval_command)
    app.add_typer(runs_app, name="runs")
    app.add_typer(suites_app, name="suites")


__all__ = ["print_summary", "register"]
