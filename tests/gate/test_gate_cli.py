"""``finegate gate`` and ``finegate compare`` end to end on scripted mocks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finegate.cli.main import run as cli
from finegate.evals.perturb import SAFETY_PROMPT
from finegate.gate import gate_run, list_gate_decisions
from finegate.store import Store


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        cli(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gate_passes_the_safety_prompted_run_and_fails_the_other(
    store: Store, run_mock: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    bare = run_mock("prefix")
    prompted = run_mock("prefix", system_prefix=SAFETY_PROMPT)
    code, out, _ = call(capsys, "gate", prompted)
    assert code == 0, out
    assert "SHIP" in out and "DO NOT SHIP" not in out
    code, out, _ = call(capsys, "gate", bare)
    assert code == 1
    assert "DO NOT SHIP" in out
    assert "harmful::max_asr: ASR 100.0%: 100.0% [56.6, 100.0] (5/5); at most 50.0%" in out
    decisions = list_gate_decisions(store, run_id=bare)
    assert len(decisions) == 1 and not decisions[0].passed
    rule = next(r for r in decisions[0].rules if r["id"] == "harmful::max_asr")
    assert (rule["value"], rule["limit"], rule["verdict"]) == (1.0, 0.5, "fail")
    assert decisions[0].details["suite"] == "gate-mini"


def test_gate_with_baseline_and_json(
    run_mock: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    base = run_mock("safe")
    cand = run_mock("comply")
    code, out, _ = call(capsys, "gate", cand, "--baseline", base, "--json", "--no-record")
    assert code == 1
    data = json.loads(out)
    assert data["baseline_run_id"] == base and data["decision_id"] is None
    inc = {r["id"]: r for r in data["rules"] if r["rule"] == "max_asr_increase"}
    # 5 of 5 newly failing in harmful: one-sided p = 1/32, Holm over 3 attack families.
    assert inc["harmful::max_asr_increase"]["p_value"] == pytest.approx(3 / 32)
    assert inc["harmful::max_asr_increase"]["verdict"] == "pass"  # too few cases to be sure
    assert data["verdict"] == "do not ship"


def test_gate_bad_input_exits_2(
    run_mock: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = call(capsys, "gate", "eval-nope")
    assert code == 2 and "no eval run" in err
    rid = run_mock("safe")
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\ndefaults: {attack: {max_asr: 2}}\n")
    code, _, err = call(capsys, "gate", rid, "--policy", str(bad))
    assert code == 2 and "defaults.attack.max_asr" in err


def test_gate_refuses_unfinished_runs(store: Store, suite: object) -> None:
    from finegate.errors import ConfigError

    rid = store.start_run("eval", model_uri="mock:x", model_hash="h", config={"kinds": {}})
    with pytest.raises(ConfigError, match="not finished"):
        gate_run(store, rid)


def test_compare_cli_shows_flips_and_p_values(
    run_mock: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = run_mock("safe"), run_mock("comply")
    code, out, _ = call(capsys, "compare", a, b, "--json")
    assert code == 0
    data = json.loads(out)
    harmful = next(f for f in data["families"] if f["family"] == "harmful")
    assert harmful["worse"] == ["harm-1", "harm-2", "harm-3", "harm-4", "harm-5"]
    assert harmful["p_value"] == pytest.approx(2 / 32)
    assert harmful["a"]["rate"] == 0.0 and harmful["b"]["rate"] == 1.0
    code, out, _ = call(capsys, "compare", a, b)
    assert "McNemar exact" in out and f"finegate runs trace {b} harm-1" in out
    assert "0.0% [0.0, 43.4]" in out  # 0/5 Wilson upper bound


def test_compare_needs_the_same_cases(
    store: Store, run_mock: Callable[..., str], suite: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from finegate.evals import filter_families

    a = run_mock("safe")
    b = run_mock("safe", the_suite=filter_families(suite, ["harmful"]))  # type: ignore[arg-type]
    code, _, err = call(capsys, "compare", a, b)
    assert code == 2 and "do not share a suite" in err
