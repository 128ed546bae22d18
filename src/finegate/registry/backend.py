"""``registry:NAME@VERSION`` model URIs: resolve through the registry, load the real backend.

``registry:support-bot@3``, ``registry:support-bot@production`` (also ``@approved``,
``@candidate``, ``@latest``) resolve to the version's underlying URI (for ``hf:`` the base plus
``+adapter:<artifact path>``) in the current store, then load through ``load_backend``.
"""

from __future__ import annotations

from finegate.models.types import ModelBackend
from finegate.models.uri import BackendOptions, load_backend
from finegate.plugins import register


@register("backend", "registry")
def registry_factory(spec: str, options: BackendOptions) -> ModelBackend:
    """Resolve ``NAME@VERSION`` in the current store and load the underlying backend."""
    from finegate.registry._private import resolve_uri
    from finegate.store.db import open_store

    return load_backend(resolve_uri(open_store(), spec), options)
