"""Governance: principals and permissions, the tamper-evident audit log, evidence documents.

For every later stage, two calls matter::

    from finegate.governance import Action, audit_event, authorize, resolve_actor

    actor = resolve_actor(store, actor)          # None -> FINEGATE_TOKEN / profile / local
    authorize(store, actor, Action.TUNE)         # raises PermissionDeniedError (and logs it)
    ...do the change...
    audit_event(store, actor, "tune.train", "training_run", run_id,
                before=None, after={"adapter": sha}, details={"seed": 0})

When the change is itself a database write, make it and its event atomic::

    with write_transaction(store) as session:
        session.add(row)
        append_event(session, actor, "data.clean", "dataset_version", vid, after=state)
"""

from finegate.governance._audit import (
    GENESIS,
    ChainProblem,
    ChainReport,
    append_event,
    audit_event,
    canonical_json,
    list_events,
    lock_chain,
    state_hash,
    verify_chain,
    write_transaction,
)
from finegate.governance._auth import (
    LOCAL_ADMIN,
    ROLES,
    TOKEN_ENV,
    Action,
    Principal,
    PrincipalInfo,
    authenticate,
    authorize,
    create_principal,
    create_token,
    current_principal,
    list_principals,
    principals_exist,
    profile_path,
    require,
    resolve_actor,
    revoke_principal,
    save_profile,
)
from finegate.governance._evidence import (
    DOC_KINDS,
    NO_EVIDENCE,
    Block,
    EvidenceDoc,
    Section,
    build_document,
)
from finegate.governance._render import render, to_html, to_markdown

__all__ = [
    "DOC_KINDS",
    "GENESIS",
    "LOCAL_ADMIN",
    "NO_EVIDENCE",
    "ROLES",
    "TOKEN_ENV",
    "Action",
    "Block",
    "ChainProblem",
    "ChainReport",
    "EvidenceDoc",
    "Principal",
    "PrincipalInfo",
    "Section",
    "append_event",
    "audit_event",
    "authenticate",
    "authorize",
    "build_document",
    "canonical_json",
    "create_principal",
    "create_token",
    "current_principal",
    "list_events",
    "list_principals",
    "lock_chain",
    "principals_exist",
    "profile_path",
    "render",
    "require",
    "resolve_actor",
    "revoke_principal",
    "save_profile",
    "state_hash",
    "to_html",
    "to_markdown",
    "verify_chain",
    "write_transaction",
]
