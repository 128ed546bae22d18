"""Principals, API tokens, roles and permissions.

A principal (a person or a service) has one role; a role grants a fixed set of actions. A
token looks like ``fgt_<id>_<secret>``: only ``HMAC-SHA256(salt, secret)`` with a random
per-token salt is stored, so the database never holds a usable token.

Single-user default: while no principal has ever been created, the CLI and library act as the
implicit ``local`` admin, which needs no set-up. Creating the first principal (which must be
an admin) turns enforcement on for good: from then on every caller must present a token
(``FINEGATE_TOKEN`` or the profile written by ``finegate auth login``), even after every
principal is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from finegate.errors import ConfigError, NotFoundError, PermissionDeniedError
from finegate.governance._audit import append_event, audit_event, write_transaction
from finegate.store.schema import ApiToken
from finegate.store.schema import Principal as PrincipalRow

if TYPE_CHECKING:
    from finegate.store.db import Store

TOKEN_ENV = "FINEGATE_TOKEN"
PROFILE_NAME = "profile.json"
_TOKEN_RE = re.compile(r"^fgt_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Action(StrEnum):
    """Everything a role may be allowed to do."""

    READ_RUNS = "runs:read"
    READ_AUDIT = "audit:read"
    RUN_EVALS = "evals:run"
    RECORD_GATE = "gate:record"
    SCAN_DATA = "data:scan"
    READ_RAW_DATA = "data:read-raw"
    TUNE = "model:tune"
    REGISTER = "registry:register"
    PROMOTE = "registry:promote"
    OVERRIDE_GATE = "registry:override-gate"
    ROLLBACK = "registry:rollback"
    CONFIGURE_GUARDRAILS = "guardrails:configure"
    MANAGE_KEYS = "auth:manage"
    READ_REQUEST_LOGS = "gateway:read-logs"


_READ = frozenset({Action.READ_RUNS, Action.READ_AUDIT})

ROLES: dict[str, frozenset[Action]] = {
    "viewer": _READ,
    "evaluator": _READ | {Action.RUN_EVALS, Action.RECORD_GATE},
    "data-steward": _READ | {Action.SCAN_DATA, Action.READ_RAW_DATA},
    "trainer": _READ | {Action.SCAN_DATA, Action.TUNE, Action.REGISTER, Action.RUN_EVALS},
    "approver": _READ | {Action.PROMOTE},
    "operator": _READ | {Action.ROLLBACK, Action.CONFIGURE_GUARDRAILS, Action.READ_REQUEST_LOGS},
    "admin": frozenset(Action),
}
"""Role name to the actions it grants. Only ``admin`` may override a failed or missing gate."""


@dataclass(frozen=True)
class Principal:
    """Who is acting.

    Attributes:
        id: The principal's id (``local`` for the implicit single-user admin).
        name: Its unique name, recorded as the actor in the audit log.
        role: One of :data:`ROLES`.
        kind: ``person`` or ``service``.
        implicit: True only for the single-user default admin.
    """

    id: str
    name: str
    role: str
    kind: str = "person"
    implicit: bool = False

    def can(self, action: Action | str) -> bool:
        """Whether this principal's role grants ``action``."""
        return Action(action) in ROLES.get(self.role, frozenset())


LOCAL_ADMIN = Principal(id="local", name="local", role="admin", implicit=True)
"""The single-user default while no principal exists."""


def require(principal: Principal, action: Action | str) -> None:
    """Raise unless ``principal`` may do ``action``.

    Raises:
        PermissionDeniedError: naming the principal, its role and the missing action.
    """
    if not principal.can(action):
        allowed = sorted(r for r, acts in ROLES.items() if Action(action) in acts)
        raise PermissionDeniedError(
            f"{principal.name} (role {principal.role}) may not {Action(action).value}",
            hint=f"roles allowed: {', '.join(allowed)}",
        )


