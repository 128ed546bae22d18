"""``finegate data scan|clean|versions|lineage|show``: dataset governance."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finegate.cli._common import console

if TYPE_CHECKING:
    from finegate.data import DataPolicy, ScanOutcome

data_app = typer.Typer(help="Dataset governance: scan, clean, version and trace training data.",
                       no_args_is_help=True)  # fmt: skip

POLICY_HELP = "Data policy YAML (or builtin:NAME, e.g. builtin:support-demo)."


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr fed by ``(stage, done, total)`` callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = console(stderr=True)
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  console=err, disable=not enabled or not err.is_terminal) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                for t in tasks.values():
                    bar.update(t, completed=bar.tasks[t].total)
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield update


def _load(policy: str | None) -> DataPolicy:
    from finegate.data import load_policy

    return load_policy(policy)


def _scan(files: list[Path], policy: str | None, engine: str, batch_size: int, workers: int,
          name: str, quarantine: Path | None, quiet: bool) -> ScanOutcome:  # fmt: skip
    from finegate.data import scan_files
    from finegate.store.db import open_store

    pol = _load(policy)
    if quarantine is None and files:
        quarantine = files[0].with_name(files[0].stem + ".quarantine.jsonl")
    with _progress(not quiet) as progress:
        return scan_files(files, pol, store=open_store(), name=name, engine=engine,
                          batch_size=batch_size, workers=workers, quarantine=quarantine,
                          progress=progress)  # fmt: skip


def _write_reports(report: dict[str, Any], json_out: Path | None, html_out: Path | None) -> None:
    from finegate.data._report import to_html

    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")  # fmt: skip
    if html_out is not None:
        html_out.write_text(to_html(report), encoding="utf-8")


FILES = typer.Argument(..., help="Training files: .jsonl (chat or prompt/completion), .csv, "
                       ".parquet.", exists=False)  # fmt: skip
POLICY = typer.Option(None, "--policy", "-p", help=POLICY_HELP)
ENGINE = typer.Option("local", "--engine", help="local, or ray (needs finegate[ray]).")
BATCH = typer.Option(256, "--batch-size", help="Records per batch.")
WORKERS = typer.Option(2, "--workers", help="Parallel Ray tasks (with --engine ray).")
NAME = typer.Option("", "--name", help="Dataset name for the version (default: first file).")
QUAR = typer.Option(None, "--quarantine", help="Where malformed records go (JSONL; default "
                    "FILE.quarantine.jsonl next to the first file).")  # fmt: skip
JSON_OUT = typer.Option(None, "--json", help="Write the JSON report here (- for stdout).")
HTML_OUT = typer.Option(None, "--html", help="Write the HTML report here.")
OUTPUT = typer.Option(..., "--output", "-o", help="Cleaned JSONL (chat format).")
REPORT_OUT = typer.Option(None, "--report", help="Cleaning report JSON.")


@data_app.command("scan")
def scan_cmd(
    files: list[Path] = FILES,
    policy: str | None = POLICY,
    engine: str = ENGINE,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    name: str = NAME,
    quarantine: Path | None = QUAR,
    json_out: str | None = JSON_OUT,
    html_out: Path | None = HTML_OUT,
    fail_on_flags: bool = typer.Option(
        False, "--fail-on-flags", help="Exit 1 when any record is flagged."
    ),  # fmt: skip
) -> None:
    """Scan training files under a data policy; record the dataset version and the report."""
    from finegate.data._report import print_report

    to_stdout = json_out == "-"
    out = _scan(files, policy, engine, batch_size, workers, name, quarantine, to_stdout)
    report = out.result.to_dict()
    _write_reports(report, None if to_stdout or json_out is None else Path(json_out), html_out)
    if to_stdout:
        typer.echo(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        con = console()
        print_report(report, con)
        if out.quarantine is not None:
            con.print(f"quarantined {len(out.result.malformed)} malformed records to "
                      f"{out.quarantine}")  # fmt: skip
        if out.version is not None:
            con.print(f"dataset version [bold]{out.version.id[:12]}[/] ({out.version.id}), "
                      f"scan #{out.scan_id}")  # fmt: skip
    if fail_on_flags and out.result.flagged:
        raise typer.Exit(1)


@data_app.command("clean")
def clean_cmd(
    files: list[Path] = FILES,
    policy: str | None = POLICY,
    output: Path = OUTPUT,
    report_out: Path | None = REPORT_OUT,
    engine: str = ENGINE,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    name: str = NAME,
    quarantine: Path | None = QUAR,
    as_json: bool = typer.Option(False, "--json-summary", help="Print a JSON summary."),
) -> None:
    """Scan, then clean: remove, redact/pseudonymize and normalize; record a child version.

    The same input and policy give a byte-identical output file.
    """
    from finegate.data import canonical_bytes, clean_scan
    from finegate.store.db import open_store

    out = _scan(files, policy, engine, batch_size, workers, name, quarantine, as_json)
    cleaned = clean_scan(out.result, store=open_store(), parent=out.version, name=name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(canonical_bytes(cleaned.clean.records))
    report = cleaned.clean.report()
    if report_out is not None:
        report_out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")  # fmt: skip
    v = cleaned.version
    summary = {"scanned_version": out.version.id if out.version else None,
               "clean_version": v.id if v else None, "kept": report["kept"],
               "removed": report["removed_count"], "changed": report["changed_count"],
               "removed_by_rule": report["removed_by_rule"],
               "malformed": len(out.result.malformed), "output": str(output)}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    con = console()
    con.print(f"kept [bold]{report['kept']}[/], removed [bold]{report['removed_count']}[/], "
              f"changed [bold]{report['changed_count']}[/], malformed "
              f"{len(out.result.malformed)} -> {output}")  # fmt: skip
    for rule, n in report["removed_by_rule"].items():
        con.print(f"  removed {n:>4}  {rule}")
    if v is not None:
        con.print(f"clean version [bold]{v.id[:12]}[/] (parent {(v.parent_id or '-')[:12]}); "
                  f"see: finegate data lineage {v.id[:12]}")  # fmt: skip


@data_app.command("versions")
def versions_cmd(
    name: str | None = typer.Option(None, "--name", help="Only this dataset name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List dataset versions."""
    from rich.table import Table

    from finegate.data import list_versions
    from finegate.governance import Action, current_principal, require
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.READ_RUNS)
    rows = list_versions(store, name=name)
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in rows], indent=1, default=str))
        return
    t = Table(title="dataset versions")
    for col in ("id", "name", "kind", "parent", "records", "policy", "approver", "created"):
        t.add_column(col)
    for v in rows:
        t.add_row(v.id[:12], v.name, v.kind, (v.parent_id or "-")[:12], str(v.record_count),
                  str(v.transformation.get("policy_name", "-")), v.approver or "-",
                  v.created_at.strftime("%Y-%m-%d %H:%M"))  # fmt: skip
    console().print(t)


