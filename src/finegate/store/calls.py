"""Recording model calls and answering repeats from them (the call cache)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from finegate.store.db import Store
from finegate.store.schema import ModelCall


def find_cached(
    store: Store, model_hash: str, request_hashes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Return ``{request_hash: response_dict}`` for successful earlier calls to this model."""
    if not request_hashes:
        return {}
    found: dict[str, dict[str, Any]] = {}
    unique = sorted(set(request_hashes))
    with store.session() as s:
        # Chunked IN lists keep PostgreSQL and SQLite parameter limits out of the way.
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            stmt = (
                select(ModelCall.request_hash, ModelCall.response)
                .where(
                    ModelCall.model_hash == model_hash,
                    ModelCall.request_hash.in_(chunk),
                    ModelCall.error.is_(None),
                )
                .order_by(ModelCall.id)
            )
            for request_hash, response in s.execute(stmt):
                found.setdefault(request_hash, response)
    return found


def record_calls(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Insert call rows (dicts with the :class:`ModelCall` columns) in one transaction."""
    if not rows:
        return
    with store.session() as s:
        s.add_all(ModelCall(**row) for row in rows)


def count_calls(store: Store, *, run_id: str | None = None, model_hash: str | None = None) -> int:
    """Count recorded calls, optionally for one run or one model."""
    with store.session() as s:
        stmt = select(func.count(ModelCall.id))
        if run_id is not None:
            stmt = stmt.where(ModelCall.run_id == run_id)
        if model_hash is not None:
            stmt = stmt.where(ModelCall.model_hash == model_hash)
        return int(s.scalar(stmt) or 0)
