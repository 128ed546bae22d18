"""Gateway API keys: created, rotated and revoked by role-checked principals, stored hashed.

A key looks like ``fgk_<id>_<secret>``; the store keeps only its SHA-256 (the secret has 192
bits of entropy, so a plain hash cannot be brute-forced) and the tier. Every change is an
audit event committed together with the row.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from finegate.errors import ConfigError, NotFoundError
from finegate.store.schema import GatewayKey

if TYPE_CHECKING:
    from finegate.governance import Principal
    from finegate.store.db import Store

__all__ = [
    "KeyCache",
    "KeyInfo",
    "create_key",
    "hash_key",
    "list_keys",
    "lookup_key",
    "revoke_key",
    "rotate_key",
]

KEY_PREFIX = "fgk_"


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed (never holds the key itself)."""

    id: str
    name: str
    tier: str
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    rotated_from: str | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "name": self.name,
            "tier": self.tier,
            "prefix": self.prefix,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "rotated_from": self.rotated_from,
        }


def hash_key(key: str) -> str:
    """Return the stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _info(row: GatewayKey) -> KeyInfo:
    created = _utc(row.created_at)
    assert created is not None
    return KeyInfo(
        row.id,
        row.name,
        row.tier,
        row.prefix,
        row.created_by,
        created,
        _utc(row.revoked_at),
        row.rotated_from,
    )


def _actor(store: Store, actor: Principal | None) -> Principal:
    from finegate.governance import Action, authorize, resolve_actor

    who = resolve_actor(store, actor)
    authorize(store, who, Action.MANAGE_KEYS, object_type="gateway_key")
    return who


def _new_row(tier: str, name: str, by: str, rotated_from: str | None) -> tuple[GatewayKey, str]:
    kid = uuid.uuid4().hex[:16]
    key = f"{KEY_PREFIX}{kid}_{secrets.token_urlsafe(24)}"
    row = GatewayKey(
        id=kid,
        name=name,
        key_hash=hash_key(key),
        prefix=key[:12],
        tier=tier,
        created_by=by,
        created_at=datetime.now(UTC),
        rotated_from=rotated_from,
    )
    return row, key


def create_key(
    store: Store,
    tier: str,
    *,
    name: str = "",
    actor: Principal | None = None,
    tiers: list[str] | None = None,
) -> tuple[KeyInfo, str]:
    """Create a key of ``tier``; return its info and the key (shown once, never stored).

    Args:
        store: The store.
        tier: The key's tier.
        name: A label (who or what uses the key).
        actor: Who acts (default: the current principal); needs ``auth:manage``.
        tiers: Known tier names; an unknown ``tier`` is refused when given.

    Raises:
        PermissionDeniedError: when the actor may not manage keys.
        ConfigError: for an unknown tier.
    """
    from finegate.governance import append_event, write_transaction

    if not tier or (tiers is not None and tier not in tiers):
        raise ConfigError(f"unknown tier {tier!r}", hint=f"tiers: {', '.join(tiers or [])}")
    who = _actor(store, actor)
    row, key = _new_row(tier, name, who.name, None)
    with write_transaction(store) as s:
        s.add(row)
        s.flush()
        append_event(
            s, who, "gateway.key.create", "gateway_key", row.id,
            after={"tier": tier, "name": name, "key_hash": row.key_hash},
        )  # fmt: skip
        info = _info(row)
    return info, key


def list_keys(store: Store, *, include_revoked: bool = False) -> list[KeyInfo]:
    """Return keys, oldest first."""
    stmt = select(GatewayKey).order_by(GatewayKey.created_at)
    if not include_revoked:
        stmt = stmt.where(GatewayKey.revoked_at.is_(None))
    with store.session() as s:
        return [_info(r) for r in s.scalars(stmt)]


def _active(s: object, key_id: str) -> GatewayKey:
    from sqlalchemy.orm import Session

    assert isinstance(s, Session)
    row = s.get(GatewayKey, key_id)
    if row is None or row.revoked_at is not None:
        raise NotFoundError(f"no active gateway key {key_id!r}", hint="see finegate keys list")
    return row


def revoke_key(store: Store, key_id: str, *, actor: Principal | None = None) -> KeyInfo:
    """Revoke a key (gateways stop accepting it within their key-cache TTL)."""
    from finegate.governance import append_event, write_transaction

    who = _actor(store, actor)
    with write_transaction(store) as s:
        row = _active(s, key_id)
        row.revoked_at = datetime.now(UTC)
        append_event(
            s, who, "gateway.key.revoke", "gateway_key", key_id,
            before={"revoked": False}, after={"revoked": True},
        )  # fmt: skip
        return _info(row)


def rotate_key(store: Store, key_id: str, *, actor: Principal | None = None) -> tuple[KeyInfo, str]:
    """Replace a key by a new one of the same tier and name; the old one is revoked."""
    from finegate.governance import append_event, write_transaction

    who = _actor(store, actor)
    with write_transaction(store) as s:
        old = _active(s, key_id)
        old.revoked_at = datetime.now(UTC)
        row, key = _new_row(old.tier, old.name, who.name, old.id)
        s.add(row)
        s.flush()
        append_event(
            s, who, "gateway.key.rotate", "gateway_key", key_id,
            before={"key_hash": old.key_hash}, after={"new_id": row.id, "key_hash": row.key_hash},
        )  # fmt: skip
        return _info(row), key


def lookup_key(store: Store, key: str) -> KeyInfo | None:
    """Return the active key matching ``key``, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    with store.session() as s:
        row = s.scalar(select(GatewayKey).where(GatewayKey.key_hash == hash_key(key)))
        if row is None or row.revoked_at is not None:
            return None
        return _info(row)


class KeyCache:
    """hashed key -> `KeyInfo` (or None) for ``ttl_s`` seconds; misses query the store in a thread.

    Args:
        store: The store holding the keys.
        ttl_s: Cache lifetime; a revoked key stops working within this time.
        max_entries: Bound on cached entries (unknown keys included, so guessing cannot grow it).
    """

    def __init__(self, store: Store, ttl_s: float = 5.0, max_entries: int = 10000) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}

    async def get(self, key: str) -> KeyInfo | None:
        """Return the active key's info, or None for unknown/revoked keys."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        h = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = await asyncio.to_thread(lookup_key, self.store, key)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[h] = (now + self.ttl_s, info)
        return info

    def invalidate(self) -> None:
        """Forget every cached lookup."""
        self._cache.clear()