@data_app.command("lineage")
def lineage_cmd(
    version: str = typer.Argument(..., help="Dataset version id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    details: bool = typer.Option(False, "--details", help="List every removed/changed record."),
) -> None:
    """Show the chain of a dataset version: sources, transformations, what was removed and why."""
    from finegate.data import lineage
    from finegate.governance import Action, current_principal, require
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.READ_RUNS)
    chain = lineage(store, version)
    if as_json:
        typer.echo(json.dumps(chain, indent=1, default=str))
        return
    con = console()
    for step in chain:
        tr = step["transformation"]
        con.print(f"[bold]{step['id'][:12]}[/] {step['kind']} '{step['name']}' "
                  f"{step['record_count']} records, by {step['created_by']} at "
                  f"{step['created_at'][:19]}")  # fmt: skip
        con.print(
            f"  policy {tr.get('policy_name', '-')} {str(tr.get('policy_hash', '-'))[:12]},"
            f" {tr.get('tool_version', '-')}; approver {step['approver'] or '-'}"
        )
        for s in step["sources"]:
            files = ", ".join(f"{f['name']} ({f['sha256'][:8]})" for f in s.get("files", []))
            con.print(
                f"  source {s.get('name')}: {s.get('trust', '?')}, "
                f"{s.get('data_class', '?')}, {s.get('records', '?')} records {files}"
            )
        for sc in step["scans"]:
            con.print(f"  scan #{sc['id']}: {sc['flagged']} flagged, {sc['malformed']} malformed"
                      f" (report {sc['report_sha256'][:12]})")  # fmt: skip
        if step["kind"] == "clean":
            con.print(f"  removed {len(step['removed'])}, changed {len(step['changed'])}")
            if details:
                for r in step["removed"]:
                    con.print(f"    - {r['record']}: {r['rule']} ({', '.join(r['kinds'])})")
                for c in step["changed"]:
                    con.print(f"    ~ {c['record']}: {'; '.join(c['changes'])}")


def register(app: typer.Typer) -> None:
    """Attach ``data`` to the root app."""
    app.add_typer(data_app, name="data")


__all__ = ["register"]
