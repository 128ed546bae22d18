"""``finegate redteam URI`` (a campaign) and ``finegate redteam-export RUN`` (the closed loop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finegate.cli._common import console
from finegate.errors import ConfigError

if TYPE_CHECKING:
    from finegate.redteam.campaign import RedteamResult
    from finegate.redteam.export import ExportedAttacks


def _strategies_table() -> None:
    from rich.table import Table

    from finegate.redteam.mutators import get_strategy, strategy_names

    table = Table("strategy", "kind", "family", "what it does")
    for name in strategy_names():
        s = get_strategy(name)
        table.add_row(s.name, s.kind, s.family, s.description)
    console().print(table)


def _write_export(
    found: ExportedAttacks, suite_out: Path | None, training_out: Path | None
) -> None:
    from finegate.evals.loader import suite_to_yaml

    out = console()
    if suite_out is not None:
        if found.suite is None:
            out.print(f"no successful attack to write to {suite_out}")
        else:
            suite_out.write_text(suite_to_yaml(found.suite), encoding="utf-8")
            out.print(f"wrote {len(found.suite.cases)} attack cases to {suite_out}")
    if training_out is not None:
        with training_out.open("w", encoding="utf-8") as fh:
            for record in found.training:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.print(f"wrote {len(found.training)} refusal training records to {training_out}")


def _print_result(result: RedteamResult) -> None:
    from rich.table import Table

    from finegate.redteam.mutators import get_strategy

    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 140)
    out.print(
        f"seeds: {result.seeds} attack cases; the target resisted {result.resisted} "
        f"(attacked first); {result.queries} of {result.budget} queries spent on attacks"
    )
    table = Table("strategy", "kind", "tried", "succeeded", "new breaks", title="attacks")
    for name, row in result.per_strategy().items():
        table.add_row(
            name,
            get_strategy(name).kind,
            str(row["tried"]),
            str(row["succeeded"]),
            str(row["new_breaks"]),
        )
    out.print(table)
    breaks = result.new_breaks
    out.print(
        f"[bold]{len(breaks)} attacks succeeded where their seed had failed[/] "
        f"({len({b.seed_id for b in breaks})} of {result.resisted} resisted seeds broken)"
    )
    cases = {c.id: c for c in result.suite.cases}
    for b in breaks[:10]:
        from finegate.redteam._probe import last_user_text

        text = " ".join(last_user_text(cases[b.case_id]).split())
        out.print(f"  [red]{b.case_id}[/]: {text[:60]}{'…' if len(text) > 60 else ''}")
    if len(breaks) > 10:
        out.print(f"  … and {len(breaks) - 10} more (finegate runs show {result.run.run_id})")
    out.print(
        f"run {result.run.run_id}: {len(result.suite.cases)} cases; {result.model_calls} model "
        f"calls, {result.cache_hits} from cache, {result.wall_s:.1f} s. It is an eval run like "
        "any other: runs show / trace, compare, gate and report take it."
    )


def redteam_command(
    uri: str = typer.Argument(..., help="The target model URI (hf:embedded, openai:..., ...)."),
    seeds: str = typer.Option(
        "core", "--seeds", help="Seed suite: a built-in (core, a family) or a file."
    ),
    strategies: str = typer.Option(
        "all",
        "--strategies",
        help="Comma-separated strategies in the order to try, 'all', or 'list' to list them.",
    ),
    budget: int = typer.Option(
        200, "--budget", min=1, help="Target queries to spend on generated attacks."
    ),
    attacker: str | None = typer.Option(
        None,
        "--attacker",
        metavar="URI",
        help="Attacker model for paraphrase, crescendo and pair (default: none; the target "
        "paraphrases itself, crescendo and pair use their fixed ladders).",
    ),
    judge: str | None = typer.Option(
        None, "--judge", metavar="URI", help="LLM judge (graded harm score) for the feedback."
    ),
    max_turns: int = typer.Option(4, "--max-turns", min=2, help="Turns of a crescendo attack."),
    pair_iterations: int = typer.Option(
        3, "--pair-iterations", min=1, help="Prompts PAIR may try per seed."
    ),
    exhaustive: bool = typer.Option(
        False, "--exhaustive", help="Keep attacking a seed after it has been broken."
    ),
    include_broken: bool = typer.Option(
        False, "--include-broken", help="Also attack seeds the target already fails."
    ),
    family: list[str] = typer.Option([], "--family", "-f", help="Only seeds of this family."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1, help="New tokens per reply."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Requests per batch (default 16; 1 for openai:)."
    ),
    export_suite: Path | None = typer.Option(
        None, "--export-suite", help="Write the successful attacks as a suite (YAML) here."
    ),
    export_training: Path | None = typer.Option(
        None, "--export-training", help="Write refusal training records (JSONL) here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Generate attacks from seed cases within a query budget; record them as an eval run.

    Seeds the target resists are attacked first, strategy by strategy, each as one batch.
    Every attacker, target and judge call goes through the call cache, so running the same
    command again replays the campaign exactly. Example:
    finegate redteam hf:embedded --seeds core --budget 200
    """
    import asyncio

    from finegate.cli._common import open_backend
    from finegate.evals.judge import JudgeScorer
    from finegate.evals.loader import load_suite
    from finegate.evals.runner import EvalConfig
    from finegate.models.types import GenerationParams
    from finegate.models.uri import BackendOptions, split_uri
    from finegate.redteam.campaign import RedteamConfig, default_strategies, run_redteam
    from finegate.store.db import open_store

    if strategies.strip() == "list":
        _strategies_table()
        return
    chosen = (
        default_strategies()
        if strategies.strip() == "all"
        else tuple(s.strip() for s in strategies.split(",") if s.strip())
    )
    if not chosen:
        raise ConfigError("--strategies is empty", hint="e.g. --strategies base64,roleplay")
    the_seeds = load_suite(seeds, families=family or None)
    remote = split_uri(uri)[0] == "openai"
    batch = batch_size or (1 if remote else 16)
    options = BackendOptions(concurrency=8 if remote else 1, batch_size=batch)
    target = open_backend(uri, options=options)
    helper = open_backend(attacker) if attacker else None
    judge_scorer = JudgeScorer(open_backend(judge)) if judge else None
    config = RedteamConfig(
        strategies=chosen,
        budget=budget,
        max_turns=max_turns,
        pair_iterations=pair_iterations,
        exhaustive=exhaustive,
        include_broken=include_broken,
        eval=EvalConfig(
            params=GenerationParams(max_tokens=max_tokens),
            batch_size=batch,
            concurrency=8 if remote else 4,
            judge=judge_scorer,
        ),
    )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = console(stderr=True)
    progress = Progress(
        TextColumn("[bold]redteam[/] {task.fields[stage]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("queries"),
        console=err,
        disable=as_json or not err.is_terminal,
        transient=True,
    )

    async def go() -> RedteamResult:
        try:
            return await run_redteam(
                target,
                the_seeds,
                store=open_store(),
                config=config,
                attacker=helper,
                judge=judge_scorer,
                progress=lambda stage, used, total: progress.update(
                    task, completed=used, total=total, stage=stage
                ),
            )
        finally:
            for backend in (target, helper, judge_scorer.backend if judge_scorer else None):
                if backend is not None:
                    await backend.aclose()

    with progress:
        task = progress.add_task("redteam", total=budget, stage="seeds")
        result = asyncio.run(go())
    if as_json:
        data: dict[str, Any] = {
            "run_id": result.run.run_id,
            "suite_artifact": result.suite_sha,
            "seeds": result.seeds,
            "resisted": result.resisted,
            "queries": result.queries,
            "budget": result.budget,
            "model_calls": result.model_calls,
            "cache_hits": result.cache_hits,
            "per_strategy": result.per_strategy(),
            "attacks": [a.to_dict() for a in result.attacks],
        }
        typer.echo(json.dumps(data, ensure_ascii=False))
    else:
        _print_result(result)
    if export_suite is not None or export_training is not None:
        from finegate.redteam.export import export_attacks

        _write_export(
            export_attacks(open_store(), result.run.run_id), export_suite, export_training
        )


def redteam_export_command(
    run_id: str = typer.Argument(..., help="A red-team run id (printed by finegate redteam)."),
    suite_out: Path | None = typer.Option(
        None, "--suite", help="Write the successful attacks as a suite (YAML) here."
    ),
    training_out: Path | None = typer.Option(
        None, "--training", help="Write refusal training records (JSONL) here."
    ),
    only_new: bool = typer.Option(
        False, "--only-new", help="Only attacks that succeeded where their seed had failed."
    ),
) -> None:
    """Export a red-team run's successful attacks: suite cases and safety-training records.

    The suite goes into the next release's regression evaluation; the JSONL records (each
    attack answered with a refusal) go through finegate data scan/clean into the next
    fine-tune's safety mix.
    """
    from finegate.redteam.export import export_attacks
    from finegate.store.db import open_store

    if suite_out is None and training_out is None:
        raise ConfigError("nothing to write", hint="give --suite FILE and/or --training FILE")
    _write_export(export_attacks(open_store(), run_id, only_new=only_new), suite_out, training_out)


def register(app: typer.Typer) -> None:
    """Add ``redteam`` and ``redteam-export`` to the ``finegate`` command."""
    app.command("redteam")(redteam_command)
    app.command("redteam-export")(redteam_export_command)


__all__ = ["register"]
