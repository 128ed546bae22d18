"""The incident playbook through the ``finegate`` command, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cliutil import run_cli as _cli

from finegate.store import Store


def test_playbook_through_the_cli(
    store: Store,
    leak_suite: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finegate.gateway import disabled_models
    from finegate.store.db import reset_default_store

    monkeypatch.setenv("FINEGATE_DB", store.url)
    reset_default_store()

    def ok(*args: str) -> str:
        code, out, err = _cli(list(args), capsys)
        assert code == 0, (args, out, err)
        return out

    ok("registry", "register", "support-bot", "--model", "mock:refuse")
    ok("registry", "promote", "support-bot@1", "--to", "production", "--override",
       "--reason", "initial release")  # fmt: skip
    ok("monitor", "add", "support-prod", "--target", "registry:support-bot@production",
       "--suite", str(leak_suite), "--every", "1d", "--gateway-model", "support-bot")  # fmt: skip
    assert "baseline" in ok("monitor", "run-due")
    assert "no monitor is due" in ok("monitor", "run-due")

    # A leaking version reaches production; the next check regresses and opens an incident.
    ok("registry", "register", "support-bot", "--model", "mock:leaky")
    ok("registry", "promote", "support-bot@2", "--to", "production", "--override",
       "--reason", "hotfix")  # fmt: skip
    code, out, _ = _cli(["monitor", "run", "support-prod"], capsys)
    assert code == 1 and "regression" in out and "leakage" in out
    assert "incident #1 opened" in out
    listed = ok("incident", "list")
    assert "leakage" in listed and "critical" in listed and "open" in listed

    assert "contained" in ok("incident", "contain", "1", "--reason", "canary leak")
    assert "support-bot" in disabled_models(store)
    assert "mitigated" in ok("incident", "rollback", "1", "--reenable", "support-bot")
    assert "support-bot" not in disabled_models(store)
    shown = ok("registry", "show", "support-bot@production")
    assert "version              1\n" in shown and "mock:refuse" in shown

    out = ok("monitor", "run", "support-prod")
    assert "clean" in out and "incident #1 updated" in out
    ok("incident", "note", "1", "rolled back to v1; retraining with the red-team refusals")
    assert "closed" in ok("incident", "close", "1", "--resolution", "rolled back to v1")
    shown = ok("incident", "show", "1")
    for step in ("contain", "rollback", "verified_clean", "note", "close"):
        assert step in shown, step

    report = tmp_path / "incident.md"
    ok("incident", "report", "1", "--out", str(report))
    text = report.read_text()
    assert "# Incident #1" in text and "## Timeline" in text and "rolled back to v1" in text
    assert "verifies" in text and "DOES NOT" not in text
    assert len(ok("monitor", "history", "support-prod", "--json").split('"outcome"')) == 4
    ok("audit", "verify")
    # The evidence documents pick the monitoring history up from the records.
    card = ok("docs", "model-card", "support-bot@2")
    monitoring = card.split("Monitoring and incident history", 1)[1].split("\n## ", 1)[0]
    assert "monitor check support-prod" in monitoring and "#1" in monitoring
    assert "leakage" in monitoring and "closed" in monitoring
    card_v1 = ok("docs", "model-card", "support-bot@1")
    assert card_v1.count("monitor check support-prod") == 2  # the baseline and the clean check

    code, _, err = _cli(["incident", "close", "1", "--resolution", "again"], capsys)
    assert code == 2 and "closed" in err
    code, _, err = _cli(["monitor", "add", "x", "--target", "mock:refuse", "--suite", "core",
                         "--every", "soon"], capsys)  # fmt: skip
    assert code == 2 and "bad interval" in err
