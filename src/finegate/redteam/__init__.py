"""Attack generation: mutators, attacker loops and red-team campaigns that write ordinary runs.

::

    from finegate.evals import load_suite
    from finegate.models import load_backend
    from finegate.redteam import RedteamConfig, export_attacks, run_redteam_sync

    result = run_redteam_sync(load_backend("hf:embedded"), load_suite("core"),
                              config=RedteamConfig(budget=200))
    print(len(result.new_breaks), "attacks broke seeds the model had resisted")
    found = export_attacks(store, result.run.run_id)   # new suite cases + refusal examples

Strategies are ``redteam-strategy`` plugins (see :mod:`finegate.redteam.mutators`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finegate._lazy import lazy_getattr

if TYPE_CHECKING:
    from finegate.redteam.attacker import (
        CRESCENDO_ATTACKER_PROMPT,
        PAIR_ATTACKER_PROMPT,
        Attack,
        AttackLoop,
        crescendo_ladder,
    )
    from finegate.redteam.campaign import (
        AttackRecord,
        RedteamConfig,
        RedteamResult,
        default_strategies,
        run_redteam,
        run_redteam_sync,
        select_seeds,
    )
    from finegate.redteam.export import (
        ExportedAttacks,
        export_attacks,
        load_redteam_suite,
        refusal_for,
    )
    from finegate.redteam.mutators import Strategy, get_strategy, strategy_names

_LAZY: dict[str, str] = {
    "CRESCENDO_ATTACKER_PROMPT": "finegate.redteam.attacker",
    "PAIR_ATTACKER_PROMPT": "finegate.redteam.attacker",
    "Attack": "finegate.redteam.attacker",
    "AttackLoop": "finegate.redteam.attacker",
    "crescendo_ladder": "finegate.redteam.attacker",
    "AttackRecord": "finegate.redteam.campaign",
    "RedteamConfig": "finegate.redteam.campaign",
    "RedteamResult": "finegate.redteam.campaign",
    "default_strategies": "finegate.redteam.campaign",
    "run_redteam": "finegate.redteam.campaign",
    "run_redteam_sync": "finegate.redteam.campaign",
    "select_seeds": "finegate.redteam.campaign",
    "ExportedAttacks": "finegate.redteam.export",
    "export_attacks": "finegate.redteam.export",
    "load_redteam_suite": "finegate.redteam.export",
    "refusal_for": "finegate.redteam.export",
    "Strategy": "finegate.redteam.mutators",
    "get_strategy": "finegate.redteam.mutators",
    "strategy_names": "finegate.redteam.mutators",
}

__all__ = [
    "Attack",
    "AttackLoop",
    "AttackRecord",
    "CRESCENDO_ATTACKER_PROMPT",
    "ExportedAttacks",
    "PAIR_ATTACKER_PROMPT",
    "RedteamConfig",
    "RedteamResult",
    "Strategy",
    "crescendo_ladder",
    "default_strategies",
    "export_attacks",
    "get_strategy",
    "load_redteam_suite",
    "refusal_for",
    "run_redteam",
    "run_redteam_sync",
    "select_seeds",
    "strategy_names",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
