"""``finegate gateway``, ``finegate keys`` and ``finegate review``: run and operate the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import typer

gateway_app = typer.Typer(
    help="Run the guard gateway; switch models off and on (kill switch).",
    no_args_is_help=False,
    invoke_without_command=True,
)
keys_app = typer.Typer(help="Gateway API keys: create, list, revoke, rotate.", no_args_is_help=True)
review_app = typer.Typer(help="Answers held by the gateway for human review.", no_args_is_help=True)

_WORKERS_HELP = (
    "Worker processes sharing the port (default: the config's 'workers', 1). More than one "
    "needs redis_url in the config; about one per CPU core the gateway may use."
)


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Gateway YAML (see docs/gateway.md).", dir_okay=False
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8080, min=0, max=65535, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    access_log: bool = typer.Option(False, "--access-log", help="Log one line per request."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=256, help=_WORKERS_HELP),
) -> None:
    """Start the OpenAI-compatible guard gateway: finegate gateway --config gateway.yaml."""
    if ctx.invoked_subcommand is not None:
        return
    from finegate.errors import ConfigError
    from finegate.gateway import load_config
    from finegate.gateway.app import serve

    if config is None:
        raise ConfigError("--config is required to start the gateway", hint="see docs/gateway.md")
    cfg = load_config(config)
    if workers is not None:
        cfg = cfg.model_copy(update={"workers": workers})
    serve(cfg, host=host, port=port, log_level=log_level.lower(), access_log=access_log)


@gateway_app.command("disable")
def disable(
    model: str = typer.Argument(..., help="Model name as clients call it."),
    reason: str = typer.Option("", "--reason", help="Shown to clients in the 503 message."),
) -> None:
    """Kill switch: every gateway on this store refuses MODEL (503) within a second."""
    from finegate.gateway import set_model_enabled
    from finegate.store.db import open_store

    set_model_enabled(open_store(), model, False, reason=reason)
    typer.echo(f"disabled {model}")


@gateway_app.command("enable")
def enable(model: str = typer.Argument(..., help="Model name as clients call it.")) -> None:
    """Lift the kill switch for MODEL."""
    from finegate.gateway import set_model_enabled
    from finegate.store.db import open_store

    set_model_enabled(open_store(), model, True)
    typer.echo(f"enabled {model}")


@gateway_app.command("purge-logs")
def purge_logs(
    days: float = typer.Option(..., "--days", min=0.0, help="Delete rows older than this."),
) -> None:
    """Delete request-log rows older than DAYS (the gateway also does this hourly)."""
    from finegate.gateway import purge_request_log
    from finegate.store.db import open_store

    typer.echo(f"purged {purge_request_log(open_store(), days)} rows")


@gateway_app.command("incidents")
def incidents(as_json: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """List usage-monitoring incidents (extraction probing)."""
    from finegate.gateway import list_incidents
    from finegate.store.db import open_store

    rows = list_incidents(open_store())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['id']}\t{r['created_at']}\t{r['key_id']}\t{r['kind']}\t{r['severity']}")


def _tiers(config: Path | None) -> list[str] | None:
    if config is None:
        return None
    from finegate.gateway import load_config

    return list(load_config(config).tiers)


@keys_app.command("create")
def keys_create(
    tier: str = typer.Option(..., "--tier", help="Tier of the key (from the gateway config)."),
    name: str = typer.Option("", "--name", help="Who or what uses the key."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Check the tier exists in this gateway config."
    ),
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from finegate.gateway import create_key
    from finegate.store.db import open_store

    info, key = create_key(open_store(), tier, name=name, tiers=_tiers(config))
    typer.echo(f"created key {info.id} (tier {info.tier}); store it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    include_revoked: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """List keys (ids, tiers, prefixes; never the keys)."""
    from finegate.gateway import list_keys
    from finegate.store.db import open_store

    rows = list_keys(open_store(), include_revoked=include_revoked)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    for r in rows:
        state = "active" if r.active else "revoked"
        typer.echo(f"{r.id}\t{r.tier}\t{r.prefix}…\t{r.name}\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="Key id (see keys list).")) -> None:
    """Revoke a key (gateways refuse it within their key-cache TTL)."""
    from finegate.gateway import revoke_key
    from finegate.store.db import open_store

    revoke_key(open_store(), key_id)
    typer.echo(f"revoked {key_id}")


@keys_app.command("rotate")
def keys_rotate(key_id: str = typer.Argument(..., help="Key id (see keys list).")) -> None:
    """Replace a key by a new one of the same tier; the old one is revoked."""
    from finegate.gateway import rotate_key
    from finegate.store.db import open_store

    info, key = rotate_key(open_store(), key_id)
    typer.echo(f"rotated {key_id} -> {info.id}; store the new key now:")
    typer.echo(key)


@review_app.command("list")
def review_list(
    status: str = typer.Option("pending", help="pending, approved, denied or all."),
    as_json: bool = typer.Option(False, "--json", help="JSON output with the held content."),
) -> None:
    """List held answers (needs gateway:read-logs)."""
    from finegate.gateway import list_reviews
    from finegate.store.db import open_store

    rows = list_reviews(open_store(), status=None if status == "all" else status)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    for r in rows:
        typer.echo(f"{r.id}\t{r.status}\t{r.model}\t{r.key_id}\t{'; '.join(r.reasons)}")


def _decide(review_id: str, approve: bool, note: str) -> None:
    from finegate.gateway import decide_review
    from finegate.store.db import open_store

    info = decide_review(open_store(), review_id, approve, note=note)
    typer.echo(f"{info.status} {info.id}")


@review_app.command("approve")
def review_approve(
    review_id: str = typer.Argument(...), note: str = typer.Option("", "--note")
) -> None:
    """Release a held answer to its client (audited)."""
    _decide(review_id, True, note)


@review_app.command("deny")
def review_deny(
    review_id: str = typer.Argument(...), note: str = typer.Option("", "--note")
) -> None:
    """Refuse a held answer; the client gets 403 review_denied (audited)."""
    _decide(review_id, False, note)


def register(app: typer.Typer) -> None:
    """Add ``gateway``, ``keys`` and ``review`` to the ``finegate`` command."""
    app.add_typer(gateway_app, name="gateway")
    app.add_typer(keys_app, name="keys")
    app.add_typer(review_app, name="review")
