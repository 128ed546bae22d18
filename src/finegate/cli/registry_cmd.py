"""``finegate registry register|list|show|promote|rollback|lineage|inventory|link|guardrails``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finegate.cli._common import console

if TYPE_CHECKING:
    from finegate.governance import Principal
    from finegate.store.db import Store

registry_app = typer.Typer(
    help="Model registry: versions, stages, promotion, rollback.", no_args_is_help=True
)

REF_HELP = "NAME@VERSION (or NAME@production, @approved, @candidate, @latest)."


def _actor(read: str | None = None) -> tuple[Store, Principal]:
    """Open the store and return it with the acting principal (checked for ``read``)."""
    from finegate.governance import current_principal, require
    from finegate.store.db import open_store

    store = open_store()
    actor = current_principal(store)
    if read is not None:
        require(actor, read)
    return store, actor


def _dump(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@registry_app.command("register")
def register_cmd(
    name: str = typer.Argument(..., help="Registry name of the model."),
    model: str = typer.Option(..., "--model", help="Base model URI (hf:embedded, mock:...)."),
    adapter: Path | None = typer.Option(None, "--adapter", help="PEFT adapter directory."),
    intended_use: str = typer.Option("", "--intended-use", help="What this version is for."),
    eval_run: list[str] = typer.Option([], "--eval-run", help="Eval run id (repeatable)."),
    training_run: str | None = typer.Option(None, "--training-run", help="Training run id."),
    dataset_version: list[str] = typer.Option(
        [], "--dataset-version", help="Dataset version id (repeatable)."
    ),
    description: str = typer.Option("", "--description", help="Model description."),
    model_hash: str | None = typer.Option(
        None, "--model-hash", help="Identity hash (default: load the model once)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register a new candidate version of NAME."""
    from finegate.registry import register_model

    store, actor = _actor()
    v = register_model(
        store,
        name,
        model,
        adapter=adapter,
        intended_use=intended_use,
        eval_run_ids=eval_run,
        training_run_id=training_run,
        dataset_version_ids=dataset_version,
        description=description,
        model_hash=model_hash,
        actor=actor,
    )
    if as_json:
        _dump(v.to_dict())
        return
    console().print(f"registered [bold]{v.ref}[/] ({v.stage}), identity {v.model_hash[:16]}")


