"""The runtime guard gateway: an OpenAI-compatible service in front of any model backend.

Quick use::

    from finegate.gateway import create_app, create_key, load_config

    config = load_config("gateway.yaml")
    info, key = create_key(store, "default", name="support-app")
    app = create_app(config, store)          # FastAPI; or `finegate gateway --config ...`

Every guard uses `finegate.detect` (one engine); keys, kill switch, reviews, the request log
and incidents live in the store. FastAPI is imported only when an app is built.
"""

from finegate.gateway.config import (
    GatewayConfig,
    GuardRule,
    RateLimits,
    ReviewRule,
    TierConfig,
    ToolPolicy,
    UpstreamConfig,
    UsageConfig,
    load_config,
)
from finegate.gateway.keys import KeyInfo, create_key, list_keys, revoke_key, rotate_key
from finegate.gateway.records import (
    ReviewInfo,
    decide_review,
    disabled_models,
    list_incidents,
    list_request_log,
    list_reviews,
    purge_request_log,
    set_model_enabled,
)

__all__ = [
    "GatewayConfig",
    "GuardRule",
    "KeyInfo",
    "RateLimits",
    "ReviewInfo",
    "ReviewRule",
    "TierConfig",
    "ToolPolicy",
    "UpstreamConfig",
    "UsageConfig",
    "create_app",
    "create_key",
    "decide_review",
    "disabled_models",
    "list_incidents",
    "list_keys",
    "list_request_log",
    "list_reviews",
    "load_config",
    "purge_request_log",
    "revoke_key",
    "rotate_key",
    "serve",
    "set_model_enabled",
]


def __getattr__(name: str) -> object:
    if name in ("create_app", "serve"):
        from finegate.gateway import app

        return getattr(app, name)
    raise AttributeError(f"module 'finegate.gateway' has no attribute {name!r}")