def authorize(
    store: Store,
    principal: Principal,
    action: Action | str,
    *,
    object_type: str = "",
    object_id: str = "",
) -> None:
    """Like :func:`require`, and record a denial in the audit log before raising."""
    try:
        require(principal, action)
    except PermissionDeniedError as exc:
        audit_event(
            store,
            principal,
            "access.denied",
            object_type or "action",
            object_id or Action(action).value,
            details={"action": Action(action).value, "role": principal.role, "reason": exc.message},
        )
        raise


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
    return role


def _hash_secret(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _new_token(principal_id: str) -> tuple[ApiToken, str]:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    row = ApiToken(
        id=token_id, principal_id=principal_id, salt=salt, secret_hash=_hash_secret(salt, secret)
    )
    return row, f"fgt_{token_id}_{secret}"


def principals_exist(store: Store) -> bool:
    """Whether any principal was ever created (enforcement is on)."""
    with store.session() as s:
        return bool(s.scalar(select(func.count()).select_from(PrincipalRow)))


def _to_principal(row: PrincipalRow) -> Principal:
    return Principal(id=row.id, name=row.name, role=row.role, kind=row.kind)


def create_principal(
    store: Store, name: str, role: str, *, kind: str = "person", actor: Principal | None = None
) -> tuple[Principal, str]:
    """Create a principal with one token; return it and the token (shown once, never stored).

    The first principal must be an admin: creating it ends the single-user default.

    Raises:
        PermissionDeniedError: when ``actor`` may not manage keys.
        ConfigError: for a bad name, role or kind, a taken name, or a first non-admin.
    """
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.MANAGE_KEYS, object_type="principal", object_id=name)
    _check_role(role)
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"bad principal name {name!r}",
            hint="letters, digits and . _ @ - (up to 128 characters)",
        )
    if kind not in ("person", "service"):
        raise ConfigError(f"unknown principal kind {kind!r}", hint="person or service")
    with write_transaction(store) as s:
        first = not s.scalar(select(func.count()).select_from(PrincipalRow))
        if first and role != "admin":
            raise ConfigError(
                "the first principal must be an admin",
                hint="creating it turns access control on; without an admin "
                "nobody could manage keys afterwards",
            )
        if s.scalar(select(PrincipalRow).where(PrincipalRow.name == name)) is not None:
            raise ConfigError(f"principal {name!r} already exists")
        row = PrincipalRow(
            id=uuid.uuid4().hex[:16], name=name, kind=kind, role=role, created_by=actor.name
        )
        s.add(row)
        s.flush()
        token_row, token = _new_token(row.id)
        s.add(token_row)
        append_event(
            s,
            actor,
            "auth.create_principal",
            "principal",
            name,
            after={"name": name, "role": role, "kind": kind},
            details={
                "role": role,
                "kind": kind,
                "token_id": token_row.id,
                "enforcement_on": True if first else None,
            },
        )
    return _to_principal(row), token


def create_token(store: Store, name: str, *, actor: Principal | None = None) -> str:
    """Issue another token for an existing principal; return it (shown once)."""
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.MANAGE_KEYS, object_type="principal", object_id=name)
    with write_transaction(store) as s:
        row = _active_row(s, name)
        token_row, token = _new_token(row.id)
        s.add(token_row)
        append_event(
            s, actor, "auth.create_token", "principal", name, details={"token_id": token_row.id}
        )
    return token


def _active_row(session: Session, name: str) -> PrincipalRow:
    row = session.scalar(select(PrincipalRow).where(PrincipalRow.name == name))
    if row is None or row.revoked_at is not None:
        raise NotFoundError(f"no active principal {name!r}", hint="see finegate auth list")
    return row


def revoke_principal(store: Store, name: str, *, actor: Principal | None = None) -> None:
    """Revoke a principal and all its tokens (the row stays, for the audit trail)."""
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.MANAGE_KEYS, object_type="principal", object_id=name)
    with write_transaction(store) as s:
        row = _active_row(s, name)
        now = datetime.now(UTC)
        row.revoked_at = now
        for tok in s.scalars(select(ApiToken).where(ApiToken.principal_id == row.id)):
            if tok.revoked_at is None:
                tok.revoked_at = now
        append_event(
            s,
            actor,
            "auth.revoke_principal",
            "principal",
            name,
            before={"name": name, "role": row.role, "revoked": False},
            after={"name": name, "role": row.role, "revoked": True},
        )


