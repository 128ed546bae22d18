"""The persistent pseudonym vault: ``(namespace, token) -> value``, encrypted at rest.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a configured key; several
keys may be given for rotation (the first encrypts, all decrypt; `SqlVault.rotate`
re-encrypts every row under the first). Entries can expire; expired entries are never
returned and `SqlVault.purge_expired` deletes them. Implements `finegate.detect.Vault`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from finegate.errors import ConfigError, StoreError
from finegate.store.schema import VaultEntry

KEY_ENV = "FINEGATE_VAULT_KEY"


def generate_key() -> str:
    """Return a new random vault key (urlsafe base64, 32 bytes) to put in ``FINEGATE_VAULT_KEY``."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


class SqlVault:
    """Encrypted `Vault` in the ``vault_entries`` table of the store.

    Args:
        bind: A SQLAlchemy `Engine` or a `sessionmaker`.
        key: Fernet key(s); default from ``$FINEGATE_VAULT_KEY`` (comma-separated for
            rotation, newest first).
        default_ttl: Expiry applied when `put` gets no ``ttl``; None keeps entries forever.
        clock: Returns "now" (UTC, aware); injectable for tests.

    Raises:
        ConfigError: when no key is configured or a key is malformed.
    """

    def __init__(
        self,
        bind: Engine | sessionmaker[Session],
        key: str | bytes | Sequence[str | bytes] | None = None,
        *,
        default_ttl: timedelta | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if key is None:
            env = os.environ.get(KEY_ENV, "")
            keys: list[str | bytes] = [k.strip() for k in env.split(",") if k.strip()]
        elif isinstance(key, (str, bytes)):
            keys = [key]
        else:
            keys = list(key)
        if not keys:
            raise ConfigError(
                "no vault key configured",
                hint=f"set {KEY_ENV} (create one with finegate.store.vault.generate_key())",
            )
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"invalid vault key: {exc}", hint="a key is 32 url-safe base64-encoded bytes"
            ) from None
        self._sessions: sessionmaker[Session] = (
            bind if isinstance(bind, sessionmaker) else sessionmaker(bind, expire_on_commit=False)
        )
        self.default_ttl = default_ttl
        self._clock = clock

    def put(self, namespace: str, token: str, value: str, *, ttl: timedelta | None = None) -> None:
        """Store ``value`` encrypted under ``(namespace, token)``, replacing an older entry."""
        ttl = ttl if ttl is not None else self.default_ttl
        now = self._clock()
        data = self._fernet.encrypt(value.encode("utf-8", "surrogatepass"))
        with self._sessions.begin() as session:
            session.merge(
                VaultEntry(
                    namespace=namespace,
                    token=token,
                    ciphertext=data,
                    created_at=now,
                    expires_at=now + ttl if ttl else None,
                )
            )

    def get(self, namespace: str, token: str) -> str | None:
        """Return the decrypted value, or None when unknown or expired.

        Raises:
            StoreError: when the entry exists but none of the keys can decrypt it.
        """
        from cryptography.fernet import InvalidToken

        with self._sessions() as session:
            row = session.get(VaultEntry, (namespace, token))
            if row is None:
                return None
            expires = _aware(row.expires_at)
            if expires is not None and expires <= self._clock():
                return None
            try:
                return self._fernet.decrypt(row.ciphertext).decode("utf-8", "surrogatepass")
            except InvalidToken:
                raise StoreError(
                    "cannot decrypt vault entry: wrong or missing key",
                    hint=f"the key that wrote it must be in {KEY_ENV}",
                ) from None

    def purge_expired(self) -> int:
        """Delete expired entries; return how many."""
        now = self._clock()
        with self._sessions.begin() as session:
            result: Any = session.execute(
                delete(VaultEntry).where(
                    VaultEntry.expires_at.is_not(None), VaultEntry.expires_at <= now
                )
            )
            return int(result.rowcount or 0)

    def delete_namespace(self, namespace: str) -> int:
        """Delete every entry of ``namespace`` (e.g. a tenant leaving); return how many."""
        with self._sessions.begin() as session:
            result: Any = session.execute(
                delete(VaultEntry).where(VaultEntry.namespace == namespace)
            )
            return int(result.rowcount or 0)

    def rotate(self) -> int:
        """Re-encrypt every entry under the first key; return how many rows were rewritten."""
        count = 0
        with self._sessions.begin() as session:
            for row in session.scalars(select(VaultEntry)):
                row.ciphertext = self._fernet.rotate(row.ciphertext)
                count += 1
        return count
