"""``finegate detect``: scan a file or stdin, print findings, optionally write a redacted copy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _read(path: str) -> str:
    import sys

    from finegate.errors import ConfigError

    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"no such file: {path}")
        data = p.read_bytes()
    # surrogateescape keeps undecodable bytes addressable, so a redacted copy of a binary or
    # mis-encoded file is byte-identical outside the replaced spans.
    return data.decode("utf-8", "surrogateescape")


def _write(path: str, text: str) -> None:
    import sys

    data = text.encode("utf-8", "surrogateescape")
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(path).write_bytes(data)


def _preview(value: str, sensitive: bool, show: bool) -> str:
    value = value.encode("unicode_escape").decode("ascii") if not value.isprintable() else value
    if sensitive and not show:
        value = value[:3] + "…" if len(value) > 6 else "***"
    return value if len(value) <= 60 else value[:57] + "…"


def detect(
    file: Annotated[str, typer.Argument(help="File to scan, or - for stdin.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")] = "table",
    channel: Annotated[
        str,
        typer.Option(
            "--channel", "-c", help="Where the text comes from: input, output, document, tool."
        ),
    ] = "input",
    detectors: Annotated[
        str | None,
        typer.Option(
            "--detectors", "-d", help="Comma-separated detector names (default: all built-in)."
        ),
    ] = None,
    internal_domain: Annotated[
        list[str] | None,
        typer.Option(
            "--internal-domain", help="Internal DNS suffix (repeatable), e.g. corp.acme.com."
        ),
    ] = None,
    canary: Annotated[
        list[str] | None, typer.Option("--canary", help="Canary string to find (repeatable).")
    ] = None,
    system_prompt: Annotated[
        Path | None,
        typer.Option(
            "--system-prompt", help="File with a system prompt whose leakage is reported."
        ),
    ] = None,
    min_severity: Annotated[
        str,
        typer.Option(
            "--min-severity", help="Drop findings below: info, low, medium, high, critical."
        ),
    ] = "info",
    redact_out: Annotated[
        str | None,
        typer.Option(
            "--redact", help="Write the text with sensitive findings replaced to OUT (- = stdout)."
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="redact ([EMAIL_1]), mask or pseudonymize.")
    ] = "redact",
    engine: Annotated[
        str, typer.Option("--engine", help="Prefilter: auto, hyperscan or python.")
    ] = "auto",
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 when a finding has at least this severity."),
    ] = None,
    show_values: Annotated[
        bool,
        typer.Option(
            "--show-values", help="Print matched secrets/PII in full (default: truncated)."
        ),
    ] = False,
) -> None:
    """Scan FILE (or - for stdin) for secrets, PII, injection, hidden text, leaks and more."""
    import json

    from finegate.detect import CHANNELS, MODES, Scanner, Severity, is_sensitive, redact
    from finegate.errors import ConfigError

    if fmt not in ("table", "json"):
        raise ConfigError(f"unknown format {fmt!r}", hint="use table or json")
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r}", hint=f"use one of {', '.join(CHANNELS)}")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
    if engine not in ("auto", "hyperscan", "python"):
        raise ConfigError(f"unknown engine {engine!r}", hint="use auto, hyperscan or python")
    if redact_out == "-" and fmt == "table":
        fmt = "none"  # stdout carries the redacted text; the table would corrupt it
    names = [d.strip() for d in detectors.split(",") if d.strip()] if detectors else None
    options: dict[str, dict[str, object]] = {}
    internal_domain = internal_domain or []
    canary = canary or []
    if internal_domain:
        options["network"] = {"internal_domains": internal_domain}
    if canary or system_prompt:
        if system_prompt is not None and not system_prompt.is_file():
            raise ConfigError(f"no such file: {system_prompt}")
        options["leakage"] = {
            "canaries": canary,
            "system_prompt": system_prompt.read_text("utf-8") if system_prompt else None,
        }
    if names is not None:
        for name in list(options):
            if name not in names:
                names.append(name)
    fail_sev = Severity.parse(fail_on) if fail_on else None
    scanner = Scanner(
        names,
        options=options,
        engine=engine,  # type: ignore[arg-type]
        min_severity=min_severity,
    )
    text = _read(file)
    findings = scanner.scan(text, channel=channel)

    if fmt == "json":
        payload = [f.to_dict() for f in findings]
        if not show_values:
            for d, f in zip(payload, findings, strict=True):
                if is_sensitive(f):
                    d["text"] = _preview(f.text, True, False)
        typer.echo(
            json.dumps(
                {"file": file, "engine": scanner.engine, "findings": payload},
                ensure_ascii=False,
                indent=2,
            )
        )
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(findings)} finding(s) in {file}")
        for col in ("kind", "severity", "span", "text", "detail"):
            table.add_column(col, overflow="fold")
        style = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
        for f in findings:
            sev = str(f.severity)
            table.add_row(
                f.kind,
                f"[{style.get(sev, '')}]{sev}[/]",
                f"{f.start}-{f.end}",
                _preview(f.text, is_sensitive(f), show_values),
                f.detail,
            )
        Console(highlight=False).print(table)

    if redact_out is not None:
        result = redact(text, findings, mode=mode)
        _write(redact_out, result.text)
        if redact_out != "-":
            typer.echo(f"wrote {redact_out} ({len(result.replacements)} replacement(s))", err=True)
    if fail_sev is not None and any(f.severity >= fail_sev for f in findings):
        raise SystemExit(1)  # run() uses standalone_mode=False, which swallows typer.Exit


def register(app: typer.Typer) -> None:
    """Add the ``detect`` command to ``app``."""
    app.command("detect")(detect)
