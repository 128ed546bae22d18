"""Per-key rate limits (requests and tokens per minute), in-process or shared through Redis.

Both limiters use the same sliding-window estimate over one-minute buckets:
``used = current + previous * (1 - elapsed fraction of the current minute)``. The request
counter is incremented first (atomically in Redis) and given back when the request is
refused, so concurrent gateway replicas never both take the last slot.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Limit", "MemoryLimiter", "RateLimiter", "RedisLimiter", "make_limiter"]


@dataclass(frozen=True)
class Limit:
    """The outcome of a check: allowed, or refused with a reason and a retry delay."""

    allowed: bool
    reason: str = ""
    retry_after_s: float = 0.0


OK = Limit(True)


class RateLimiter(Protocol):
    """What the gateway needs from a limiter."""

    async def check(self, key_id: str, rpm: int, tpm: int, tokens: int) -> Limit:
        """Count one request of ~``tokens`` prompt tokens; refuse it when over a limit."""
        ...

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        """Count completion tokens of a finished request."""
        ...

    async def throttle(self, key_id: str, seconds: float, rpm: int) -> None:
        """Limit ``key_id`` to ``rpm`` requests per minute for ``seconds``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _window(now: float) -> tuple[int, float]:
    minute = int(now // 60)
    return minute, (now % 60) / 60.0


def _decide(
    req_cur: int, req_prev: int, tok_cur: int, tok_prev: int, frac: float, rpm: int, tpm: int
) -> Limit:
    retry = max(1.0, math.ceil(60.0 * (1.0 - frac)))
    if rpm and req_cur + req_prev * (1.0 - frac) > rpm:
        return Limit(False, f"rate limit of {rpm} requests per minute reached", retry)
    if tpm and tok_cur + tok_prev * (1.0 - frac) >= tpm:
        return Limit(False, f"rate limit of {tpm} tokens per minute reached", retry)
    return OK


class MemoryLimiter:
    """Limits kept in this process (one gateway replica)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}
        self._throttles: dict[str, tuple[float, int]] = {}

    def _get(self, key: str, kind: str, minute: int) -> int:
        return self._counts.get((key, kind, minute), 0)

    def _gc(self, minute: int) -> None:
        if len(self._counts) > 100000:
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= minute - 1}

    async def check(self, key_id: str, rpm: int, tpm: int, tokens: int) -> Limit:  # noqa: D102
        now = self._clock()
        minute, frac = _window(now)
        thr = self._throttles.get(key_id)
        if thr is not None and thr[0] > now:
            rpm = min(rpm, thr[1]) if rpm else thr[1]
        if not rpm and not tpm:
            return OK
        self._gc(minute)
        self._counts[(key_id, "r", minute)] = self._get(key_id, "r", minute) + 1
        verdict = _decide(
            self._get(key_id, "r", minute), self._get(key_id, "r", minute - 1),
            self._get(key_id, "t", minute), self._get(key_id, "t", minute - 1), frac, rpm, tpm,
        )  # fmt: skip
        if not verdict.allowed:
            self._counts[(key_id, "r", minute)] -= 1
            return verdict
        self._counts[(key_id, "t", minute)] = self._get(key_id, "t", minute) + tokens
        return verdict

    async def add_tokens(self, key_id: str, tokens: int) -> None:  # noqa: D102
        minute, _ = _window(self._clock())
        self._counts[(key_id, "t", minute)] = self._get(key_id, "t", minute) + tokens

    async def throttle(self, key_id: str, seconds: float, rpm: int) -> None:  # noqa: D102
        self._throttles[key_id] = (self._clock() + seconds, rpm)

    async def aclose(self) -> None:  # noqa: D102
        pass


class RedisLimiter:
    """Limits shared by every gateway replica through Redis (one round trip per request).

    Args:
        url: ``redis://host:port/db``.
        prefix: Key prefix, so several gateways (or tests) can share one Redis.
    """

    def __init__(self, url: str, *, prefix: str = "finegate:rl", clock: Any = time.time) -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.prefix = prefix
        self._clock = clock

    def _k(self, key_id: str, kind: str, minute: int) -> str:
        return f"{self.prefix}:{key_id}:{kind}:{minute}"

    async def check(self, key_id: str, rpm: int, tpm: int, tokens: int) -> Limit:  # noqa: D102
        minute, frac = _window(self._clock())
        cur_r = self._k(key_id, "r", minute)
        async with self._redis.pipeline(transaction=False) as p:
            p.incr(cur_r)
            p.expire(cur_r, 180)
            p.get(self._k(key_id, "r", minute - 1))
            p.get(self._k(key_id, "t", minute))
            p.get(self._k(key_id, "t", minute - 1))
            p.get(f"{self.prefix}:{key_id}:throttle")
            r_cur, _, r_prev, t_cur, t_prev, thr = await p.execute()
        if thr is not None:
            rpm = min(rpm, int(thr)) if rpm else int(thr)
        verdict = _decide(
            int(r_cur), int(r_prev or 0), int(t_cur or 0), int(t_prev or 0), frac, rpm, tpm
        )
        if not verdict.allowed:
            await self._redis.decr(cur_r)
            return verdict
        if tokens:
            await self.add_tokens(key_id, tokens)
        return verdict

    async def add_tokens(self, key_id: str, tokens: int) -> None:  # noqa: D102
        minute, _ = _window(self._clock())
        key = self._k(key_id, "t", minute)
        async with self._redis.pipeline(transaction=False) as p:
            p.incrby(key, tokens)
            p.expire(key, 180)
            await p.execute()

    async def throttle(self, key_id: str, seconds: float, rpm: int) -> None:  # noqa: D102
        await self._redis.set(
            f"{self.prefix}:{key_id}:throttle", rpm, px=max(1, int(seconds * 1000))
        )

    async def aclose(self) -> None:  # noqa: D102
        await self._redis.aclose()


def make_limiter(redis_url: str | None, *, prefix: str = "finegate:rl") -> RateLimiter:
    """Return a Redis limiter when a URL is configured, else an in-process one."""
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix)
    return MemoryLimiter()
