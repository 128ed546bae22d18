"""The sync facade, derived from the async contract (never a second implementation)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from finegate.models.types import ChatRequest, ChatResponse, ModelBackend


def generate_sync(backend: ModelBackend, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
    """Run :meth:`ModelBackend.generate` to completion from synchronous code."""
    return asyncio.run(backend.generate(requests))
