"""Where finegate keeps its state, read from the environment (never a global mutable config).

- ``FINEGATE_HOME``: the state directory (default ``~/.finegate``): database, artifacts, caches.
- ``FINEGATE_DB``: a SQLAlchemy URL; defaults to SQLite at ``$FINEGATE_HOME/finegate.db``.
"""

from __future__ import annotations

import os
from pathlib import Path


def finegate_home() -> Path:
    """Return the state directory, creating it if needed."""
    raw = os.environ.get("FINEGATE_HOME") or str(Path.home() / ".finegate")
    home = Path(raw).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def database_url() -> str:
    """Return the store's SQLAlchemy URL (``FINEGATE_DB`` or SQLite in the home directory)."""
    url = os.environ.get("FINEGATE_DB")
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is the driver we ship; plain URLs would pick psycopg2.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{finegate_home() / 'finegate.db'}"


def model_cache_dir() -> Path:
    """Return where converted model weights are cached.

    ``FINEGATE_MODEL_CACHE`` overrides the default ``$FINEGATE_HOME/models``; tests point it at
    one shared directory so the embedded model is dequantized once, not once per test.
    """
    raw = os.environ.get("FINEGATE_MODEL_CACHE")
    path = Path(raw).expanduser() if raw else finegate_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
