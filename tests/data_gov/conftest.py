"""Fixtures of the data-governance tests: small policies and record builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finegate.data import DataPolicy

DEMO = Path(__file__).resolve().parents[2] / "src/finegate/resources/datasets/support_demo"
DEMO_FILES = [DEMO / "support_tickets.jsonl", DEMO / "vendor_pack.jsonl", DEMO / "faq.csv"]


def make_policy(**over: Any) -> DataPolicy:
    base: dict[str, Any] = {
        "name": "test",
        "sources": [
            {
                "name": "internal",
                "files": ["in*.jsonl", "*.csv", "*.parquet"],
                "owner": "ops",
                "origin": "export",
                "approver": "steward",
                "trust": "trusted",
                "data_class": "internal",
            },
            {
                "name": "vendor",
                "files": ["vendor*.jsonl"],
                "owner": "buyer",
                "origin": "vendor",
                "approver": "lead",
                "trust": "untrusted",
                "data_class": "public",
            },
        ],
        "checks": {"similarity": False},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return DataPolicy.model_validate(base)


def chat(user: str, bot: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": bot}]}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def policy() -> DataPolicy:
    return make_policy()
