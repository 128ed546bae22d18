"""Entry point of the ``finegate`` command.

Each command group lives in its own ``*_cmd.py`` module exposing ``register(app)``; this module
only assembles them and turns :class:`~finegate.errors.FinegateError` into a one-line message
and exit code 2. Command modules import heavy libraries inside the command functions so that
``finegate --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from finegate.errors import FinegateError

COMMAND_MODULES: tuple[str, ...] = (
    "finegate.cli.models_cmd",
    "finegate.cli.serve_cmd",
    "finegate.cli.detect_cmd",
    "finegate.cli.data_cmd",
    "finegate.cli.eval_cmd",
    "finegate.cli.gate_cmd",
    "finegate.cli.demo_cmd",
    "finegate.cli.tune_cmd",
    "finegate.cli.registry_cmd",
    "finegate.cli.audit_cmd",
    "finegate.cli.docs_cmd",
    "finegate.cli.gateway_cmd",
    "finegate.cli.redteam_cmd",
    "finegate.cli.monitor_cmd",
)

app = typer.Typer(
    name="finegate",
    help="One harness for choosing, fine-tuning and shipping LLMs safely.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """One harness for choosing, fine-tuning and shipping LLMs safely.

    Model URIs: mock:NAME, hf:embedded, hf:PATH[+adapter:PATH], openai:BASE_URL#MODEL.
    State lives in $FINEGATE_HOME (default ~/.finegate); set FINEGATE_DB for PostgreSQL.
    """
    _State.debug = debug


class _State:
    debug = False


def _assemble() -> None:
    for module in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # a command group not built yet
            raise
        mod.register(app)


_assemble()


def run(argv: list[str] | None = None) -> None:
    """Run the CLI, mapping user errors to exit code 2 without a traceback."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # With standalone_mode=False click returns (not raises) the code of typer.Exit.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            raise SystemExit(code)
    except FinegateError as exc:
        if debug:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last-resort guard: one line, not a traceback
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(2) from None
        if isinstance(exc, click.exceptions.Abort):
            raise SystemExit(1) from None
        if debug:
            raise
        typer.secho(
            f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            fg=typer.colors.RED,
            err=True,
        )
        raise SystemExit(1) from None
