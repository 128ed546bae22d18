"""``finegate tune`` (LoRA fine-tuning) and ``finegate privacy`` (memorization tests)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finegate.errors import ConfigError


def tune(
    config: Path | None = typer.Option(None, "--config", "-c", help="The tune YAML file."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in the output directory."
    ),
    allow_unscanned: bool = typer.Option(
        False, "--allow-unscanned", help="Train on raw files never scanned (recorded)."
    ),
    override: list[str] = typer.Option(
        [], "--override", "-o", help="FIELD=VALUE; needed to pass a hard cap (recorded)."
    ),
    help_config: bool = typer.Option(
        False, "--help-config", help="List every config field with its default and help."
    ),
) -> None:
    """Fine-tune a LoRA adapter on a dataset version and record the training run."""
    from rich.table import Table

    from finegate.cli._common import console
    from finegate.tune.config import config_help, load_tune_config

    out = console()
    if help_config:
        table = Table("field", "default", "help", title="tune config fields")
        for row in config_help():
            table.add_row(*row)
        out.print(table)
        return
    if config is None:
        raise ConfigError("finegate tune needs --config FILE", hint="see --help-config")
    cfg = load_tune_config(config, overrides=override)
    from finegate.store.db import open_store
    from finegate.tune.trainer import train

    err = console(stderr=True)

    def progress(step: int, total: int, loss: float | None) -> None:
        err.print(f"step {step}/{total}  loss {loss:.4f}" if loss is not None else f"step {step}")

    result = train(
        cfg, open_store(), resume=resume, allow_unscanned=allow_unscanned, progress=progress
    )
    out.print(f"training run: {result.run_id}")
    out.print(
        f"steps: {result.global_step}"
        + (f"  (stopped: {result.stopped})" if result.stopped else "")
    )
    for alert in result.alerts:
        out.print(f"[yellow]alert[/] step {alert.step} {alert.kind}: {alert.detail}")
    out.print(f"adapter: {result.adapter_dir}  (artifact {result.adapter_sha256[:16]})")
    out.print(f"model: {result.model_uri}")


def privacy(
    model: str = typer.Argument(..., help="hf: model URI, usually hf:BASE+adapter:PATH."),
    train_version: str = typer.Option(..., "--train", help="Dataset version it was tuned on."),
    heldout_version: str = typer.Option(..., "--heldout", help="Dataset version never seen."),
    references: int = typer.Option(500, help="Random candidates per canary (exposure)."),
    max_records: int = typer.Option(100, help="Records per side for membership inference."),
    reference_model: str | None = typer.Option(
        None, help="Reference model URI (default: the adapter's base model)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Canary exposure, extraction, membership inference and regurgitation for a model."""
    from rich.table import Table

    from finegate.cli._common import console, status
    from finegate.data import read_records
    from finegate.store.db import open_store
    from finegate.tune.privacy import run_privacy

    store = open_store()

    def chats(version: str) -> list[list[dict[str, str]]]:
        return [[dict(m) for m in r.to_row()["messages"]] for r in read_records(store, version)]

    with status("Running privacy tests …"):
        report = run_privacy(
            store,
            model,
            train_records=chats(train_version),
            heldout_records=chats(heldout_version),
            reference_uri=reference_model,
            references=references,
            max_records=max_records,
            config={"train_version": train_version, "heldout_version": heldout_version},
        )
    out = console()
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        return
    out.print(f"privacy run: {report.run_id}  model {report.model_hash[:16]}")
    if report.canaries:
        t = Table("canary", "repeats", "rank", "exposure (bits)", "estimated", "extracted")
        for c in report.canaries:
            t.add_row(
                c.owner,
                str(c.repetitions),
                f"{c.rank}/{c.candidates}",
                f"{c.exposure:.2f}",
                f"{c.exposure_estimated:.2f}",
                str(c.extracted),
            )
        out.print(t)
    if report.membership:
        m = report.membership
        t = Table(
            "attack",
            "AUROC",
            "TPR@5%FPR",
            "base AUROC",
            title=f"membership inference ({m.members} train vs {m.nonmembers} held out)",
        )
        for k, v in m.auroc.items():
            t.add_row(
                k,
                f"{v:.3f}",
                f"{m.tpr_at_5fpr[k]:.3f}",
                f"{m.base_auroc[k]:.3f}" if k in m.base_auroc else "-",
            )
        out.print(t)
    r = report.regurgitation
    out.print(
        f"regurgitation: {r['sensitive_continuations']} sensitive continuations of "
        f"{r['sensitive_records']} sensitive records; {r['near_verbatim']} near-verbatim "
        f"replies of {r['records']} prompts"
    )


def register(app: typer.Typer) -> None:
    """Attach ``tune`` and ``privacy`` to the root app."""
    app.command("tune")(tune)
    app.command("privacy")(privacy)
