from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, select
from sqlalchemy.engine import Engine

from finegate.detect import Pseudonymizer, Scanner, Vault, redact, restore
from finegate.errors import ConfigError, StoreError
from finegate.store.schema import Base, VaultEntry
from finegate.store.vault import SqlVault, generate_key

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _sqlite(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
    Base.metadata.create_all(engine)
    return engine


def _postgres() -> Engine:
    pytest.importorskip("psycopg")
    engine = create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    Base.metadata.create_all(engine, tables=[VaultEntry.__table__])  # type: ignore[list-item]
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    eng = _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
    yield eng
    eng.dispose()


def test_roundtrip_encrypted_expiry_and_cleanup(engine: Engine) -> None:
    ns = f"test-{uuid.uuid4().hex}"
    now = [datetime.now(UTC)]
    key = generate_key()
    vault = SqlVault(engine, key, clock=lambda: now[0])
    assert isinstance(vault, Vault)
    try:
        p = Pseudonymizer(b"s" * 32, vault=vault, namespace=ns, ttl=timedelta(hours=1))
        text = "Mail jane.roe@acme-mail.com about card 4539 1488 0343 6467"
        out = redact(text, Scanner(["pii"]).scan(text), mode="pseudonymize", pseudonymizer=p)
        assert restore(out.text, vault, namespace=ns) == text
        with engine.connect() as conn:
            blobs = (
                conn.execute(select(VaultEntry.ciphertext).where(VaultEntry.namespace == ns))
                .scalars()
                .all()
            )
        assert len(blobs) == 2 and all(b"acme-mail" not in bytes(b) for b in blobs)
        vault.put(ns, "KEEP_1", "forever")
        now[0] += timedelta(hours=2)
        assert restore(out.text, vault, namespace=ns) == out.text  # expired
        assert vault.purge_expired() >= 2
        assert vault.get(ns, "KEEP_1") == "forever"
        # Wrong key: a clear error, not garbage.
        with pytest.raises(StoreError):
            SqlVault(engine, generate_key()).get(ns, "KEEP_1")
        # Rotation: new key first, old key still decrypts, rows re-encrypted under new key.
        new = generate_key()
        rotated = SqlVault(engine, [new, key])
        assert rotated.rotate() >= 1
        assert SqlVault(engine, new).get(ns, "KEEP_1") == "forever"
        assert vault.delete_namespace(ns) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(delete(VaultEntry).where(VaultEntry.namespace == ns))


def test_key_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    monkeypatch.delenv("FINEGATE_VAULT_KEY", raising=False)
    with pytest.raises(ConfigError):
        SqlVault(engine)
    with pytest.raises(ConfigError):
        SqlVault(engine, "not-a-key")
    monkeypatch.setenv("FINEGATE_VAULT_KEY", generate_key())
    vault = SqlVault(engine)
    vault.put("ns", "A_1", "v")
    assert vault.get("ns", "A_1") == "v" and vault.get("ns", "missing") is None
