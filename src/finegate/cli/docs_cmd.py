"""``finegate docs model-card|technical NAME@VERSION``: evidence documents from records."""

from __future__ import annotations

from pathlib import Path

import typer

from finegate.cli._common import console

docs_app = typer.Typer(
    help="Evidence documents built from recorded facts only.", no_args_is_help=True
)

REF_HELP = "NAME@VERSION (or NAME@production ...)."
FORMAT_HELP = "md or html."


def _write(ref: str, kind: str, fmt: str, out: Path | None) -> None:
    from finegate.governance import Action, build_document, current_principal, render, require
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.READ_RUNS)
    text = render(build_document(store, ref, kind), fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console(stderr=True).print(f"wrote {out}")


@docs_app.command("model-card")
def model_card(
    ref: str = typer.Argument(..., help=REF_HELP),
    fmt: str = typer.Option("md", "--format", help=FORMAT_HELP),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (default stdout)."),
) -> None:
    """Write the model card of a registry version."""
    _write(ref, "model-card", fmt, out)


@docs_app.command("technical")
def technical(
    ref: str = typer.Argument(..., help=REF_HELP),
    fmt: str = typer.Option("md", "--format", help=FORMAT_HELP),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (default stdout)."),
) -> None:
    """Write the technical documentation (EU AI Act Annex IV headings) of a version."""
    _write(ref, "technical", fmt, out)


def register(app: typer.Typer) -> None:
    """Attach ``docs`` to the root app."""
    app.add_typer(docs_app, name="docs")


__all__ = ["register"]
