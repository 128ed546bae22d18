"""``finegate serve-model``: serve any model URI as an OpenAI-compatible HTTP server."""

from __future__ import annotations

import typer

URI_HELP = "Model URI to serve: mock:NAME, hf:embedded, hf:PATH[+adapter:PATH], ..."


def serve_model(
    uri: str = typer.Argument(..., help=URI_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    api_key_env: str | None = typer.Option(
        None,
        "--api-key-env",
        metavar="NAME",
        help="Require 'Authorization: Bearer <key>' where the key is read from environment "
        "variable NAME (the key itself is never given on the command line).",
    ),
    model_name: str | None = typer.Option(
        None,
        "--model-name",
        help="Model id reported by /v1/models and in responses (default: the URI).",
    ),
    batch_window_ms: float = typer.Option(
        5.0, min=0.0, help="How long the first request of a batch waits for concurrent ones."
    ),
    max_batch: int = typer.Option(16, min=1, help="Largest batch handed to the model."),
    max_concurrent_batches: int = typer.Option(
        1, min=1, help="Batches the model runs at once (keep 1 for a single local GPU/CPU)."
    ),
    max_body_bytes: int = typer.Option(
        16 * 1024 * 1024, min=1, help="Largest request body accepted (413 beyond it)."
    ),
    device: str = typer.Option("auto", help="Local models: auto, cpu or cuda."),
    dtype: str = typer.Option("auto", help="Local models: auto, float32 or bfloat16."),
    log_level: str = typer.Option("info", help="uvicorn log level (warning to keep it quiet)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log one line per request."),
) -> None:
    """Serve a model as an OpenAI-compatible /v1/chat/completions server.

    Any client that speaks the OpenAI API (curl, the openai package, finegate's own openai:
    backend) can then use a local model exactly like a remote one. Concurrent requests are
    gathered into batches for the model. Stop with Ctrl-C.

    Serve the embedded model:  finegate serve-model hf:embedded --port 8000

    Ask it with curl:  curl -s http://127.0.0.1:8000/v1/chat/completions
    -H 'Content-Type: application/json'
    -d '{"model": "hf:embedded", "messages": [{"role": "user", "content": "Hi"}]}'

    Evaluate it over HTTP:  finegate generate 'openai:http://127.0.0.1:8000/v1#hf:embedded' Hi
    """
    from finegate.models.server import ServerSettings, read_api_key, serve
    from finegate.models.uri import BackendOptions

    settings = ServerSettings(
        model_name=model_name,
        api_key=read_api_key(api_key_env),
        batch_window_s=batch_window_ms / 1000.0,
        max_batch=max_batch,
        max_concurrent_batches=max_concurrent_batches,
        max_body_bytes=max_body_bytes,
    )
    options = BackendOptions(batch_size=max_batch, device=device, dtype=dtype)
    serve(
        uri,
        host=host,
        port=port,
        settings=settings,
        options=options,
        log_level=log_level.lower(),
        access_log=access_log,
    )


def register(app: typer.Typer) -> None:
    """Add ``serve-model`` to the ``finegate`` command."""
    app.command("serve-model")(serve_model)