@registry_app.command("list")
def list_cmd(
    name: str | None = typer.Argument(None, help="Only this model."),
    stage: str | None = typer.Option(None, "--stage", help="Only this stage."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List registered versions."""
    from rich.table import Table

    from finegate.governance import Action
    from finegate.registry import list_versions

    store, _ = _actor(Action.READ_RUNS)
    versions = list_versions(store, name, stage=stage)
    if as_json:
        _dump([v.to_dict() for v in versions])
        return
    table = Table("version", "stage", "model", "identity", "registered")
    for v in versions:
        table.add_row(
            v.ref,
            v.stage,
            v.model_uri,
            v.model_hash[:16],
            f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}",
        )
    console().print(table)


@registry_app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one version."""
    from finegate.governance import Action
    from finegate.registry import get_version

    store, _ = _actor(Action.READ_RUNS)
    v = get_version(store, ref)
    if as_json:
        _dump(v.to_dict())
        return
    out = console()
    for key, value in v.to_dict().items():
        out.print(f"[bold]{key:<20}[/] {value if value not in (None, [], {}) else '-'}")


@registry_app.command("promote")
def promote_cmd(
    ref: str = typer.Argument(..., help=REF_HELP),
    to: str = typer.Option(..., "--to", help="approved, production or retired."),
    override: bool = typer.Option(
        False, "--override", help="Promote without a passing gate (admin; needs --reason)."
    ),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> None:
    """Promote a version; approved/production need a passing gate decision on it."""
    from finegate.registry import promote

    store, actor = _actor()
    t = promote(store, ref, to, override=override, reason=reason, actor=actor)
    out = console()
    gate = (
        f"gate decision #{t.gate_decision_id} (policy {t.policy_hash[:16]})"
        if t.gate_decision_id and t.policy_hash
        else "no gate needed"
    )
    if t.override:
        gate = "gate OVERRIDDEN: " + t.reason
    out.print(f"{t.ref}: {t.from_stage} → [bold]{t.to_stage}[/] ({gate})")
    for old in t.superseded:
        out.print(f"{old}: production → retired (superseded)")


@registry_app.command("rollback")
def rollback_cmd(
    name: str = typer.Argument(..., help="Model name."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> None:
    """Return production to the previous production version."""
    from finegate.registry import rollback

    store, actor = _actor()
    t = rollback(store, name, reason=reason, actor=actor)
    console().print(f"rolled back: {t.superseded[0]} → retired; [bold]{t.ref}[/] → production")


@registry_app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show what a version is made of and what was measured on it."""
    from rich.tree import Tree

    from finegate.governance import Action
    from finegate.registry import lineage

    store, _ = _actor(Action.READ_RUNS)
    lin = lineage(store, ref)
    if as_json:
        _dump(lin.to_dict())
        return
    v = lin.version
    tree = Tree(f"[bold]{v.ref}[/] ({v.stage}) identity {v.model_hash[:16]}")
    tree.add(f"base model: {v.base_model_uri} ({(v.base_model_hash or 'hash unknown')[:16]})")
    if lin.adapter:
        tree.add(f"adapter artifact: {lin.adapter['sha256'][:16]}")
    tr = lin.training_run
    tree.add(
        "training record: "
        + (
            "none linked"
            if tr is None
            else f"{tr['id']} (not found)"
            if tr.get("missing")
            else f"{tr['id']} ({tr['status']})"
        )
    )
    data = tree.add(f"dataset versions: {len(lin.dataset_versions) or 'none linked'}")
    for d in lin.dataset_versions:
        data.add(f"{d['id']}" + ("" if d["found"] else " (no record found)"))
    evals = tree.add(f"eval runs of this version: {len(lin.eval_runs) or 'none'}")
    for r in lin.eval_runs:
        evals.add(
            f"{r['id']} suite={r['suite']} {r['status']}"
            + ("" if r["matches_version"] else " (different model hash!)")
        )
    base = tree.add(f"eval runs of the base model: {len(lin.baseline_runs) or 'none'}")
    for r in lin.baseline_runs:
        base.add(f"{r['id']} suite={r['suite']} {r['status']}")
    gates = tree.add(f"gate decisions: {len(lin.gate_decisions) or 'none'}")
    for g in lin.gate_decisions:
        gates.add(f"#{g.id} {'pass' if g.passed else 'fail'} policy={g.policy_name} run={g.run_id}")
    stages = tree.add("stage history")
    for t in lin.transitions:
        stages.add(f"{t['at'][:19]} {t['from']} → {t['to']} ({t['kind']} by {t['actor']})")
    console().print(tree)


@registry_app.command("inventory")
def inventory_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 1 when a production version is flagged."
    ),
) -> None:
    """List every version with its stage; flag production versions lacking evidence."""
    from dataclasses import asdict

    from rich.table import Table

    from finegate.governance import Action
    from finegate.registry import inventory

    store, _ = _actor(Action.READ_RUNS)
    rows = inventory(store)
    if as_json:
        _dump([asdict(r) for r in rows])
    else:
        table = Table("version", "stage", "model", "flags")
        for r in rows:
            table.add_row(
                r.ref, r.stage, r.model_uri, "[red]" + "; ".join(r.flags) + "[/]" if r.flags else ""
            )
        console().print(table)
    if strict and any(r.flags for r in rows):
        raise typer.Exit(1)


@registry_app.command("link")
def link_cmd(
    ref: str = typer.Argument(..., help=REF_HELP),
    eval_run: list[str] = typer.Option([], "--eval-run", help="Eval run id (repeatable)."),
    training_run: str | None = typer.Option(None, "--training-run", help="Training run id."),
    dataset_version: list[str] = typer.Option(
        [], "--dataset-version", help="Dataset version id (repeatable)."
    ),
) -> None:
    """Attach evaluation runs, a training record or dataset versions to a version."""
    from finegate.registry import link_evidence

    store, actor = _actor()
    v = link_evidence(
        store,
        ref,
        eval_run_ids=eval_run,
        training_run_id=training_run,
        dataset_version_ids=dataset_version,
        actor=actor,
    )
    console().print(
        f"{v.ref}: {len(v.eval_run_ids)} eval run(s), training "
        f"{v.training_run_id or '-'}, {len(v.dataset_version_ids)} dataset version(s)"
    )


@registry_app.command("guardrails")
def guardrails_cmd(
    ref: str = typer.Argument(..., help=REF_HELP),
    config: Path | None = typer.Option(None, "--config", help="JSON or YAML guardrail config."),
    clear: bool = typer.Option(False, "--clear", help="Remove the recorded configuration."),
) -> None:
    """Record the guardrail configuration a version is served with."""
    from finegate.errors import ConfigError
    from finegate.registry import set_guardrails

    if (config is None) == (not clear):
        raise ConfigError("give --config FILE or --clear")
    data: dict[str, Any] | None = None
    if config is not None:
        import yaml

        try:
            loaded = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {config}: {exc}") from None
        if not isinstance(loaded, dict) or not loaded:
            raise ConfigError(f"{config} must hold a non-empty mapping")
        data = loaded
    store, actor = _actor()
    v = set_guardrails(store, ref, data, actor=actor)
    console().print(f"{v.ref}: guardrails {'recorded' if data else 'cleared'}")


def register(app: typer.Typer) -> None:
    """Attach ``registry`` to the root app."""
    app.add_typer(registry_app, name="registry")


__all__ = ["register"]
