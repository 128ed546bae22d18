"""The incident playbook, end to end, on SQLite and PostgreSQL.

A production model starts leaking (a bad version is promoted) -> the monitor run detects the
regression against the release baseline -> an incident opens -> contain (gateway kill switch)
-> rollback (registry) -> the next monitor run is clean -> the incident is closed, and every
step is in the audit log, whose chain verifies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finegate.errors import ConfigError, PermissionDeniedError
from finegate.gateway import disabled_models
from finegate.governance import Principal, list_events, verify_chain
from finegate.monitor import (
    add_monitor,
    close_incident,
    contain_incident,
    get_incident,
    incident_report,
    list_incidents,
    monitor_runs,
    rollback_incident,
    run_due,
    run_monitor,
)
from finegate.registry import get_version, promote, register_model
from finegate.store import Store

ADMIN = Principal(id="p-admin", name="release-admin", role="admin")
BOT = Principal(id="p-bot", name="monitor-bot", role="evaluator", kind="service")
ONCALL = Principal(id="p-oncall", name="alice-oncall", role="operator")


def test_playbook(store: Store, leak_suite: Path) -> None:
    v1 = register_model(store, "support-bot", "mock:refuse", actor=ADMIN)
    promote(store, v1.ref, "production", override=True, reason="initial release", actor=ADMIN)
    add_monitor(
        store,
        "support-prod",
        target="registry:support-bot@production",
        suite=str(leak_suite),
        every="1d",
        gateway_model="support-bot",
        actor=BOT,
    )

    t0 = datetime.now(UTC)
    first = run_due(store, now=t0, actor=BOT)
    assert [c.outcome for c in first] == ["baseline"]
    assert run_due(store, now=t0 + timedelta(hours=1), actor=BOT) == []  # not due yet

    # A bad adapter reaches production: the version leaks its system prompt.
    v2 = register_model(store, "support-bot", "mock:leaky", actor=ADMIN)
    promote(store, v2.ref, "production", override=True, reason="hotfix", actor=ADMIN)

    (check,) = run_due(store, now=t0 + timedelta(days=1, seconds=1), actor=BOT)
    assert check.outcome == "regression" and check.incident_opened
    assert check.baseline_run_id == first[0].run_id
    assert check.findings[0]["family"] == "leakage" and len(check.findings[0]["worse"]) == 12
    inc = get_incident(store, check.incident_id or -1)
    assert (inc.kind, inc.severity, inc.status, inc.model_name) == (
        "leakage", "critical", "open", "support-bot")  # fmt: skip

    # The monitor's service account may not pull the kill switch; on-call may.
    with pytest.raises(PermissionDeniedError):
        contain_incident(store, inc.id, actor=BOT)
    inc = contain_incident(store, inc.id, actor=ONCALL)
    assert inc.status == "contained" and "support-bot" in disabled_models(store)

    inc = rollback_incident(store, inc.id, reenable="support-bot", actor=ONCALL)
    assert inc.status == "mitigated"
    assert get_version(store, "support-bot@production").version == v1.version
    assert "support-bot" not in disabled_models(store)

    again = run_monitor(store, "support-prod", actor=BOT)
    assert again.outcome == "clean" and again.incident_id == inc.id and not again.incident_opened

    with pytest.raises(ConfigError):
        close_incident(store, inc.id, resolution=" ", actor=ONCALL)
    inc = close_incident(store, inc.id, resolution="bad adapter rolled back", actor=ONCALL)
    assert inc.status == "closed" and inc.closed_by == "alice-oncall"
    with pytest.raises(ConfigError):
        contain_incident(store, inc.id, actor=ONCALL)

    steps = [(t.action, t.actor) for t in inc.timeline]
    assert steps == [
        ("open", "monitor-bot"),
        ("contain", "alice-oncall"),
        ("rollback", "alice-oncall"),
        ("verified_clean", "monitor-bot"),
        ("close", "alice-oncall"),
    ]
    assert all(t.audit_seq is not None for t in inc.timeline)
    actions = [e.action for e in list_events(store)]
    for action in ("monitor.add", "monitor.run", "incident.open", "gateway.model.disable",
                   "registry.rollback", "gateway.model.enable", "incident.contain",
                   "incident.rollback", "incident.verified_clean", "incident.close"):  # fmt: skip
        assert action in actions, action
    assert actions.index("gateway.model.disable") < actions.index("incident.contain")
    assert verify_chain(store).ok
    assert [r["outcome"] for r in monitor_runs(store, "support-prod")] == [
        "baseline", "regression", "clean"]  # fmt: skip
    assert list_incidents(store, open_only=True) == []

    report = incident_report(store, inc.id)
    assert "# Incident #" in report and "bad adapter rolled back" in report
    assert "alice-oncall" in report and "verifies" in report and "leakage" in report
