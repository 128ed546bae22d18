"""``finegate models list|check`` and ``finegate generate``."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import typer

from finegate.cli._common import check_text, console, open_backend

models_app = typer.Typer(help="List and check model backends.", no_args_is_help=True)

URI_HELP = "Model URI: mock:NAME, hf:embedded, hf:PATH[+adapter:PATH], openai:BASE_URL#MODEL."


@models_app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List backend schemes and the models available without a download."""
    from finegate.models.catalog import available_models

    rows = available_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("uri", "backend", "status", "notes")
    for row in rows:
        table.add_row(row["uri"], row["backend"], row["status"], row["notes"])
    console().print(table)


@models_app.command("check")
def check(
    uri: str = typer.Argument(..., help=URI_HELP),
    prompt: str = typer.Option(
        "In one sentence, what is a large language model?", help="Prompt to send."
    ),
    max_tokens: int = typer.Option(48, help="Maximum new tokens."),
) -> None:
    """Load a model, run one prompt, print identity, latency and tokens/s.

    The check always calls the model (no cache) so the speed shown is real.
    """
    from finegate.models.types import ChatRequest, GenerationParams

    check_text(prompt)
    t0 = time.perf_counter()
    backend = open_backend(uri, no_cache=True)
    load_s = time.perf_counter() - t0
    request = ChatRequest.from_prompt(prompt, params=GenerationParams(max_tokens=max_tokens))
    t1 = time.perf_counter()
    (resp,) = asyncio.run(backend.generate([request]))
    gen_s = time.perf_counter() - t1
    ident = backend.identity()
    out = console()
    out.print(f"[bold]model[/]     {ident.uri}  ({ident.backend}, {ident.content_hash[:16]})")
    out.print(f"[bold]load[/]      {load_s:.2f} s")
    if resp.error:
        out.print(f"[red]error[/]     {resp.error}")
        raise typer.Exit(1)
    tps = resp.completion_tokens / gen_s if gen_s > 0 else 0.0
    out.print(
        f"[bold]latency[/]   {gen_s:.2f} s  ({resp.prompt_tokens} prompt + "
        f"{resp.completion_tokens} completion tokens, {tps:.1f} tokens/s)"
    )
    out.print(f"[bold]finish[/]    {resp.finish_reason}")
    out.print(f"[bold]reply[/]     {resp.text}")


def generate(
    uri: str = typer.Argument(..., help=URI_HELP),
    prompt: str = typer.Argument(None, help="User prompt; omit or '-' to read stdin."),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
    max_tokens: int = typer.Option(256, help="Maximum new tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy (deterministic)."),
    seed: int | None = typer.Option(None, help="Seed for sampling (makes it repeatable)."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Always call the model; do not answer from the store."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full response as JSON."),
) -> None:
    """Generate one reply. Every call is recorded; repeats are answered from the store."""
    from finegate.models.types import ChatRequest, GenerationParams

    if prompt is None or prompt == "-":
        raw = sys.stdin.buffer.read()
        try:
            prompt = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            from finegate.errors import ConfigError

            raise ConfigError(
                f"stdin is not valid UTF-8 (bad byte at offset {exc.start})",
                hint="re-encode the input as UTF-8",
            ) from None
    check_text(prompt)
    if system:
        check_text(system, "system prompt")
    params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    backend = open_backend(uri, no_cache=no_cache)
    (resp,) = asyncio.run(
        backend.generate([ChatRequest.from_prompt(prompt, system=system, params=params)])
    )
    if as_json:
        typer.echo(json.dumps({**resp.to_dict(), "cached": resp.cached}, ensure_ascii=False))
    else:
        typer.echo(resp.text)
        for call in resp.tool_calls:
            typer.echo(f"[tool call] {call.name}({call.arguments})")
    if resp.error:
        typer.secho(f"error: {resp.error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach these commands to the root app."""
    app.add_typer(models_app, name="models")
    app.command("generate")(generate)


__all__ = ["register"]
