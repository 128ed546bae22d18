"""Registry internals: versions, stages, promotion (gated), rollback, evidence links.

Stages: ``candidate → approved → production → retired``. One version per model is in
production; promoting another one retires it (``superseded``). Rollback returns production to
the version that was in production before the current one, skipping versions that were
themselves rolled back. Every change is written together with its audit event.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from finegate.errors import ConfigError, NotFoundError
from finegate.governance._audit import append_event, write_transaction
from finegate.governance._auth import Action, Principal, authorize, resolve_actor
from finegate.store.schema import ModelVersion, RegisteredModel, Run, StageTransition

if TYPE_CHECKING:
    from finegate.store.db import Store

STAGES = ("candidate", "approved", "production", "retired")
GATED_STAGES = ("approved", "production")
SELECTORS = ("production", "approved", "candidate", "latest")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ADAPTER_SEP = "+adapter:"


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version as the library returns it.

    Attributes:
        resolved_uri: The URI a backend is loaded from (base URI plus the stored adapter).
        model_hash: The identity hash of base plus adapter; gate decisions match on it.
    """

    name: str
    version: int
    stage: str
    model_uri: str
    resolved_uri: str
    base_model_uri: str
    base_model_hash: str | None
    model_hash: str
    adapter_sha256: str | None
    intended_use: str
    training_run_id: str | None
    dataset_version_ids: list[str]
    eval_run_ids: list[str]
    guardrails: dict[str, Any] | None
    meta: dict[str, Any]
    created_by: str
    created_at: datetime
    stage_changed_at: datetime

    @property
    def ref(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (timestamps as ISO text)."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["stage_changed_at"] = self.stage_changed_at.isoformat()
        return out


def _state(row: ModelVersion) -> dict[str, Any]:
    """The hashed state of a version (before/after hashes of audit events)."""
    return {
        "name": row.model_name,
        "version": row.version,
        "stage": row.stage,
        "model_uri": row.model_uri,
        "model_hash": row.model_hash,
        "adapter_sha256": row.adapter_sha256,
        "intended_use": row.intended_use,
        "training_run_id": row.training_run_id,
        "dataset_version_ids": list(row.dataset_version_ids or []),
        "eval_run_ids": list(row.eval_run_ids or []),
        "guardrails": row.guardrails,
        "meta": dict(row.meta or {}),
    }


def _resolved_uri(store: Store, row: ModelVersion) -> str:
    if row.adapter_sha256:
        return f"{row.base_model_uri}{_ADAPTER_SEP}{store.artifacts.path(row.adapter_sha256)}"
    return row.model_uri


def _info(store: Store, row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=row.model_name,
        version=row.version,
        stage=row.stage,
        model_uri=row.model_uri,
        resolved_uri=_resolved_uri(store, row),
        base_model_uri=row.base_model_uri,
        base_model_hash=row.base_model_hash,
        model_hash=row.model_hash,
        adapter_sha256=row.adapter_sha256,
        intended_use=row.intended_use,
        training_run_id=row.training_run_id,
        dataset_version_ids=[str(x) for x in row.dataset_version_ids or []],
        eval_run_ids=[str(x) for x in row.eval_run_ids or []],
        guardrails=dict(row.guardrails) if row.guardrails is not None else None,
        meta=dict(row.meta or {}),
        created_by=row.created_by,
        created_at=row.created_at,
        stage_changed_at=row.stage_changed_at,
    )


def parse_ref(ref: str) -> tuple[str, int | str]:
    """Split ``NAME@VERSION`` / ``NAME@production|approved|candidate|latest`` (bare = latest).

    Raises:
        ConfigError: for an empty name or an unknown selector.
    """
    name, _, sel = ref.partition("@")
    if not name:
        raise ConfigError(f"bad model reference {ref!r}", hint="use NAME@VERSION or NAME@STAGE")
    if not sel:
        return name, "latest"
    if sel.isdigit():
        return name, int(sel)
    if sel.lower().lstrip("v").isdigit():
        return name, int(sel.lower().lstrip("v"))
    if sel not in SELECTORS:
        raise ConfigError(
            f"bad version {sel!r} in {ref!r}", hint=f"a number or one of {', '.join(SELECTORS)}"
        )
    return name, sel


def _row(session: Session, ref: str) -> ModelVersion:
    name, sel = parse_ref(ref)
    stmt = select(ModelVersion).where(ModelVersion.model_name == name)
    if isinstance(sel, int):
        stmt = stmt.where(ModelVersion.version == sel)
    elif sel != "latest":
        stmt = stmt.where(ModelVersion.stage == sel)
    row = session.scalar(stmt.order_by(ModelVersion.version.desc()).limit(1))
    if row is None:
        what = f"version {sel}" if isinstance(sel, int) else f"{sel} version"
        raise NotFoundError(f"model {name!r} has no {what}", hint="see finegate registry list")
    return row


def get_version(store: Store, ref: str) -> ModelVersionInfo:
    """Return the version a reference names (``NAME@3``, ``NAME@production``, ...)."""
    with store.session() as s:
        return _info(store, _row(s, ref))


def resolve_uri(store: Store, ref: str) -> str:
    """Return the underlying model URI of a registry reference (what backends load)."""
    return get_version(store, ref).resolved_uri


def list_versions(
    store: Store, name: str | None = None, *, stage: str | None = None
) -> list[ModelVersionInfo]:
    """Return versions ordered by model name and version number."""
    stmt = select(ModelVersion)
    if name is not None:
        stmt = stmt.where(ModelVersion.model_name == name)
    if stage is not None:
        stmt = stmt.where(ModelVersion.stage == stage)
    with store.session() as s:
        rows = s.scalars(stmt.order_by(ModelVersion.model_name, ModelVersion.version))
        return [_info(store, r) for r in rows]


def _identity(uri: str) -> tuple[str, dict[str, Any]]:
    """Load the backend once to read its identity (content hash), then release it."""
    from finegate.models.uri import load_backend

    backend = load_backend(uri)
    ident = backend.identity()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(backend.aclose())
    return ident.content_hash, dict(ident.details)


def _check_runs(session: Session, run_ids: Sequence[str], what: str) -> list[str]:
    for rid in run_ids:
        if session.get(Run, rid) is None:
            raise NotFoundError(f"no {what} run {rid!r}", hint="see finegate runs list")
    return list(dict.fromkeys(run_ids))


def register_model(
    store: Store,
    name: str,
    model_uri: str,
    *,
    adapter: Path | None = None,
    intended_use: str = "",
    description: str = "",
    eval_run_ids: Sequence[str] = (),
    training_run_id: str | None = None,
    dataset_version_ids: Sequence[str] = (),
    guardrails: Mapping[str, Any] | None = None,
    model_hash: str | None = None,
    meta: Mapping[str, Any] | None = None,
    actor: Principal | None = None,
) -> ModelVersionInfo:
    """Register a new version (stage ``candidate``) of ``name``; needs ``registry:register``.

    Args:
        store: The store.
        name: The model's registry name (created on first registration).
        model_uri: The base model URI (``hf:embedded``, ``mock:refuse``, ...).
        adapter: A PEFT adapter directory; copied into the artifact store (``hf:`` only).
        intended_use: What the version is for (shown on its model card).
        description: The model's description (kept from the first registration).
        eval_run_ids: Evaluation runs of this version.
        training_run_id: The training record that produced the adapter.
        dataset_version_ids: Dataset versions it was tuned on.
        guardrails: The gateway guardrail configuration it is served with.
        model_hash: The identity hash; when None the backend is loaded once to read it.
        meta: Extra JSON facts.
        actor: Who registers; defaults to the current principal.
    """
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.REGISTER, object_type="registered_model", object_id=name)
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"bad model name {name!r}",
            hint="letters, digits and . _ - (no @), up to 128 characters",
        )
    if model_uri.startswith("registry:"):
        raise ConfigError("register the underlying model URI, not a registry: reference")
    base_uri, adapter_sha, uri = model_uri, None, model_uri
    if adapter is not None:
        if not model_uri.startswith("hf:") or _ADAPTER_SEP in model_uri:
            raise ConfigError("--adapter needs an hf: base model URI without +adapter:")
        if not (adapter / "adapter_config.json").is_file():
            raise ConfigError(f"{adapter} is not a PEFT adapter directory (no adapter_config.json)")
        adapter_sha = store.artifacts.put(adapter, kind="adapter", name=adapter.name)
        uri = f"{model_uri}{_ADAPTER_SEP}{store.artifacts.path(adapter_sha)}"
    elif model_uri.startswith("hf:") and _ADAPTER_SEP in model_uri:
        base_uri = model_uri.rsplit(_ADAPTER_SEP, 1)[0]
    details: dict[str, Any] = {}
    if model_hash is None:
        model_hash, details = _identity(uri)
    base_hash = details.get("base_hash") or (
        model_hash if base_uri == model_uri and adapter is None else None
    )
    with write_transaction(store) as s:
        runs = _check_runs(s, eval_run_ids, "eval")
        if training_run_id is not None:
            _check_runs(s, [training_run_id], "training")
        model = s.get(RegisteredModel, name)
        if model is None:
            s.add(RegisteredModel(name=name, description=description, created_by=actor.name))
            s.flush()
            append_event(
                s,
                actor,
                "registry.create_model",
                "registered_model",
                name,
                after={"name": name, "description": description},
            )
        last = s.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_name == name)
        )
        row = ModelVersion(
            model_name=name,
            version=(last or 0) + 1,
            stage="candidate",
            model_uri=model_uri,
            base_model_uri=base_uri,
            base_model_hash=base_hash,
            model_hash=model_hash,
            adapter_sha256=adapter_sha,
            intended_use=intended_use,
            training_run_id=training_run_id,
            dataset_version_ids=[str(d) for d in dataset_version_ids],
            eval_run_ids=runs,
            guardrails=dict(guardrails) if guardrails is not None else None,
            meta=dict(meta or {}),
            created_by=actor.name,
        )
        s.add(row)
        s.flush()
        append_event(
            s,
            actor,
            "registry.register",
            "model_version",
            f"{name}@{row.version}",
            after=_state(row),
            details={
                "model_uri": model_uri,
                "model_hash": model_hash,
                "adapter_sha256": adapter_sha,
                "eval_run_ids": runs,
            },
        )
        return _info(store, row)


