"""Fixtures for gateway tests: a store, an in-process gateway client, keys."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from finegate.gateway import GatewayConfig, create_app, create_key, load_config
from finegate.models.types import ModelBackend
from finegate.store import Store

sys.path.insert(0, str(Path(__file__).parent))

from gwutil import base_config  # noqa: E402


@pytest.fixture()
def store(sqlite_store: Store) -> Store:
    """Gateway tests run on SQLite; those of the store records take `db` (both backends)."""
    return sqlite_store


@pytest.fixture()
def key_for(store: Store) -> Callable[[str], str]:
    def make(tier: str = "default") -> str:
        return create_key(store, tier, name=f"test-{tier}")[1]

    return make


GatewayFactory = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


@pytest.fixture()
def gateway(store: Store) -> GatewayFactory:
    @asynccontextmanager
    async def make(
        config: Mapping[str, Any] | GatewayConfig | None = None,
        backends: Mapping[str, ModelBackend] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        cfg = (
            config
            if isinstance(config, GatewayConfig)
            else load_config(dict(config or base_config()))
        )
        app = create_app(cfg, store, backends=backends, **kwargs)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield client, app.state.gateway

    return make
