"""Reports: HTML (rendered in headless Chromium), Markdown, JSON and JUnit XML."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from finegate.evals import EvalConfig, load_suite_file, run_eval_sync
from finegate.models.mock import MockBackend, MockScript
from finegate.report import build_report, render_report, write_report
from finegate.store import Store

GATE_DATA = Path(__file__).resolve().parents[1] / "gate" / "data"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture()
def two_runs(isolated_home: Path) -> tuple[Store, str, str]:
    from finegate.models import load_backend
    from finegate.store.db import open_store

    store = open_store()
    suite = load_suite_file(GATE_DATA / "gate_suite.yaml")
    safe = MockBackend(MockScript.from_file(GATE_DATA / "safe_mock.yaml"))
    a = run_eval_sync(safe, suite, store=store, config=EvalConfig())
    b = run_eval_sync(load_backend("mock:comply"), suite, store=store)
    return store, a.run_id, b.run_id


def test_report_content(two_runs: tuple[Store, str, str]) -> None:
    store, a, b = two_runs
    data = build_report(store, [a, b])
    assert data["verdict"] == {a: "ship", b: "do not ship"}
    assert [r["run_id"] for r in data["runs"]] == [a, b]
    assert data["runs"][1]["gate"]["baseline_run_id"] == a
    assert data["runs"][0]["suite_hash"] == data["runs"][1]["suite_hash"]
    flips = {(f["case_id"], f["direction"]) for f in data["flipped"]}
    assert ("harm-1", "worse") in flips and ("jail-5", "worse") in flips
    harm = next(f for f in data["flipped"] if f["case_id"] == "harm-1")
    assert harm["a"]["verdict"] == "pass" and harm["b"]["verdict"] == "fail"
    assert harm["b"]["messages"][-1]["role"] == "assistant"
    assert json.loads(render_report(data, "json"))["baseline_run_id"] == a


def test_markdown_and_junit(two_runs: tuple[Store, str, str], tmp_path: Path) -> None:
    store, a, b = two_runs
    md, kind = write_report(store, [a, b], tmp_path / "r.md")
    assert kind == "md"
    text = md.read_text()
    assert "**SHIP**" in text and "**DO NOT SHIP**" in text
    assert "| harmful | 0.0% [0.0, 43.4] | 100.0% [56.6, 100.0] | +100.0% | 5 | 0 |" in text
    xml_path, kind = write_report(store, [a, b], tmp_path / "gate.xml")
    assert kind == "junit"
    root = ET.parse(xml_path).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 2
    data = build_report(store, [a, b])
    for suite, run in zip(suites, data["runs"], strict=True):
        cases = suite.findall("testcase")
        assert len(cases) == len(run["gate"]["rules"])  # one test per gate rule
        failed = [c for c in cases if c.find("failure") is not None]
        assert len(failed) == int(suite.get("failures", "-1"))
        assert len(failed) == sum(1 for r in run["gate"]["rules"] if r["verdict"] != "pass")
    bad = next(c for c in suites[1].findall("testcase") if c.get("name") == "harmful::max_asr")
    failure = bad.find("failure")
    assert failure is not None and "100.0% [56.6, 100.0]" in failure.get("message", "")
    # The report is kept in the artifact store too.
    from finegate.store.artifacts import sha256_file

    assert store.artifacts.info(sha256_file(xml_path)) is not None


def test_html_is_self_contained(two_runs: tuple[Store, str, str], tmp_path: Path) -> None:
    store, a, b = two_runs
    path, _ = write_report(store, [a, b], tmp_path / "report.html")
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    for needle in ("<script", "<link", "src=", "@import"):
        assert needle not in html
    assert not re.search(r"url\((?!#)", html)  # only in-document references (clip paths)
    assert not re.search(r"href=\"(?!#)", html)
    without_ns = re.sub(r'xmlns(:\w+)?="[^"]*"', "", html)  # XML namespaces are names, not fetches
    assert "https://" not in without_ns and "http://" not in without_ns


def test_html_renders_in_headless_chromium(
    two_runs: tuple[Store, str, str], tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            "headless Chromium is needed for this test and is missing: install it with "
            "`apt-get install -y chromium` (Debian), then re-run"
        )
    store, a, b = two_runs
    path, _ = write_report(store, [a, b], tmp_path / "report.html")
    proc = subprocess.run(
        [
            CHROMIUM if Path(CHROMIUM).exists() else "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = proc.stdout
    assert proc.returncode == 0 and "<body" in dom, proc.stderr[-2000:]
    # Key numbers and verdicts are on the rendered page.
    for needle in (
        a,
        b,
        "DO NOT SHIP",
        "SHIP",
        "100.0% [56.6, 100.0]",
        "0.0% [0.0, 43.4]",
        "harm-1",
        "max_asr",
        "McNemar exact",
        "Attack success rate per family",
    ):
        assert needle in dom, needle
    assert "<svg" in dom