def link_evidence(
    store: Store,
    ref: str,
    *,
    eval_run_ids: Sequence[str] = (),
    training_run_id: str | None = None,
    dataset_version_ids: Sequence[str] = (),
    actor: Principal | None = None,
) -> ModelVersionInfo:
    """Attach evaluation runs, a training record or dataset versions to a version."""
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.REGISTER, object_type="model_version", object_id=ref)
    with write_transaction(store) as s:
        row = _row(s, ref)
        before = _state(row)
        runs = _check_runs(s, eval_run_ids, "eval")
        row.eval_run_ids = list(dict.fromkeys([*(row.eval_run_ids or []), *runs]))
        if training_run_id is not None:
            _check_runs(s, [training_run_id], "training")
            row.training_run_id = training_run_id
        if dataset_version_ids:
            row.dataset_version_ids = list(
                dict.fromkeys([*(row.dataset_version_ids or []), *map(str, dataset_version_ids)])
            )
        append_event(
            s,
            actor,
            "registry.link_evidence",
            "model_version",
            f"{row.model_name}@{row.version}",
            before=before,
            after=_state(row),
            details={
                "eval_run_ids": runs,
                "training_run_id": training_run_id,
                "dataset_version_ids": list(dataset_version_ids),
            },
        )
        return _info(store, row)


def set_guardrails(
    store: Store, ref: str, guardrails: Mapping[str, Any] | None, *, actor: Principal | None = None
) -> ModelVersionInfo:
    """Record the guardrail configuration a version is served with (``None`` clears it)."""
    actor = resolve_actor(store, actor)
    authorize(store, actor, Action.CONFIGURE_GUARDRAILS, object_type="model_version", object_id=ref)
    with write_transaction(store) as s:
        row = _row(s, ref)
        before = _state(row)
        row.guardrails = dict(guardrails) if guardrails is not None else None
        append_event(
            s,
            actor,
            "registry.set_guardrails",
            "model_version",
            f"{row.model_name}@{row.version}",
            before=before,
            after=_state(row),
        )
        return _info(store, row)


def transitions(store: Store, name: str) -> list[StageTransition]:
    """Return a model's stage transitions, oldest first."""
    with store.session() as s:
        return list(
            s.scalars(
                select(StageTransition)
                .where(StageTransition.model_name == name)
                .order_by(StageTransition.id)
            )
        )
