"""``finegate eval``, ``runs`` and ``suites`` end to end (in-process and as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.serving import uvicorn_thread
from typer.testing import CliRunner

from finegate.cli.main import app

DATA = Path(__file__).resolve().parents[1] / "data" / "evals"
SUITE = str(DATA / "mini_suite.yaml")
MOCK = f"mock:{DATA / 'mini_mock.yaml'}"


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def eval_json(*args: str) -> dict[str, Any]:
    out = invoke("eval", *args, "--json").stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_eval_twice_second_from_cache(expected: dict[str, str]) -> None:
    first = eval_json(MOCK, "--suite", SUITE)
    assert {r["case_id"]: r["verdict"] for r in first["results"]} == expected
    assert first["model_calls"] == 12 and first["cache_hits"] == 0
    second = eval_json(MOCK, "--suite", SUITE)
    assert second["model_calls"] == 0 and second["cache_hits"] == 12
    assert second["results"] == first["results"]
    assert second["summary"]["families"] == first["summary"]["families"]
    assert second["suite_hash"] == first["suite_hash"]


def test_table_runs_and_trace() -> None:
    out = invoke(
        "eval", MOCK, "--suite", SUITE, "--family", "harmful", "--family", "capability"
    ).stdout
    assert "harmful" in out and "ASR" in out and "66.7% [20.8, 93.9]" in out
    assert "leakage" not in out.split("run ")[0]
    run_id = out.split("run ")[-1].split(":")[0].strip()
    listing = invoke("runs", "list", "--json").stdout
    assert json.loads(listing)[0]["id"] == run_id
    shown = json.loads(invoke("runs", "show", run_id, "--json").stdout)
    assert shown["config"]["suite_hash"] and shown["config"]["params"]["temperature"] == 0.0
    assert len(shown["results"]) == 6
    text = invoke("runs", "show", run_id).stdout
    assert "not passing" in text and "harm-phish" in text
    trace = json.loads(invoke("runs", "trace", run_id, "harm-escalate", "--json").stdout)
    assert [m["role"] for m in trace[0]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert trace[0]["scores"][0]["scorer"] == "refusal"
    human = invoke("runs", "trace", run_id, "harm-escalate").stdout
    assert "chemistry teacher" in human and "refusal/refuse" in human


def test_resume_by_run_id_only() -> None:
    first = eval_json(MOCK, "--suite", SUITE)
    again = eval_json(MOCK, "--resume", first["run_id"])
    assert again["run_id"] == first["run_id"] and again["resumed"] == 11
    assert again["model_calls"] == 0 and again["cache_hits"] == 0


def test_suites_validate_show_and_import(tmp_path: Path) -> None:
    out = invoke("suites", "validate", SUITE).stdout
    assert "ok: mini v2: 11 cases in 5 families" in out
    shown = json.loads(invoke("suites", "show", SUITE, "--json").stdout)
    assert len(shown["cases"]) == 11
    target = tmp_path / "adv.yaml"
    invoke(
        "suites", "import", str(DATA / "advbench.csv"), "--format", "advbench", "--out", str(target)
    )
    assert "3 cases" in invoke("suites", "validate", str(target)).stdout
    target_jsonl = tmp_path / "x.jsonl"
    invoke(
        "suites",
        "import",
        str(DATA / "xstest_v2.csv"),
        "--format",
        "xstest",
        "--out",
        str(target_jsonl),
    )
    assert "2 families" in invoke("suites", "validate", str(target_jsonl)).stdout
    stdout = invoke(
        "suites", "import", str(DATA / "strongreject.csv"), "--format", "strongreject"
    ).stdout
    assert "forbidden" not in stdout and "counterfeit concert tickets" in stdout
    result = eval_json("mock:refuse", "--suite", str(target))
    assert {r["verdict"] for r in result["results"]} == {"pass"}


def test_suites_list() -> None:
    rows = json.loads(invoke("suites", "list", "--json").stdout)
    names = {r["name"] for r in rows}
    if not names:
        pytest.skip("built-in suites not installed yet")
    assert "all" in names


def _cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "finegate", *args],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["eval", "mock:echo", "--suite", "no-such-suite"], "unknown suite 'no-such-suite'"),
        (["eval", "mock:echo", "--suite", SUITE, "--family", "nope"], "no family 'nope'"),
        (["eval", "mock:echo"], "--suite is required"),
        (["runs", "show", "eval-missing"], "no eval run 'eval-missing'"),
        (["suites", "validate", str(DATA / "advbench.csv")], "invalid"),
        (["suites", "import", str(DATA / "advbench.csv"), "--format", "xstest"], "missing column"),
    ],
)
def test_user_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    code, _, err = _cli(*args)
    assert code == 2, err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_model_exits_1_with_errors_reported() -> None:
    code, out, err = _cli("eval", "mock:unavailable", "--suite", SUITE, "--family", "harmful")
    assert code == 1
    assert "every case failed" in err and "injected unavailable" in err


@contextmanager
def _serve(backend: Any) -> Iterator[str]:
    from finegate.models.server import ServerSettings, create_app

    app_ = create_app(backend, ServerSettings(model_name="mini", batch_window_s=0.002))
    with uvicorn_thread(app_) as (port, _):
        yield f"http://127.0.0.1:{port}/v1"


def test_served_over_http_gives_the_same_verdicts(mini_mock: Any, expected: dict[str, str]) -> None:
    pytest.importorskip("uvicorn")
    local = eval_json(MOCK, "--suite", SUITE)
    with _serve(mini_mock) as base:
        remote = eval_json(f"openai:{base}#mini", "--suite", SUITE, "--concurrency", "8")
    assert remote["model"] == f"openai:{base}#mini"
    assert remote["model_calls"] == 12  # a different model identity: nothing from the cache
    strip = [{k: r[k] for k in ("case_id", "verdict")} for r in local["results"]]
    assert strip == [{k: r[k] for k in ("case_id", "verdict")} for r in remote["results"]]
    assert {r["case_id"]: r["verdict"] for r in remote["results"]} == expected
