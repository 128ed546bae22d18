"""``finegate monitor add|list|run|run-due|daemon|history|baseline`` and ``finegate incident``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from finegate.cli._common import console

if TYPE_CHECKING:
    from finegate.governance import Principal
    from finegate.monitor import IncidentInfo, MonitorCheck
    from finegate.store.db import Store

monitor_app = typer.Typer(
    help="Scheduled suite runs against deployments, compared with their release baseline.",
    no_args_is_help=True,
)
incident_app = typer.Typer(
    help="Incidents: list, show, open, contain, rollback, revoke-keys, note, close, report.",
    no_args_is_help=True,
)


def _actor() -> tuple[Store, Principal]:
    from finegate.governance import current_principal
    from finegate.store.db import open_store

    store = open_store()
    return store, current_principal(store)


def _dump(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _print_check(check: MonitorCheck) -> None:
    style = {"baseline": "cyan", "clean": "green", "regression": "red"}[check.outcome]
    line = f"[{style}]{check.outcome}[/] {check.monitor}: run {check.run_id}"
    line += f" on {check.resolved_target}"
    if check.baseline_run_id:
        line += f" vs baseline {check.baseline_run_id}"
    console().print(line)
    for f in check.findings:
        if f["type"] == "family":
            console().print(
                f"  {f['family']}: {f['baseline']} -> {f['current']} "
                f"(Holm p = {f['p_holm']:.3g}; {len(f['worse'])} cases worse)"
            )
        else:
            console().print(f"  gate {f['policy']} failed: {', '.join(f['failed'])}")
    if check.incident_id is not None:
        verb = "opened" if check.incident_opened else "updated"
        console().print(f"  incident #{check.incident_id} {verb} (finegate incident show)")


@monitor_app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="Unique monitor name."),
    target: str = typer.Option(
        ..., "--target", help="Model URI; registry:NAME@production follows the registry."
    ),
    suite: str = typer.Option(..., "--suite", help="Suite name or file."),
    every: str = typer.Option("30d", "--every", help="Interval: 30d, 12h, 15m, 90s, 2w."),
    policy: str | None = typer.Option(
        None, "--policy", help="Gate policy every check must pass (default: regressions only)."
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", metavar="RUN_ID", help="Release baseline run (default: first check)."
    ),
    gateway_model: str | None = typer.Option(
        None, "--gateway-model", help="Model name the gateway serves (for incident contain)."
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance of the regression test."),
) -> None:
    """Add a monitor; it is due at once (run it with finegate monitor run-due)."""
    from finegate.monitor import add_monitor

    store, actor = _actor()
    info = add_monitor(store, name, target=target, suite=suite, every=every, policy=policy,
                       baseline_run_id=baseline, gateway_model=gateway_model, alpha=alpha,
                       actor=actor)  # fmt: skip
    console().print(f"monitor [bold]{info.name}[/]: {info.target} with {info.suite} every {every}")


@monitor_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List monitors with their schedule and baseline."""
    from rich.table import Table

    from finegate.governance import Action, require
    from finegate.monitor import list_monitors

    store, actor = _actor()
    require(actor, Action.READ_RUNS)
    monitors = list_monitors(store)
    if as_json:
        _dump([m.__dict__ for m in monitors])
        return
    table = Table("name", "target", "suite", "every", "baseline", "last run", "next due")
    for m in monitors:
        table.add_row(m.name, m.target, m.suite, f"{m.every_s}s", m.baseline_run_id or "-",
                      f"{m.last_run_at:%Y-%m-%d %H:%M}" if m.last_run_at else "-",
                      f"{m.next_due_at:%Y-%m-%d %H:%M}")  # fmt: skip
    console().print(table)


@monitor_app.command("run")
def run_cmd(name: str = typer.Argument(..., help="The monitor.")) -> None:
    """Run one monitor's check now, due or not; exits 1 when it found a regression."""
    from finegate.monitor import run_monitor

    store, actor = _actor()
    check = run_monitor(store, name, actor=actor)
    _print_check(check)
    if check.outcome == "regression":
        raise SystemExit(1)


