"""``finegate registry`` end to end through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from tests.cliutil import run_cli as _cli

from finegate.gate import record_gate_decision
from finegate.store import Store


def test_cli_release_chain(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finegate.store.db import reset_default_store

    monkeypatch.setenv("FINEGATE_DB", store.url)
    reset_default_store()
    code, out, _ = _cli(
        [
            "registry",
            "register",
            "bot",
            "--model",
            "mock:refuse",
            "--intended-use",
            "support",
            "--json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["version"] == 1
    code, _, err = _cli(["registry", "promote", "bot@1", "--to", "production"], capsys)
    assert code == 3 and "no gate decision" in err
    run_id = store.start_run("eval", model_hash=json.loads(out)["model_hash"])
    record_gate_decision(
        store, run_id=run_id, policy_hash="c" * 64, policy_name="default", passed=True, rules=[]
    )
    code, out, _ = _cli(["registry", "promote", "bot@1", "--to", "production"], capsys)
    assert code == 0 and "gate decision #1" in out
    _cli(["registry", "register", "bot", "--model", "mock:echo"], capsys)
    code, out, _ = _cli(
        ["registry", "promote", "bot@2", "--to", "production", "--override", "--reason", "hotfix"],
        capsys,
    )
    assert code == 0 and "OVERRIDDEN" in out and "bot@1: production → retired" in out
    code, out, _ = _cli(["registry", "rollback", "bot"], capsys)
    assert code == 0 and "bot@1" in out
    code, out, _ = _cli(["registry", "show", "bot@production", "--json"], capsys)
    assert json.loads(out)["version"] == 1
    code, out, _ = _cli(["registry", "lineage", "bot@1"], capsys)
    assert code == 0 and "gate decisions: 1" in out
    code, out, _ = _cli(["registry", "inventory", "--json", "--strict"], capsys)
    assert code == 1 and "no guardrails configured" in json.loads(out)[0]["flags"]
    code, out, _ = _cli(["audit", "verify"], capsys)
    assert code == 0 and "audit chain OK" in out
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE action = 'registry.supersede'"))
    code, out, _ = _cli(["audit", "verify", "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and [p["kind"] for p in report["problems"]] == ["deleted"]
    reset_default_store()
