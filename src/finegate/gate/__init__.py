"""Release gates: policies, rules, the gate decision the registry checks before promotion.

::

    from finegate.gate import gate_run, load_policy

    result = gate_run(store, run_id, policy=load_policy("default"), baseline_run_id=base_id)
    for rule in result.rules:
        print(rule.id, rule.value, rule.limit, rule.verdict, rule.reason)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finegate._lazy import lazy_getattr
from finegate.gate.decisions import (
    GateDecisionRecord,
    get_gate_decision,
    list_gate_decisions,
    record_gate_decision,
)

if TYPE_CHECKING:
    from finegate.gate.gate import GateResult, gate_run
    from finegate.gate.policy import (
        BaselineLimits,
        FamilyLimits,
        KindDefaults,
        OverallLimits,
        Policy,
        Requirements,
        load_policy,
        policy_from_data,
    )
    from finegate.gate.rules import PlannedRule, RuleResult, evaluate_rules, plan_rules
    from finegate.gate.selection_policy import SelectionPolicy, load_selection_policy

_LAZY: dict[str, str] = {
    "BaselineLimits": "finegate.gate.policy",
    "FamilyLimits": "finegate.gate.policy",
    "GateResult": "finegate.gate.gate",
    "KindDefaults": "finegate.gate.policy",
    "OverallLimits": "finegate.gate.policy",
    "PlannedRule": "finegate.gate.rules",
    "Policy": "finegate.gate.policy",
    "Requirements": "finegate.gate.policy",
    "RuleResult": "finegate.gate.rules",
    "SelectionPolicy": "finegate.gate.selection_policy",
    "evaluate_rules": "finegate.gate.rules",
    "gate_run": "finegate.gate.gate",
    "load_policy": "finegate.gate.policy",
    "load_selection_policy": "finegate.gate.selection_policy",
    "plan_rules": "finegate.gate.rules",
    "policy_from_data": "finegate.gate.policy",
}

__all__ = [
    "BaselineLimits",
    "FamilyLimits",
    "GateDecisionRecord",
    "GateResult",
    "KindDefaults",
    "OverallLimits",
    "PlannedRule",
    "Policy",
    "Requirements",
    "RuleResult",
    "SelectionPolicy",
    "evaluate_rules",
    "gate_run",
    "get_gate_decision",
    "list_gate_decisions",
    "load_policy",
    "load_selection_policy",
    "plan_rules",
    "policy_from_data",
    "record_gate_decision",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
