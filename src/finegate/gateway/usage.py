"""Usage monitoring: per-key signs of model-extraction probing.

Three signals over each key's recent prompts (a bounded window, in memory):

* **near-duplicates**: many prompts whose character-shingle sets are nearly identical
  (Jaccard similarity at or above a threshold) to an earlier prompt in the window;
* **systematic prefix probing**: many prompts sharing one long common prefix and differing
  only in their ending (the classic "complete this: ..." sweep);
* **prompt-length bursts**: many very long prompts in the last minute.

When a signal crosses its threshold an incident is reported (once per key and kind per
window) and, when configured, the key is throttled.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from types import ModuleType
from typing import Any, Protocol

from finegate.gateway.config import UsageConfig

_native: ModuleType | None
try:
    from finegate.gateway import _usage_sketch as _native
except ImportError:  # built without a C compiler (the extension is optional)
    _native = None
_c_sketch: Callable[[str, int, int], frozenset[int]] | None = None
_CHashCounts: Callable[[], _HashCounts] | None = None
if _native is not None:
    _c_sketch, _CHashCounts = _native.sketch, _native.HashCounts
# Like Python's own hash seed: sketch values a client cannot predict, so it cannot aim
# prompts at colliding counters.
_SEED = int.from_bytes(os.urandom(8), "little")

__all__ = ["Incident", "UsageMonitor"]


@dataclass(frozen=True)
class Incident:
    """A probing signal that crossed its threshold."""

    key_id: str
    kind: str
    severity: str
    details: dict[str, Any]


@dataclass
class _Seen:
    at: float
    length: int
    shingles: frozenset[int]
    head: str


_MIN_PREFIX = 24


class _HashCounts(Protocol):
    """How many remembered sketches hold each hash (`_usage_sketch.HashCounts` in C)."""

    def add(self, values: Iterable[int], /) -> None: ...
    def remove(self, values: Iterable[int], /) -> None: ...
    def shared(self, values: Iterable[int], /) -> int: ...
    def __len__(self) -> int: ...


class _PyHashCounts:
    """`_HashCounts` in Python, where the extension was not built."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def add(self, values: Iterable[int], /) -> None:
        counts = self._counts
        for v in values:
            counts[v] = counts.get(v, 0) + 1

    def remove(self, values: Iterable[int], /) -> None:
        counts = self._counts
        for v in values:
            left = counts[v] - 1
            if left:
                counts[v] = left
            else:
                del counts[v]

    def shared(self, values: Iterable[int], /) -> int:
        return sum(map(self._counts.get, values, repeat(0)))

    def __len__(self) -> int:
        return len(self._counts)


def _hash_counts() -> _HashCounts:
    return _CHashCounts() if _CHashCounts is not None else _PyHashCounts()


@dataclass
class _KeyState:
    prompts: deque[_Seen]
    reported: dict[str, float] = field(default_factory=dict)
    # The same prompts by their first `_MIN_PREFIX` characters: only prompts in the bucket
    # of a new prompt can share a long enough prefix with it (see `_shared_prefix_count`).
    by_start: dict[str, deque[_Seen]] = field(default_factory=dict)
    # How many prompts hold each sketch hash: bounds the near-duplicate count without
    # comparing the new prompt with each (`shared_hashes`).
    hash_counts: _HashCounts = field(default_factory=_hash_counts)

    def shared_hashes(self, sketch: frozenset[int]) -> int:
        """The sum over the prompts of the hashes each shares with ``sketch``."""
        return self.hash_counts.shared(sketch)

    def remember(self, seen: _Seen) -> None:
        if len(self.prompts) == self.prompts.maxlen:
            self.forget_oldest()
        self.prompts.append(seen)
        self.hash_counts.add(seen.shingles)
        start = seen.head[:_MIN_PREFIX]
        bucket = self.by_start.get(start)
        if bucket is None:
            bucket = self.by_start[start] = deque()
        bucket.append(seen)

    def forget_oldest(self) -> None:
        old = self.prompts.popleft()
        self.hash_counts.remove(old.shingles)
        start = old.head[:_MIN_PREFIX]
        bucket = self.by_start[start]
        bucket.popleft()  # buckets keep arrival order, so the oldest prompt leads its bucket
        if not bucket:
            del self.by_start[start]


def _sketch(text: str, k: int = 64) -> frozenset[int]:
    """Bottom-k sketch of the word-trigram set (a MinHash variant: Jaccard from k hashes).

    In C (`_usage_sketch`) where the extension was built: the same words and trigrams
    (lowercased a character at a time) with its own hash (seeded per process, like
    Python's), without the few hundred objects per prompt that cost the gateway ~0.06 ms
    per request. Sketches are only ever compared with sketches made by the same process, so
    either function is used throughout.
    """
    if _c_sketch is not None:
        return _c_sketch(text, k, _SEED)
    return _sketch_py(text, k)


