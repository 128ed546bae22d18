"""Running the ``finegate`` command in-process, as the entry point does, for CLI tests."""

from __future__ import annotations

import pytest


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``finegate ARGS``; return (exit code, stdout, stderr)."""
    from finegate.cli.main import run

    try:
        run(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
