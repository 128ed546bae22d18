"""The model registry: versions, stages, gated promotion, rollback, lineage and inventory.

Quick use::

    from finegate.registry import register_model, promote, rollback

    v = register_model(store, "support-bot", "hf:embedded", adapter=Path("out/adapter"))
    promote(store, v.ref, "production")      # needs a passing gate decision on v
    rollback(store, "support-bot")           # back to the previous production version

``registry:NAME@VERSION`` and ``registry:NAME@production`` work as model URIs everywhere.
"""

from finegate.registry._lineage import InventoryRow, Lineage, inventory, lineage
from finegate.registry._private import (
    GATED_STAGES,
    STAGES,
    ModelVersionInfo,
    get_version,
    link_evidence,
    list_versions,
    parse_ref,
    register_model,
    resolve_uri,
    set_guardrails,
    transitions,
)
from finegate.registry._stages import Transition, promote, rollback

__all__ = [
    "GATED_STAGES",
    "STAGES",
    "InventoryRow",
    "Lineage",
    "ModelVersionInfo",
    "Transition",
    "get_version",
    "inventory",
    "lineage",
    "link_evidence",
    "list_versions",
    "parse_ref",
    "promote",
    "register_model",
    "resolve_uri",
    "rollback",
    "set_guardrails",
    "transitions",
]
