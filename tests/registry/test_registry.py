"""The registry: the gated release chain, rollback, URIs, lineage and inventory."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from finegate.errors import ConfigError, GateRequiredError, NotFoundError, PermissionDeniedError
from finegate.gate import list_gate_decisions, record_gate_decision
from finegate.governance import LOCAL_ADMIN, create_principal, list_events, verify_chain
from finegate.registry import (
    get_version,
    inventory,
    lineage,
    list_versions,
    parse_ref,
    promote,
    register_model,
    resolve_uri,
    rollback,
    set_guardrails,
    transitions,
)
from finegate.store import Store

RULES = [
    {
        "rule": "max_asr",
        "family": "harmful",
        "value": 0.1,
        "limit": 0.2,
        "verdict": "pass",
        "reason": "0.10 <= 0.20",
    }
]


def _eval_run(store: Store, model_hash: str) -> str:
    return store.start_run("eval", model_uri="mock:x", model_hash=model_hash)


def _gate(store: Store, run_id: str, passed: bool, **kw: object) -> int:
    return record_gate_decision(
        store,
        run_id=run_id,
        policy_hash="a" * 64,
        policy_name="default",
        passed=passed,
        rules=RULES,
        **kw,
    ).id  # type: ignore[arg-type]


def test_release_chain_is_gated_recorded_and_verifiable(store: Store) -> None:
    """register → promote without gate (denied) → gate passes → promote → rollback."""
    v1 = register_model(store, "bot", "mock:refuse", intended_use="support")
    assert (v1.ref, v1.stage) == ("bot@1", "candidate")
    with pytest.raises(GateRequiredError, match="no gate decision"):
        promote(store, "bot@1", "production")
    run1 = _eval_run(store, v1.model_hash)
    _gate(store, run1, passed=False)
    with pytest.raises(GateRequiredError, match="failed"):
        promote(store, "bot@1", "approved")
    d1 = _gate(store, run1, passed=True)
    t = promote(store, "bot@1", "approved")
    assert (t.from_stage, t.to_stage, t.gate_decision_id) == ("candidate", "approved", d1)
    assert t.policy_hash == "a" * 64 and not t.override
    promote(store, "bot@1", "production")
    assert get_version(store, "bot@production").version == 1

    v2 = register_model(store, "bot", "mock:echo")
    d2 = _gate(store, _eval_run(store, v2.model_hash), passed=True)
    t2 = promote(store, "bot@2", "production")
    assert t2.superseded == ["bot@1"] and t2.gate_decision_id == d2
    assert get_version(store, "bot@1").stage == "retired"

    back = rollback(store, "bot", reason="regression in prod")
    assert (back.ref, back.superseded) == ("bot@1", ["bot@2"])
    assert get_version(store, "bot@production").version == 1
    assert get_version(store, "bot@2").stage == "retired"
    with pytest.raises(NotFoundError, match="nothing to roll back"):
        rollback(store, "bot")  # bot@2 was rolled back; it is never returned to

    actions = [
        (e.action, e.object_id)
        for e in list_events(store)
        if e.action.startswith("registry.") or e.action == "gate.decide"
    ]
    assert actions == [
        ("registry.create_model", "bot"),
        ("registry.register", "bot@1"),
        ("registry.promote_denied", "bot@1"),
        ("gate.decide", "1"),
        ("registry.promote_denied", "bot@1"),
        ("gate.decide", "2"),
        ("registry.promote", "bot@1"),
        ("registry.promote", "bot@1"),
        ("registry.register", "bot@2"),
        ("gate.decide", "3"),
        ("registry.supersede", "bot@1"),
        ("registry.promote", "bot@2"),
        ("registry.rollback", "bot@2"),
        ("registry.restore", "bot@1"),
    ]
    promo = [e for e in list_events(store, action="registry.promote")][-1]
    assert promo.details["policy_hash"] == "a" * 64 and promo.details["gate_decision_id"] == d2
    assert promo.before_hash and promo.after_hash and promo.before_hash != promo.after_hash
    assert [tr.kind for tr in transitions(store, "bot")] == [
        "promote",
        "promote",
        "supersede",
        "promote",
        "rollback",
        "restore",
    ]
    assert verify_chain(store).ok

    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_events SET actor = 'someone-else' WHERE action = 'registry.rollback'"
            )
        )
    report = verify_chain(store)
    assert [p.kind for p in report.problems] == ["modified"]
    assert "registry.rollback bot@2" in report.problems[0].message


def test_override_needs_admin_and_a_reason(sqlite_store: Store) -> None:
    store = sqlite_store
    admin, _ = create_principal(store, "root", "admin", actor=LOCAL_ADMIN)
    approver, _ = create_principal(store, "ann", "approver", actor=admin)
    register_model(store, "bot", "mock:refuse", actor=admin)
    with pytest.raises(PermissionDeniedError, match="registry:override-gate"):
        promote(store, "bot@1", "production", override=True, reason="x", actor=approver)
    with pytest.raises(ConfigError, match="reason"):
        promote(store, "bot@1", "production", override=True, actor=admin)
    t = promote(store, "bot@1", "production", override=True, reason="hotfix", actor=admin)
    assert t.override and t.gate_decision_id is None
    event = list_events(store, action="registry.promote")[-1]
    assert event.actor == "root" and event.details["override"] is True
    assert event.details["reason"] == "hotfix"
    assert inventory(store)[0].flags == [
        "no post-tuning safety eval",
        "no passing gate decision",
        "promoted by gate override",
        "no guardrails configured",
    ]


def test_gate_can_link_a_version_explicitly(sqlite_store: Store) -> None:
    store = sqlite_store
    v = register_model(store, "bot", "mock:refuse")
    run = _eval_run(store, "a-different-hash")
    _gate(
        store,
        run,
        passed=True,
        model_hash="a-different-hash",
        registry_model="bot",
        registry_version=1,
    )
    assert promote(store, v.ref, "approved").gate_decision_id is not None
    assert len(list_gate_decisions(store, registry_model="bot", registry_version=1)) == 1


def test_stage_rules(sqlite_store: Store) -> None:
    store = sqlite_store
    register_model(store, "bot", "mock:refuse")
    with pytest.raises(ConfigError, match="cannot promote to 'candidate'"):
        promote(store, "bot@1", "candidate")
    with pytest.raises(ConfigError, match="cannot promote to 'gold'"):
        promote(store, "bot@1", "gold")
    promote(store, "bot@1", "retired")
    with pytest.raises(ConfigError, match="it cannot move to retired"):
        promote(store, "bot@1", "retired")
    with pytest.raises(NotFoundError, match="no production version"):
        rollback(store, "bot")


def test_references_and_registry_uris(sqlite_store: Store) -> None:
    from finegate.models.uri import load_backend
    from finegate.store.db import open_store

    assert parse_ref("a@3") == ("a", 3) and parse_ref("a@v3") == ("a", 3)
    assert parse_ref("a") == ("a", "latest") and parse_ref("a@production")[1] == "production"
    with pytest.raises(ConfigError):
        parse_ref("a@gold")
    store = open_store()  # the registry: scheme resolves in the current environment's store
    v1 = register_model(store, "bot", "mock:refuse")
    v2 = register_model(store, "bot", "mock:echo")
    _gate(store, _eval_run(store, v1.model_hash), passed=True)
    promote(store, "bot@1", "production")
    assert resolve_uri(store, "bot@production") == "mock:refuse"
    assert resolve_uri(store, "bot@latest") == resolve_uri(store, "bot") == "mock:echo"
    assert load_backend("registry:bot@production").identity().content_hash == v1.model_hash
    assert load_backend("registry:bot@2").identity().content_hash == v2.model_hash
    with pytest.raises(NotFoundError, match="no approved version"):
        load_backend("registry:bot@approved")
    with pytest.raises(NotFoundError):
        load_backend("registry:nobody@1")


def test_adapter_is_stored_and_resolved(sqlite_store: Store, tmp_path: Path) -> None:
    store = sqlite_store
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 8)
    v = register_model(store, "tuned", "hf:embedded", adapter=adapter, model_hash="h" * 64)
    assert v.adapter_sha256 and v.base_model_uri == "hf:embedded"
    assert v.resolved_uri == f"hf:embedded+adapter:{store.artifacts.path(v.adapter_sha256)}"
    assert store.artifacts.verify(v.adapter_sha256)
    with pytest.raises(ConfigError, match="hf: base"):
        register_model(store, "tuned", "mock:refuse", adapter=adapter)
    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        register_model(store, "tuned", "hf:embedded", adapter=tmp_path, model_hash="h")
    with pytest.raises(ConfigError, match="bad model name"):
        register_model(store, "bad@name", "mock:refuse")
    with pytest.raises(NotFoundError, match="no eval run"):
        register_model(store, "tuned", "mock:refuse", eval_run_ids=["missing"])


def test_lineage_and_inventory(sqlite_store: Store) -> None:
    store = sqlite_store
    base_run = _eval_run(store, "base-hash")
    train = store.start_run("tune", config={"method": "lora", "rank": 8})
    v = register_model(
        store,
        "bot",
        "hf:embedded+adapter:/x",
        model_hash="tuned-hash",
        training_run_id=train,
        dataset_version_ids=["ds-1"],
    )
    assert v.base_model_uri == "hf:embedded"
    post = _eval_run(store, "tuned-hash")
    store.finish_run(post, summary={})
    _gate(store, post, passed=True, baseline_run_id=base_run)
    promote(store, "bot@1", "production")
    lin = lineage(store, "bot@1")
    assert lin.training_run is not None and lin.training_run["config"]["rank"] == 8
    assert lin.dataset_versions == [{"id": "ds-1", "found": False, "name": None, "meta": None}]
    assert [r["id"] for r in lin.eval_runs] == [post]
    assert [d.baseline_run_id for d in lin.gate_decisions] == [base_run]
    assert [t["to"] for t in lin.transitions] == ["production"]
    assert lin.to_dict()["version"]["name"] == "bot"
    register_model(store, "other", "mock:refuse")
    rows = {r.ref: r for r in inventory(store)}
    assert rows["bot@1"].flags == ["no guardrails configured"]
    assert rows["other@1"].flags == []  # only production versions are flagged
    set_guardrails(store, "bot@1", {"input": ["prompt-injection"], "output": ["secrets"]})
    assert {r.ref: r.flags for r in inventory(store)}["bot@1"] == []
    assert [v.ref for v in list_versions(store)] == ["bot@1", "other@1"]
    assert verify_chain(store).ok
