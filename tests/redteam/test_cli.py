"""``finegate redteam`` and ``finegate redteam-export`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cliutil import run_cli as _cli

DATA = Path(__file__).parent / "data"


def test_redteam_prints_breaks_exports_and_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"mock:{DATA / 'target.yaml'}"
    args = ["redteam", target, "--seeds", str(DATA / "seeds.yaml"), "--budget", "30"]
    code, out, err = _cli(
        [
            *args,
            "--attacker",
            f"mock:{DATA / 'attacker.yaml'}",
            "--export-suite",
            str(tmp_path / "found.yaml"),
            "--export-training",
            str(tmp_path / "refusals.jsonl"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "3 attacks succeeded where their seed had failed" in out
    assert "harm-01::rt-roleplay" in out and "wrote 3 attack cases" in out
    lines = (tmp_path / "refusals.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["source"] == "finegate-redteam"

    code, out, _ = _cli([*args, "--attacker", f"mock:{DATA / 'attacker.yaml'}", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["model_calls"] == 0 and data["cache_hits"] > 0
    assert sum(1 for a in data["attacks"] if a["new_break"]) == 3

    # The run is an ordinary run: compare it with itself, export it again later.
    code, out, _ = _cli(["runs", "show", data["run_id"]], capsys)
    assert code == 0 and "harmful-requests" in out
    code, out, _ = _cli(
        ["redteam-export", data["run_id"], "--suite", str(tmp_path / "again.yaml"), "--only-new"],
        capsys,
    )
    from finegate.evals import load_suite_file

    again, found = (load_suite_file(tmp_path / n) for n in ("again.yaml", "found.yaml"))
    assert code == 0 and again.cases == found.cases


def test_redteam_lists_strategies_and_rejects_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _cli(["redteam", "mock:refuse", "--strategies", "list"], capsys)
    assert code == 0 and "crescendo" in out and "base64" in out and "multi-turn" in out
    code, _, err = _cli(["redteam", "mock:refuse", "--strategies", "base64,nope"], capsys)
    assert code == 2 and "unknown redteam-strategy 'nope'" in err
    code, _, err = _cli(["redteam", "mock:refuse", "--seeds", "over-refusal"], capsys)
    assert code == 2 and "no attack cases" in err
    code, _, err = _cli(["redteam-export", "no-such-run", "--suite", "x.yaml"], capsys)
    assert code != 0 and "no run 'no-such-run'" in err
