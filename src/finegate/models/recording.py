"""Recording every model call in the store, and answering repeats from it.

:class:`RecordingBackend` wraps any backend. An identical request (same canonical JSON) to an
identical model (same identity hash) is answered from the store unless caching is off, so a
re-run gives identical outputs. Sampled requests without a seed are never served from the
cache: they are not meant to repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from finegate.models.types import ChatRequest, ChatResponse, ModelBackend, ModelIdentity

if TYPE_CHECKING:
    from finegate.store.db import Store


def _cacheable(request: ChatRequest) -> bool:
    return request.params.greedy or request.params.seed is not None


class RecordingBackend:
    """A backend wrapper that records calls and serves repeats from the store.

    Args:
        inner: The backend that really answers.
        store: Where calls are recorded.
        use_cache: Answer identical earlier requests from the store.
        run_id: Run the recorded calls belong to.

    Attributes:
        hits: Requests answered from the store so far.
        misses: Requests sent to the inner backend so far.
    """

    def __init__(
        self,
        inner: ModelBackend,
        store: Store,
        *,
        use_cache: bool = True,
        run_id: str | None = None,
    ) -> None:
        self.inner = inner
        self.store = store
        self.use_cache = use_cache
        self.run_id = run_id
        self.hits = 0
        self.misses = 0
        self._identity: ModelIdentity | None = None

    @property
    def batch_slots(self) -> int:
        """Rows the inner backend batches from concurrent calls itself (0: it does not)."""
        return int(getattr(self.inner, "batch_slots", 0))

    def identity(self) -> ModelIdentity:
        """Return the inner backend's identity."""
        if self._identity is None:
            self._identity = self.inner.identity()
        return self._identity

    async def aclose(self) -> None:
        """Close the inner backend."""
        await self.inner.aclose()

    async def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer from the store where possible, from the inner backend otherwise."""
        from finegate.store.calls import find_cached, record_calls

        ident = self.identity()
        hashes = [r.request_hash() for r in requests]
        cached: dict[str, dict[str, Any]] = {}
        if self.use_cache:
            keys = [h for h, r in zip(hashes, requests, strict=True) if _cacheable(r)]
            cached = find_cached(self.store, ident.cache_key(), keys)
        results: list[ChatResponse | None] = [None] * len(requests)
        todo: list[int] = []
        for i, (h, req) in enumerate(zip(hashes, requests, strict=True)):
            if h in cached and _cacheable(req):
                results[i] = ChatResponse.from_dict(cached[h], cached=True)
            else:
                todo.append(i)
        self.hits += len(requests) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = await self.inner.generate([requests[i] for i in todo])
            rows = []
            for i, resp in zip(todo, fresh, strict=True):
                results[i] = resp
                rows.append(
                    {
                        "run_id": self.run_id,
                        "model_uri": ident.uri,
                        "model_hash": ident.cache_key(),
                        "request_hash": hashes[i],
                        "request": requests[i].to_dict(),
                        "response": resp.to_dict(),
                        "latency_s": resp.latency_s,
                        "prompt_tokens": resp.prompt_tokens,
                        "completion_tokens": resp.completion_tokens,
                        "error": resp.error,
                    }
                )
            record_calls(self.store, rows)
        return [r for r in results if r is not None]
