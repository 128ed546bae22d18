"""Fine-tuning with safety preserved, training monitors, memorization and privacy tests.

Quick use::

    from finegate.tune import load_tune_config, train
    from finegate.store import open_store

    cfg = load_tune_config(Path("tune.yaml"), overrides=["learning_rate=2e-4"])
    result = train(cfg, open_store())            # records a run of kind "tune"
    print(result.model_uri)                      # hf:embedded+adapter:<artifact dir>

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finegate._lazy import lazy_getattr

if TYPE_CHECKING:
    from finegate.tune._data import Canary, load_anchor_set, make_canaries
    from finegate.tune.config import (
        CAPS,
        CanaryConfig,
        MonitorConfig,
        TuneConfig,
        config_help,
        load_tune_config,
    )
    from finegate.tune.monitors import Alert, LossMonitor
    from finegate.tune.privacy import (
        CanaryExposure,
        MembershipResult,
        PrivacyReport,
        canary_exposure,
        membership_inference,
        regurgitation,
        run_privacy,
    )
    from finegate.tune.trainer import TuneResult, last_checkpoint, train

_LAZY: dict[str, str] = {
    "Alert": "finegate.tune.monitors",
    "CAPS": "finegate.tune.config",
    "Canary": "finegate.tune._data",
    "CanaryConfig": "finegate.tune.config",
    "CanaryExposure": "finegate.tune.privacy",
    "LossMonitor": "finegate.tune.monitors",
    "MembershipResult": "finegate.tune.privacy",
    "MonitorConfig": "finegate.tune.config",
    "PrivacyReport": "finegate.tune.privacy",
    "TuneConfig": "finegate.tune.config",
    "TuneResult": "finegate.tune.trainer",
    "canary_exposure": "finegate.tune.privacy",
    "config_help": "finegate.tune.config",
    "last_checkpoint": "finegate.tune.trainer",
    "load_anchor_set": "finegate.tune._data",
    "load_tune_config": "finegate.tune.config",
    "make_canaries": "finegate.tune._data",
    "membership_inference": "finegate.tune.privacy",
    "regurgitation": "finegate.tune.privacy",
    "run_privacy": "finegate.tune.privacy",
    "train": "finegate.tune.trainer",
}

__all__ = [
    "Alert",
    "CAPS",
    "Canary",
    "CanaryConfig",
    "CanaryExposure",
    "LossMonitor",
    "MembershipResult",
    "MonitorConfig",
    "PrivacyReport",
    "TuneConfig",
    "TuneResult",
    "canary_exposure",
    "config_help",
    "last_checkpoint",
    "load_anchor_set",
    "load_tune_config",
    "make_canaries",
    "membership_inference",
    "regurgitation",
    "run_privacy",
    "train",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
