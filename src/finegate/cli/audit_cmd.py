"""``finegate audit log|verify|head`` and ``finegate auth create-principal|list|revoke|login``."""

from __future__ import annotations

import json
import os

import typer

from finegate.cli._common import console

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
auth_app = typer.Typer(
    help="Principals, roles and API tokens. While no principal exists, you act as the "
    "single-user 'local' admin; the first create-principal (an admin) turns access control on.",
    no_args_is_help=True,
)


@audit_app.command("log")
def log_cmd(
    obj: str | None = typer.Option(
        None, "--object", help="Only events about this object id (e.g. bot@2)."
    ),
    actor: str | None = typer.Option(None, "--actor", help="Only events by this principal."),
    action: str | None = typer.Option(None, "--action", help="Only this action."),
    limit: int = typer.Option(50, "--limit", help="Newest N events (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Show audit events, oldest first."""
    from rich.table import Table

    from finegate.governance import Action, current_principal, list_events, require
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.READ_AUDIT)
    events = list_events(store, object_id=obj, actor=actor, action=action, limit=limit or None)
    if as_json:
        for e in events:
            typer.echo(
                json.dumps(
                    {
                        "seq": e.seq,
                        "created_at": e.created_at.isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "object_type": e.object_type,
                        "object_id": e.object_id,
                        "before_hash": e.before_hash,
                        "after_hash": e.after_hash,
                        "details": e.details,
                        "prev_hash": e.prev_hash,
                        "hash": e.hash,
                    }
                )
            )
        return
    table = Table("seq", "when", "actor", "action", "object", "details")
    for e in events:
        det = {k: v for k, v in (e.details or {}).items() if v not in (None, "", [])}
        table.add_row(
            str(e.seq),
            f"{e.created_at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.action,
            f"{e.object_type}:{e.object_id}",
            json.dumps(det, default=str)[:120],
        )
    console().print(table)


@audit_app.command("verify")
def verify_cmd(
    expect_head: str | None = typer.Option(
        None, "--expect-head", help="A head hash recorded earlier outside the database."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recompute the chain; name any modified, deleted or reordered event. Exit 1 if broken."""
    from finegate.governance import Action, current_principal, require, verify_chain
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.READ_AUDIT)
    report = verify_chain(store, expect_head=expect_head)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "events": report.events,
                    "head_seq": report.head_seq,
                    "head_hash": report.head_hash,
                    "problems": [p.__dict__ for p in report.problems],
                },
                indent=2,
            )
        )
    elif report.ok:
        console().print(
            f"[green]audit chain OK[/]: {report.events} events, head seq "
            f"{report.head_seq} {report.head_hash}"
        )
    else:
        out = console()
        out.print(f"[red]audit chain BROKEN[/]: {len(report.problems)} problem(s)")
        for p in report.problems:
            out.print(f"  seq {p.seq} [{p.kind}] {p.message}", markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("head")
def head_cmd() -> None:
    """Print the chain head (seq and hash): record it elsewhere to pin the log's history."""
    from finegate.governance import Action, current_principal, require, verify_chain
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.READ_AUDIT)
    report = verify_chain(store)
    typer.echo(f"{report.head_seq} {report.head_hash}")


@auth_app.command("create-principal")
def create_principal_cmd(
    name: str = typer.Argument(..., help="Unique principal name."),
    role: str = typer.Option(
        ..., "--role", help="viewer, evaluator, data-steward, trainer, approver, operator or admin."
    ),
    service: bool = typer.Option(False, "--service", help="A service, not a person."),
    save: bool = typer.Option(
        False, "--save", help="Also save the token to this machine's profile."
    ),
) -> None:
    """Create a principal and print its API token once (only a salted hash is stored)."""
    from finegate.governance import create_principal, save_profile
    from finegate.store.db import open_store

    store = open_store()
    principal, token = create_principal(store, name, role, kind="service" if service else "person")
    err = console(stderr=True)
    err.print(
        f"created {principal.kind} [bold]{principal.name}[/] with role {principal.role}; "
        "the token below is shown once:"
    )
    typer.echo(token)
    if save:
        err.print(f"token saved to {save_profile(token)}")


@auth_app.command("create-token")
def create_token_cmd(name: str = typer.Argument(..., help="Principal name.")) -> None:
    """Issue another token for a principal (shown once)."""
    from finegate.governance import create_token
    from finegate.store.db import open_store

    typer.echo(create_token(open_store(), name))


@auth_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List principals (token ids only; secrets are never stored)."""
    from rich.table import Table

    from finegate.governance import Action, current_principal, list_principals, require
    from finegate.store.db import open_store

    store = open_store()
    require(current_principal(store), Action.MANAGE_KEYS)
    rows = list_principals(store)
    if as_json:
        typer.echo(
            json.dumps(
                [{**r.__dict__, "created_at": r.created_at.isoformat()} for r in rows], indent=2
            )
        )
        return
    if not rows:
        console().print("no principals: single-user mode (you act as the 'local' admin)")
        return
    table = Table("name", "role", "kind", "status", "tokens", "created")
    for r in rows:
        table.add_row(
            r.name,
            r.role,
            r.kind,
            "revoked" if r.revoked else "active",
            ", ".join(r.active_tokens),
            f"{r.created_at:%Y-%m-%d} by {r.created_by}",
        )
    console().print(table)


@auth_app.command("revoke")
def revoke_cmd(name: str = typer.Argument(..., help="Principal name.")) -> None:
    """Revoke a principal and all its tokens."""
    from finegate.governance import revoke_principal
    from finegate.store.db import open_store

    revoke_principal(open_store(), name)
    console().print(f"revoked {name}")


@auth_app.command("login")
def login_cmd(
    token: str | None = typer.Option(None, "--token", help="The token (default: prompt, hidden)."),
) -> None:
    """Check a token and save it to this machine's profile ($FINEGATE_HOME/profile.json)."""
    from finegate.governance import authenticate, save_profile
    from finegate.store.db import open_store

    value = token or os.environ.get("FINEGATE_TOKEN") or typer.prompt("token", hide_input=True)
    principal = authenticate(open_store(), value)
    path = save_profile(value)
    console().print(f"logged in as {principal.name} ({principal.role}); token saved to {path}")


@auth_app.command("logout")
def logout_cmd() -> None:
    """Remove the saved profile token."""
    from finegate.governance import profile_path

    path = profile_path()
    path.unlink(missing_ok=True)
    console().print(f"removed {path}")


@auth_app.command("whoami")
def whoami_cmd() -> None:
    """Print who the CLI acts as."""
    from finegate.governance import current_principal
    from finegate.store.db import open_store

    p = current_principal(open_store())
    note = " (single-user default: no principals exist)" if p.implicit else ""
    typer.echo(f"{p.name} role={p.role}{note}")


def register(app: typer.Typer) -> None:
    """Attach ``audit`` and ``auth`` to the root app."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(auth_app, name="auth")


__all__ = ["register"]