def _sketch_py(text: str, k: int = 64) -> frozenset[int]:
    """`_sketch` in Python, with Python's hash of the word trigrams."""
    words = text.lower().split()[:2000]
    if len(words) < 3:
        return frozenset({hash(" ".join(words))})
    # map/zip keep the per-trigram loop in C; sorting ~hundreds of ints beats a heap here.
    grams = sorted(set(map(hash, zip(words, words[1:], words[2:], strict=False))))
    return frozenset(grams[:k])


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """Estimate the Jaccard similarity of two texts from their bottom-k sketches.

    The share of common hashes among the larger sketch: cheap (one set intersection) and
    close to the bottom-k estimate for the near-duplicates this is used to find.
    """
    if not a or not b:
        return 0.0
    return len(a & b) / max(len(a), len(b))


class UsageMonitor:
    """Tracks each key's recent prompts and reports probing incidents.

    Args:
        config: Thresholds and window.
        clock: Time source (seconds), for tests.
    """

    def __init__(self, config: UsageConfig, clock: Any = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}

    def observe(self, key_id: str, prompt: str, length: int | None = None) -> list[Incident]:
        """Record one prompt of ``key_id``; return incidents newly raised by it.

        Args:
            key_id: The API key's id.
            prompt: The prompt (or its beginning: only the first 2,000 words and 1,024
                characters are compared).
            length: The whole prompt's length when ``prompt`` is its beginning.
        """
        cfg = self.config
        if not cfg.enabled:
            return []
        now = self._clock()
        state = self._keys.get(key_id)
        if state is None:
            if len(self._keys) > 50000:
                self._keys.clear()
            state = self._keys[key_id] = _KeyState(deque(maxlen=cfg.history))
        while state.prompts and now - state.prompts[0].at > cfg.window_s:
            state.forget_oldest()
        size = len(prompt) if length is None else length
        seen = _Seen(now, size, _sketch(prompt), prompt[:1024])
        # The signals count the earlier prompts: `seen` is remembered once they are computed.
        prompts = state.prompts
        shared = state.shared_hashes(seen.shingles)
        found: list[Incident] = []

        def due(kind: str) -> bool:
            # A signal reported within the window would be dropped again, so it is not even
            # computed: a key flooding near-duplicates costs the least per request.
            last = state.reported.get(kind)
            return last is None or now - last > cfg.window_s

        mine, threshold = seen.shingles, cfg.near_duplicate_similarity
        # Each earlier near-duplicate shares at least threshold * len(mine) of mine's hashes,
        # so fewer shared hashes in all than the needed count of them rules the signal out
        # exactly, without the comparisons (most traffic: ~0.15 ms of a request's CPU).
        possible = shared >= (cfg.near_duplicate_count - 1) * threshold * len(mine)
        if possible and due("extraction.near_duplicates"):
            dup = sum(1 for p in prompts if _jaccard(p.shingles, mine) >= threshold)
            if dup + 1 >= cfg.near_duplicate_count:
                found.append(
                    Incident(key_id, "extraction.near_duplicates", "medium",
                             {"similar_prompts": dup + 1, "window_s": cfg.window_s})
                )  # fmt: skip
        if due("extraction.prefix_probing"):
            same_start = state.by_start.get(seen.head[:_MIN_PREFIX], ())
            prefix = _shared_prefix_count(same_start, seen.head)
            if prefix + 1 >= cfg.prefix_count:
                found.append(
                    Incident(key_id, "extraction.prefix_probing", "high",
                             {"prompts_sharing_prefix": prefix + 1, "window_s": cfg.window_s})
                )  # fmt: skip
        if seen.length >= cfg.burst_chars and due("extraction.length_burst"):
            long_recent = sum(
                1 for p in prompts if now - p.at <= 60 and p.length >= cfg.burst_chars
            )
            if long_recent + 1 >= cfg.burst_count:
                found.append(
                    Incident(key_id, "extraction.length_burst", "medium",
                             {"long_prompts_last_minute": long_recent + 1,
                              "min_chars": cfg.burst_chars})
                )  # fmt: skip
        state.remember(seen)
        for inc in found:
            state.reported[inc.kind] = now
        return found


def _shared_prefix_count(prompts: Iterable[_Seen], head: str, min_prefix: int = _MIN_PREFIX) -> int:
    """How many earlier prompts share a long prefix with ``head`` but end differently.

    The prefix must cover at least half of the shorter prompt and ``min_prefix`` characters;
    identical prompts do not count (that is the near-duplicate signal). Only whether the
    shared prefix reaches that length matters, so one ``startswith`` per prompt decides it.
    """
    count = 0
    for p in prompts:
        other = p.head
        n = min(len(other), len(head))
        if n < min_prefix or other == head:
            continue
        if other.startswith(head[: max(min_prefix, n // 2)]):
            count += 1
    return count
