"""``finegate demo``: the whole lifecycle on the embedded model (see `finegate.tune.lifecycle`).

scan and clean the demo data → (align the base) → evaluate the base on ``core`` → fine-tune
variant A (cleaned data + safety mix) and variant B (obedience pack, no safety mix) → evaluate
both → compare with the base per family → gate → register what passes → one HTML report.
``--quick`` (or a ``mock:`` model) runs the same stages with mock backends and no training.
"""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    model: str = typer.Option("hf:embedded", help="Base model URI (mock:NAME implies --quick)."),
    quick: bool = typer.Option(
        False, "--quick", help="Mock backends, no training (labelled simulated)."
    ),
    out_dir: Path | None = typer.Option(None, help="Where the report goes."),
    max_tokens: int = typer.Option(48, help="New tokens per reply in the evaluations."),
    family: list[str] = typer.Option([], "--family", help="Restrict core to these families."),
    seed: int = typer.Option(0, help="Seed of every training run."),
) -> None:
    """Run the lifecycle: data → tune A/B → eval → compare → gate → register → report."""
    import os

    from rich.table import Table

    from finegate.cli._common import console
    from finegate.store.db import open_store
    from finegate.tune.lifecycle import DemoOptions, run_lifecycle

    out = console()
    err = console(stderr=True)
    store = open_store()
    out.rule("[bold]finegate demo: the lifecycle")
    try:
        load = os.getloadavg()[0]
        out.print(f"store: {store!r}   CPUs: {os.cpu_count()}   load: {load:.2f}")
    except OSError:
        out.print(f"store: {store!r}")

    def progress(stage: str, message: str) -> None:
        if message == "running":
            out.print(f"[bold cyan]▶ {stage}[/]")
        elif message.startswith("done"):
            out.print(f"  [green]✓[/] {message}")
        else:
            err.print(f"  [dim]{stage}: {message}[/]")

    opts = DemoOptions(
        model=model,
        quick=quick,
        out_dir=out_dir,
        max_tokens=max_tokens,
        families=tuple(family) or None,
        seed=seed,
    )
    result = run_lifecycle(store, opts, progress)
    table = Table(
        "family",
        "metric",
        "n",
        "base",
        "A",
        "p(A worse)",
        "B",
        "p(B worse)",
        title="per family (one-sided paired McNemar, Holm-corrected p)",
    )

    def pct(v: object) -> str:
        return "-" if v is None else f"{100 * float(v):.1f}%"  # type: ignore[arg-type]

    for r in result.families:
        table.add_row(
            r["family"],
            r["metric"],
            str(r["n"]),
            pct(r["base"]),
            pct(r.get("A")),
            f"{r.get('A_p_holm', 1):.3g}",
            pct(r.get("B")),
            f"{r.get('B_p_holm', 1):.3g}" + (" *" if r.get("B_worse_significant") else ""),
        )
    out.print(table)
    for label, passed in result.gates.items():
        verdict = "[green]SHIP[/]" if passed else "[red]DO NOT SHIP[/]"
        out.print(f"gate variant {label}: {verdict}")
    out.print(f"registered: {', '.join(result.registered) or 'nothing'}")
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")
    if result.simulated:
        out.print("[yellow]quick mode: simulated lifecycle (no training)[/]")
    out.print(f"total: {result.total_s:.0f} s")
    out.print(f"report: {result.report_path}")


def register(app: typer.Typer) -> None:
    """Attach the demo command to the root app."""
    app.command("demo")(demo)
