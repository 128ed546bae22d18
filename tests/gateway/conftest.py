"""Fixtures for gateway tests: a store, an in-process gateway client, keys."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
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
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'gw.db'}", home=tmp_path / "home")
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A file SQLite store and a PostgreSQL one (the `pg_url` database), in turn."""
    url = (
        f"sqlite:///{tmp_path / 'fg.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    s = Store(url, home=tmp_path / "home")
    request.addfinalizer(s.close)
    return s


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
