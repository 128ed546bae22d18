"""Keys, kill switch, reviews, request log and incidents on SQLite and PostgreSQL; audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finegate.errors import ConfigError, NotFoundError, PermissionDeniedError
from finegate.gateway import (
    create_key,
    decide_review,
    disabled_models,
    list_keys,
    list_reviews,
    purge_request_log,
    revoke_key,
    rotate_key,
    set_model_enabled,
)
from finegate.gateway.keys import hash_key, lookup_key
from finegate.gateway.records import create_review, list_incidents, record_incident
from finegate.governance import create_principal, list_events, verify_chain
from finegate.store import Store
from finegate.store.schema import GatewayKey, GatewayRequestLog


def test_keys_are_hashed_rotated_revoked_and_audited(db: Store) -> None:
    info, key = create_key(db, "default", name="app", tiers=["default"])
    with db.session() as s:
        row = s.get(GatewayKey, info.id)
        assert row is not None and row.key_hash == hash_key(key) and key not in row.key_hash
    assert lookup_key(db, key) == info
    new, new_key = rotate_key(db, info.id)
    assert lookup_key(db, key) is None and lookup_key(db, new_key) is not None
    assert new.tier == "default" and new.rotated_from == info.id
    revoke_key(db, new.id)
    assert lookup_key(db, new_key) is None and list_keys(db) == []
    assert len(list_keys(db, include_revoked=True)) == 2
    actions = [e.action for e in list_events(db, object_type="gateway_key")]
    assert actions == ["gateway.key.create", "gateway.key.rotate", "gateway.key.revoke"]
    assert verify_chain(db).ok
    with pytest.raises(ConfigError):
        create_key(db, "gold", tiers=["default"])
    with pytest.raises(NotFoundError):
        revoke_key(db, new.id)


def test_roles_are_enforced_for_keys_kill_switch_and_reviews(db: Store) -> None:
    admin, _ = create_principal(db, "root", "admin")
    viewer, _ = create_principal(db, "vic", "viewer", actor=admin)
    operator, _ = create_principal(db, "olga", "operator", actor=admin)
    with pytest.raises(PermissionDeniedError):
        create_key(db, "default", actor=viewer)
    with pytest.raises(PermissionDeniedError):
        set_model_enabled(db, "bot", False, actor=viewer)
    set_model_enabled(db, "bot", False, reason="drill", actor=operator)
    assert disabled_models(db) == {"bot": "drill"}
    set_model_enabled(db, "bot", True, actor=operator)
    assert disabled_models(db) == {}
    rid = create_review(db, key_id="k", model="bot", reasons=["r"], request={}, response={})
    with pytest.raises(PermissionDeniedError):
        list_reviews(db, actor=viewer)
    with pytest.raises(PermissionDeniedError):
        decide_review(db, rid, True, actor=viewer)
    assert [r.id for r in list_reviews(db, actor=operator)] == [rid]
    decided = decide_review(db, rid, True, note="fine", actor=operator)
    assert decided.status == "approved" and decided.decided_by == "olga"
    with pytest.raises(ConfigError):
        decide_review(db, rid, False, actor=operator)
    actions = [e.action for e in list_events(db)]
    assert "gateway.model.disable" in actions and "gateway.model.enable" in actions
    assert "gateway.review.approve" in actions and "access.denied" in actions
    assert verify_chain(db).ok


def test_request_log_retention_purge_and_incidents(db: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    with db.session() as s:
        for i, when in enumerate((old, datetime.now(UTC))):
            s.add(GatewayRequestLog(request_id=f"r{i}", status=200, outcome="ok", messages=[],
                                    tool_calls=[], decisions=[], created_at=when))  # fmt: skip
    assert purge_request_log(db, 30) == 1
    with db.session() as s:
        assert [r.request_id for r in s.query(GatewayRequestLog)] == ["r1"]
    record_incident(db, "k1", "extraction.prefix_probing", "high", {"n": 12}, True)
    (inc,) = list_incidents(db, "k1")
    assert inc["kind"] == "extraction.prefix_probing" and inc["throttled"] is True
