"""Content-addressed artifacts: ``<root>/<sha256>`` files (or directories) plus a row each.

A directory artifact (an adapter, a model) is stored as a directory whose hash covers every
file's relative path and bytes, so the same content always has the same address.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from finegate.errors import StoreError
from finegate.store.schema import Artifact

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """Return a sha256 over a directory: each file's relative path and bytes, sorted."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


class ArtifactStore:
    """Stores files and directories by content hash under ``root``."""

    def __init__(self, root: Path, sessions: sessionmaker[Session]) -> None:
        self.root = root
        self._sessions = sessions

    def path(self, sha256: str) -> Path:
        """Return where the artifact with this hash lives (whether or not it exists)."""
        return self.root / sha256

    def put(
        self, source: Path, *, kind: str, name: str = "", meta: dict[str, Any] | None = None
    ) -> str:
        """Copy a file or directory in; return its sha256. Idempotent for equal content."""
        if not source.exists():
            raise StoreError(f"cannot store artifact: {source} does not exist")
        is_dir = source.is_dir()
        sha = sha256_tree(source) if is_dir else sha256_file(source)
        target = self.path(sha)
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            # Copy to a temp name and rename, so a crash never leaves a half-written artifact
            # under its final address.
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            staged = tmp / "content"
            if is_dir:
                shutil.copytree(source, staged)
            else:
                shutil.copy2(source, staged)
            os.replace(staged, target)
            shutil.rmtree(tmp, ignore_errors=True)
        size = (
            sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            if is_dir
            else target.stat().st_size
        )
        with self._sessions() as s, s.begin():
            if s.get(Artifact, sha) is None:
                s.add(
                    Artifact(
                        sha256=sha,
                        kind=kind,
                        name=name or source.name,
                        size=size,
                        meta={**(meta or {}), "is_dir": is_dir},
                    )
                )
        return sha

    def put_bytes(
        self, data: bytes, *, kind: str, name: str = "", meta: dict[str, Any] | None = None
    ) -> str:
        """Store bytes as a file artifact; return its sha256."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / (name or "blob")
            path.write_bytes(data)
            return self.put(path, kind=kind, name=name, meta=meta)

    def get(self, sha256: str) -> Path:
        """Return the path of a stored artifact, verifying it exists."""
        target = self.path(sha256)
        if not target.exists():
            raise StoreError(f"artifact {sha256[:12]} is not in {self.root}")
        return target

    def verify(self, sha256: str) -> bool:
        """Re-hash an artifact and say whether it still matches its address."""
        target = self.get(sha256)
        actual = sha256_tree(target) if target.is_dir() else sha256_file(target)
        return actual == sha256

    def info(self, sha256: str) -> Artifact | None:
        """Return the artifact's row."""
        with self._sessions() as s:
            return s.get(Artifact, sha256)
