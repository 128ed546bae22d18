"""The CLI end to end: real processes for exit codes, in-process runs for the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finegate.cli.main import app, run


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``finegate`` as a subprocess (the real entry point, real exit codes)."""
    proc = subprocess.run(
        [sys.executable, "-m", "finegate", *args],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_generate_records_and_reuses(isolated_home: Path) -> None:
    code, out, _ = cli("generate", "mock:echo", "hello there", "--json")
    assert code == 0
    first = json.loads(out)
    assert first["text"] == "hello there" and first["cached"] is False
    code, out, _ = cli("generate", "mock:echo", "hello there", "--json")
    assert json.loads(out)["cached"] is True
    code, out, _ = cli("generate", "mock:echo", "hello there", "--json", "--no-cache")
    assert json.loads(out)["cached"] is False
    assert (isolated_home / "finegate.db").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["generate", "bogus:thing", "hi"], "unknown model URI scheme 'bogus'"),
        (["generate", "hf:/no/such/model", "hi"], "/no/such/model"),
        (["generate", "mock:unavailable", "hi"], "injected unavailable"),
        (["models", "check", "openai:http://127.0.0.1:9/v1#m"], "127.0.0.1:9"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    code, _, err = cli(*args)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_traceback() -> None:
    code, _, err = cli("--debug", "generate", "bogus:thing", "hi")
    assert code != 0 and "Traceback" in err


def test_non_utf8_stdin_is_rejected() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "finegate", "generate", "mock:echo", "-"],
        input=b"caf\xe9 \xff",
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"not valid UTF-8" in proc.stderr


def test_non_utf8_argument_is_rejected() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "finegate", "generate", "mock:echo", b"caf\xe9"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"not valid UTF-8" in proc.stderr


def test_models_list_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    run(["models", "list", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert "mock:echo" in {r["uri"] for r in rows}
    run(["models", "check", "mock:echo", "--prompt", "one two three"])
    out = capsys.readouterr().out
    assert "tokens/s" in out and "one two three" in out


def test_demo_runs_on_mock(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A mock model runs the lifecycle's stages with no training, labelled as simulated.
    run(["demo", "--model", "mock:echo", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    for stage in ("data", "eval base", "eval A", "eval B", "gate A", "gate B", "report"):
        assert f"▶ {stage}" in out
    assert "simulated" in out and "gate variant B: DO NOT SHIP" in out
    report = tmp_path / "lifecycle-report.html"
    assert report.is_file() and "Quick mode (simulated)" in report.read_text(encoding="utf-8")


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    assert group.commands, "no commands registered"

    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        subs = getattr(cmd, "commands", None)
        found = [path]
        if subs:
            for name, sub in subs.items():
                found += walk(sub, [*path, name])
        return found

    for path in walk(group, []):
        code, out, err = cli(*path, "--help")
        assert code == 0, (path, err)
        assert "Usage" in out


def test_command_exit_codes_propagate() -> None:
    """typer.Exit codes raised inside commands reach the process exit status."""
    code, _, _ = cli("generate", "mock:unavailable", "hi")
    assert code == 2
    proc = subprocess.run(
        [sys.executable, "-m", "finegate", "detect", "-", "--fail-on", "low"],
        input=b"my key is AKIA2E0A8F3B244C9986",
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1
    proc = subprocess.run(
        [sys.executable, "-m", "finegate", "detect", "-", "--fail-on", "low"],
        input=b"nothing to see here",
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0
