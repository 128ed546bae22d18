"""The public names other stages rely on are pinned."""

from __future__ import annotations

import finegate.gate
import finegate.governance
import finegate.registry


def test_governance_api_is_pinned() -> None:
    assert {
        "Action",
        "Principal",
        "ROLES",
        "append_event",
        "audit_event",
        "authorize",
        "current_principal",
        "require",
        "resolve_actor",
        "verify_chain",
        "write_transaction",
        "build_document",
        "render",
    } <= set(finegate.governance.__all__)
    for name in finegate.governance.__all__:
        assert hasattr(finegate.governance, name)


def test_registry_and_gate_api_is_pinned() -> None:
    assert {
        "register_model",
        "promote",
        "rollback",
        "lineage",
        "inventory",
        "resolve_uri",
        "link_evidence",
        "set_guardrails",
    } <= set(finegate.registry.__all__)
    assert "record_gate_decision" in finegate.gate.__all__
    for mod in (finegate.registry, finegate.gate):
        for name in mod.__all__:
            assert hasattr(mod, name)