@monitor_app.command("run-due")
def run_due_cmd() -> None:
    """Run every monitor that is due (for cron) and import the gateway's detections.

    Exits 1 when a check found a regression, so a cron job or CI step can alert on it.
    """
    from finegate.monitor import run_due

    store, actor = _actor()
    checks = run_due(store, actor=actor)
    if not checks:
        console().print("no monitor is due")
    for check in checks:
        _print_check(check)
    if any(c.outcome == "regression" for c in checks):
        raise SystemExit(1)


@monitor_app.command("daemon")
def daemon_cmd(
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="Seconds between looks."),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Stop after N looks (default: run until stopped)."
    ),
) -> None:
    """Run due monitors every --interval seconds until stopped (Ctrl-C)."""
    from finegate.monitor import run_daemon

    store, actor = _actor()
    done = run_daemon(store, interval_s=interval, iterations=iterations, actor=actor,
                      on_check=_print_check)  # fmt: skip
    console().print(f"{done} checks run")


@monitor_app.command("history")
def history_cmd(
    name: str = typer.Argument(..., help="The monitor."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a monitor's checks, oldest first."""
    from rich.table import Table

    from finegate.governance import Action, require
    from finegate.monitor import monitor_runs

    store, actor = _actor()
    require(actor, Action.READ_RUNS)
    rows = monitor_runs(store, name)
    if as_json:
        _dump(rows)
        return
    table = Table("at", "outcome", "run", "baseline", "target", "incident")
    for r in rows:
        table.add_row(r["at"][:19], r["outcome"], r["run_id"], r["baseline_run_id"] or "-",
                      r["resolved_target"], str(r["incident_id"] or "-"))  # fmt: skip
    console().print(table)


@monitor_app.command("baseline")
def baseline_cmd(
    name: str = typer.Argument(..., help="The monitor."),
    run_id: str = typer.Argument(..., help="The new release baseline run."),
) -> None:
    """Pin a new release baseline (after a legitimate release)."""
    from finegate.monitor import set_baseline

    store, actor = _actor()
    info = set_baseline(store, name, run_id, actor=actor)
    console().print(f"monitor {info.name}: baseline is now {info.baseline_run_id}")


# -- incidents --------------------------------------------------------------------------


def _print_incident(inc: IncidentInfo, *, timeline: bool = False) -> None:
    out = console()
    out.print(
        f"[bold]#{inc.id}[/] {inc.title}\n  {inc.kind}, {inc.severity}, [bold]{inc.status}[/]; "
        f"model {inc.model_name or '-'}; opened {inc.opened_at:%Y-%m-%d %H:%M} by {inc.opened_by}"
    )
    if timeline:
        for t in inc.timeline:
            detail = ", ".join(f"{k}={v}" for k, v in t.details.items() if k != "findings")
            out.print(f"  {t.at:%Y-%m-%d %H:%M:%S} {t.actor}: {t.action} {detail[:160]}")


@incident_app.command("list")
def incident_list_cmd(
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    open_only: bool = typer.Option(False, "--open", help="Only incidents not closed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List incidents, newest first."""
    from rich.table import Table

    from finegate.governance import Action, require
    from finegate.monitor import list_incidents

    store, actor = _actor()
    require(actor, Action.READ_RUNS)
    incidents = list_incidents(store, status=status, open_only=open_only)
    if as_json:
        _dump([i.to_dict() for i in incidents])
        return
    table = Table("id", "kind", "severity", "status", "model", "opened", "title")
    for i in incidents:
        table.add_row(str(i.id), i.kind, i.severity, i.status, i.model_name or "-",
                      f"{i.opened_at:%Y-%m-%d %H:%M}", i.title[:60])  # fmt: skip
    console().print(table)


@incident_app.command("show")
def incident_show_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an incident and its timeline (who did what, when)."""
    from finegate.governance import Action, require
    from finegate.monitor import get_incident

    store, actor = _actor()
    require(actor, Action.READ_RUNS)
    inc = get_incident(store, incident_id)
    if as_json:
        _dump(inc.to_dict())
        return
    _print_incident(inc, timeline=True)


@incident_app.command("open")
def incident_open_cmd(
    title: str = typer.Argument(..., help="What happened, in a line."),
    kind: str = typer.Option(
        ..., "--kind", help="leakage, poisoning, policy_violation, misuse or drift."
    ),
    severity: str = typer.Option("medium", "--severity", help="low, medium, high or critical."),
    model: str | None = typer.Option(None, "--model", help="Registry name of the model."),
    target: str | None = typer.Option(None, "--target", help="Model URI concerned."),
) -> None:
    """Open an incident by hand (a user report, a red-team finding, ...)."""
    from finegate.monitor import open_incident

    store, actor = _actor()
    inc = open_incident(store, title, kind=kind, severity=severity, model_name=model,
                        target=target, actor=actor)  # fmt: skip
    _print_incident(inc)


@incident_app.command("contain")
def incident_contain_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    gateway_model: str | None = typer.Option(
        None, "--gateway-model", help="Model to switch off in the gateway (default: its model)."
    ),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> None:
    """Contain: switch the model off in the gateway (kill switch)."""
    from finegate.monitor import contain_incident

    store, actor = _actor()
    _print_incident(contain_incident(store, incident_id, gateway_model=gateway_model,
                                     reason=reason, actor=actor))  # fmt: skip


@incident_app.command("rollback")
def incident_rollback_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    model_name: str | None = typer.Option(
        None, "--model", help="Registry name (default: the incident's model)."
    ),
    reenable: str | None = typer.Option(
        None, "--reenable", help="Gateway model to switch back on after the rollback."
    ),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> None:
    """Roll production back to the previous production version (registry)."""
    from finegate.monitor import rollback_incident

    store, actor = _actor()
    _print_incident(rollback_incident(store, incident_id, model_name=model_name,
                                      reenable=reenable, reason=reason, actor=actor))  # fmt: skip


@incident_app.command("revoke-keys")
def incident_revoke_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    key_ids: list[str] = typer.Argument(None, help="Gateway key ids (default: the incident's)."),
    rotate: bool = typer.Option(False, "--rotate", help="Issue replacement keys (shown once)."),
) -> None:
    """Revoke (or rotate) gateway keys involved in the incident."""
    from finegate.monitor import revoke_incident_keys

    store, actor = _actor()
    inc, new_keys = revoke_incident_keys(store, incident_id, key_ids or (), rotate=rotate,
                                         actor=actor)  # fmt: skip
    _print_incident(inc)
    for old, new in new_keys.items():
        console().print(f"  {old} -> new key (shown once): {new}")


@incident_app.command("note")
def incident_note_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    text: str = typer.Argument(..., help="The note."),
) -> None:
    """Add a note to the incident's timeline."""
    from finegate.monitor import note_incident

    store, actor = _actor()
    _print_incident(note_incident(store, incident_id, text, actor=actor))


@incident_app.command("close")
def incident_close_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    resolution: str = typer.Option(..., "--resolution", help="How it was resolved."),
) -> None:
    """Close the incident with its resolution."""
    from finegate.monitor import close_incident

    store, actor = _actor()
    _print_incident(close_incident(store, incident_id, resolution=resolution, actor=actor))


@incident_app.command("report")
def incident_report_cmd(
    incident_id: int = typer.Argument(..., help="The incident."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write Markdown here."),
) -> None:
    """Write the post-incident document (timeline, findings, audit trail)."""
    from finegate.governance import Action, require
    from finegate.monitor import incident_report

    store, actor = _actor()
    require(actor, Action.READ_RUNS)
    text = incident_report(store, incident_id)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        console().print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``monitor`` and ``incident`` to the ``finegate`` command."""
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(incident_app, name="incident")


__all__ = ["register"]
