"""Incidents by hand and from the gateway, key revocation, monitor options and the daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finegate.errors import ConfigError, NotFoundError
from finegate.gateway import create_key, list_keys
from finegate.gateway.records import record_incident
from finegate.governance import list_events
from finegate.monitor import (
    add_monitor,
    get_incident,
    import_gateway_incidents,
    incident_report,
    list_incidents,
    list_monitors,
    note_incident,
    open_incident,
    parse_every,
    revoke_incident_keys,
    run_daemon,
    run_monitor,
    set_baseline,
)
from finegate.store import Store


def test_parse_every() -> None:
    assert parse_every("30d") == 30 * 86400
    assert parse_every("15m") == 900
    assert parse_every(" 2w ") == 14 * 86400
    for bad in ("", "0d", "3x", "d", "1.5h"):
        with pytest.raises(ConfigError):
            parse_every(bad)


def test_manual_incident_and_validation(sqlite_store: Store) -> None:
    inc = open_incident(sqlite_store, "user reported a poisoned answer", kind="poisoning",
                        severity="high", model_name="bot")  # fmt: skip
    assert inc.status == "open" and inc.source == "manual" and inc.opened_by == "local"
    inc = note_incident(sqlite_store, inc.id, "checking the training data")
    assert [t.action for t in inc.timeline] == ["open", "note"]
    with pytest.raises(ConfigError):
        open_incident(sqlite_store, "x", kind="aliens")
    with pytest.raises(ConfigError):
        open_incident(sqlite_store, "x", kind="drift", severity="apocalyptic")
    with pytest.raises(NotFoundError):
        get_incident(sqlite_store, 999)
    assert "checking the training data" in incident_report(sqlite_store, inc.id)


def test_gateway_incidents_are_imported_once_and_keys_revoked(store: Store) -> None:
    info, _ = create_key(store, "default", name="scraper")
    gid = record_incident(store, info.id, "extraction_probing", "high", {"hits": 40}, True)
    opened = import_gateway_incidents(store)
    assert len(opened) == 1 and import_gateway_incidents(store) == []
    inc = get_incident(store, opened[0])
    assert (inc.kind, inc.source, inc.source_ref) == ("misuse", "gateway", f"gateway:{gid}")
    assert inc.details["key_ids"] == [info.id]
    inc, new = revoke_incident_keys(store, inc.id)
    assert inc.status == "mitigated" and new == {}
    assert info.id not in {k.id for k in list_keys(store)}
    assert [t.action for t in inc.timeline] == ["open", "revoke_keys"]
    assert [i.id for i in list_incidents(store, status="mitigated")] == [inc.id]


def test_rotate_keys(sqlite_store: Store) -> None:
    info, _ = create_key(sqlite_store, "default", name="app")
    inc = open_incident(sqlite_store, "key leaked in a repo", kind="misuse")
    with pytest.raises(ConfigError):
        revoke_incident_keys(sqlite_store, inc.id)  # names no key
    inc, new = revoke_incident_keys(sqlite_store, inc.id, [info.id], rotate=True)
    assert list(new) == [info.id] and new[info.id].startswith("fgk_")
    assert [k.name for k in list_keys(sqlite_store)] == ["app"]
    assert inc.timeline[-1].action == "rotate_keys"


def test_monitor_gate_failure_opens_policy_incident(sqlite_store: Store, leak_suite: Path) -> None:
    add_monitor(sqlite_store, "m", target="mock:refuse", suite=str(leak_suite), every="1h")
    first = run_monitor(sqlite_store, "m")
    assert first.outcome == "baseline"
    policy = leak_suite.parent / "strict.yaml"
    policy.write_text(
        "name: impossible\nrequirements: {min_attack_families: 3}\n", encoding="utf-8"
    )
    add_monitor(sqlite_store, "m2", target="mock:refuse", suite=str(leak_suite),
                policy=str(policy), baseline_run_id=first.run_id)  # fmt: skip
    check = run_monitor(sqlite_store, "m2")
    assert check.outcome == "regression" and check.findings[0]["type"] == "gate"
    assert get_incident(sqlite_store, check.incident_id or -1).kind == "policy_violation"


def test_monitor_admin(sqlite_store: Store, leak_suite: Path) -> None:
    add_monitor(sqlite_store, "m", target="mock:refuse", suite=str(leak_suite), every="1h")
    with pytest.raises(ConfigError):
        add_monitor(sqlite_store, "m", target="mock:refuse", suite=str(leak_suite))
    with pytest.raises(NotFoundError):
        add_monitor(sqlite_store, "x", target="mock:refuse", suite="core", baseline_run_id="nope")
    slept: list[float] = []
    # Due at once, then not again within the hour: two iterations, one check.
    assert run_daemon(sqlite_store, interval_s=5, iterations=2, sleep=slept.append) == 1
    assert slept == [5]
    (mon,) = list_monitors(sqlite_store)
    assert mon.baseline_run_id is not None and mon.last_run_at is not None
    assert mon.next_due_at > datetime.now(UTC) + timedelta(minutes=50)
    again = run_monitor(sqlite_store, "m")
    assert again.outcome == "clean" and again.findings == []
    set_baseline(sqlite_store, "m", again.run_id)
    assert list_monitors(sqlite_store)[0].baseline_run_id == again.run_id
    assert "monitor.baseline" in [e.action for e in list_events(sqlite_store)]
