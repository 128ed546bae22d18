"""The store: SQLAlchemy models, engine and migrations, the artifact directory, call records."""

from finegate.store.artifacts import ArtifactStore, sha256_file, sha256_tree
from finegate.store.calls import count_calls, find_cached, record_calls
from finegate.store.db import (
    Store,
    current_revision,
    make_engine,
    migrate,
    open_store,
    reset_default_store,
)
from finegate.store.schema import Artifact, Base, EvalResult, ModelCall, Run, VaultEntry

__all__ = [
    "Artifact",
    "ArtifactStore",
    "Base",
    "EvalResult",
    "ModelCall",
    "Run",
    "Store",
    "VaultEntry",
    "count_calls",
    "current_revision",
    "find_cached",
    "make_engine",
    "migrate",
    "open_store",
    "record_calls",
    "reset_default_store",
    "sha256_file",
    "sha256_tree",
]
