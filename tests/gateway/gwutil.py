"""Helpers shared by the gateway tests (put on sys.path by conftest.py)."""

from __future__ import annotations

from typing import Any

from finegate.models.mock import MockBackend, MockRule, MockScript

CANARY = "NW-CANARY-7F3K"
EMAIL = "jane.roe@acme-mail.com"
AWS_KEY = "AKIA2E0A8F3B244C9986"


def base_config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "upstreams": [{"name": "bot", "uri": "mock:echo"}],
        "canaries": [CANARY],
        "tiers": {
            "default": {
                "tools": {
                    "allowed": {
                        "get_weather": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                            "additionalProperties": False,
                        },
                        "fetch": {},
                    },
                    "allowed_hosts": ["api.weather.example"],
                }
            },
            "trusted": {"pii_restore": True},
            "limited": {"limits": {"requests_per_minute": 3}},
            "reviewed": {
                "review": [{"name": "high-risk", "kinds": ["malware.*"], "min_severity": "high"}],
                "tools": {"allowed": {"wire_money": {}}},
            },
            "other-models": {"models": ["other-*"]},
        },
        "log_flush_s": 0.05,
        "kill_switch_poll_s": 0.05,
    }
    cfg.update(overrides)
    return cfg


def script(*rules: dict[str, Any], default: str = "{last_user}") -> MockBackend:
    return MockBackend(
        MockScript(
            "test",
            rules=tuple(MockRule.from_dict(r) for r in rules),
            default=MockRule(reply=default),
        )
    )


def chat(text: str, model: str = "bot", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