@dataclass(frozen=True)
class PrincipalInfo:
    """A principal as listed: never any token material beyond token ids."""

    name: str
    role: str
    kind: str
    created_at: datetime
    created_by: str
    revoked: bool
    active_tokens: list[str]


def list_principals(store: Store) -> list[PrincipalInfo]:
    """Return every principal (revoked ones included), oldest first."""
    with store.session() as s:
        rows = list(s.scalars(select(PrincipalRow).order_by(PrincipalRow.created_at)))
        tokens = list(s.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None))))
    by_owner: dict[str, list[str]] = {}
    for t in tokens:
        by_owner.setdefault(t.principal_id, []).append(t.id)
    return [
        PrincipalInfo(
            name=r.name,
            role=r.role,
            kind=r.kind,
            created_at=r.created_at,
            created_by=r.created_by,
            revoked=r.revoked_at is not None,
            active_tokens=sorted(by_owner.get(r.id, [])),
        )
        for r in rows
    ]


def authenticate(store: Store, token: str) -> Principal:
    """Return the principal a token belongs to.

    Raises:
        PermissionDeniedError: for a malformed, unknown, revoked or wrong token (one message
            for all, so the answer does not tell which part was right).
    """
    bad = PermissionDeniedError(
        "invalid or revoked API token", hint=f"check {TOKEN_ENV} or run finegate auth login"
    )
    match = _TOKEN_RE.match(token.strip())
    if match is None:
        raise bad
    token_id, secret = match.groups()
    with store.session() as s:
        tok = s.get(ApiToken, token_id)
        if tok is None:
            _hash_secret("00" * 16, secret)  # spend the same time as a real check
            raise bad
        ok = hmac.compare_digest(tok.secret_hash, _hash_secret(tok.salt, secret))
        row = s.get(PrincipalRow, tok.principal_id)
        if not ok or tok.revoked_at is not None or row is None or row.revoked_at is not None:
            raise bad
        return _to_principal(row)


def profile_path() -> Path:
    """Return where ``finegate auth login`` keeps the token: ``$FINEGATE_HOME/profile.json``."""
    from finegate.config import finegate_home

    return finegate_home() / PROFILE_NAME


def save_profile(token: str) -> Path:
    """Write the token to the local profile, readable by the owner only."""
    path = profile_path()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"token": token}, fh)
    os.chmod(path, 0o600)
    return path


def _profile_token() -> str | None:
    path = profile_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(
            f"cannot read the profile {path}", hint="run finegate auth login again"
        ) from None
    token = data.get("token") if isinstance(data, dict) else None
    return str(token) if token else None


def current_principal(store: Store) -> Principal:
    """Return who is acting: ``FINEGATE_TOKEN``, else the profile, else the single-user default.

    Raises:
        PermissionDeniedError: for a bad token, or when principals exist and no token is given.
    """
    token = os.environ.get(TOKEN_ENV) or _profile_token()
    if token:
        return authenticate(store, token)
    if not principals_exist(store):
        return LOCAL_ADMIN
    raise PermissionDeniedError(
        "authentication required: access control is on",
        hint=f"set {TOKEN_ENV} or run finegate auth login",
    )


def resolve_actor(store: Store, actor: Principal | None) -> Principal:
    """Return ``actor``, or :func:`current_principal` when it is None.

    An explicit implicit-admin actor is refused once enforcement is on, so library callers
    cannot keep acting as ``local`` after the first principal exists.
    """
    if actor is None:
        return current_principal(store)
    if actor.implicit and principals_exist(store):
        raise PermissionDeniedError(
            "the single-user default no longer applies: access control is on",
            hint=f"set {TOKEN_ENV} or run finegate auth login",
        )
    return actor
