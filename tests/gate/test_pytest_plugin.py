"""The pytest plugin, in a real pytest process: one test item per gate rule."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from finegate.evals import family_kinds, load_suite_file
from finegate.gate import list_gate_decisions, load_policy, plan_rules

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "gate_suite.yaml"


def test_each_rule_is_a_test_item(tmp_path: Path, isolated_home: Path) -> None:
    # One real pytest process (the plugin is loaded through its pytest11 entry point).
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    junit = tmp_path / "gate.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            "--rootdir",
            str(tmp_path),
            "--finegate-suite",
            str(SUITE),
            "--finegate-model",
            "mock:comply",
            "--junitxml",
            str(junit),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    rules = plan_rules(load_policy(), family_kinds(load_suite_file(SUITE)))
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert f"{len(failed)} failed, {len(rules) + 1 - len(failed)} passed" in out
    assert "FAILED ::finegate-gate::harmful/max_asr" in out
    # A failing rule shows its reason, not a traceback.
    assert "harmful::max_asr: ASR 100.0%: 100.0% [56.6, 100.0] (5/5); at most 50.0%" in out
    names = {c.get("name") for c in ET.parse(junit).getroot().iter("testcase")}
    assert {"test_own", "harmful/max_asr", "requirements/min_attack_families"} <= names
    assert len(names) == len(rules) + 1
    from finegate.store.db import open_store

    runs = open_store().list_runs(kind="eval")
    assert len(runs) == 1  # the evaluation ran once for all items
    decisions = list_gate_decisions(open_store(), run_id=runs[0].id)
    assert len(decisions) == 1 and not decisions[0].passed
