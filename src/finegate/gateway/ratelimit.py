"""Per-key rate limits (requests and tokens per minute), in-process or shared through Redis.

Both limiters use the same sliding-window estimate over one-minute buckets:
``used = current + previous * (1 - elapsed fraction of the current minute)``. The request
counter is incremented first (atomically in Redis) and given back when the request is
refused, so concurrent gateway replicas never both take the last slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Limit", "MemoryLimiter", "RateLimiter", "RedisLimiter", "make_limiter"]

log = logging.getLogger("finegate.gateway")


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


# One round trip per request: count the request, add completion tokens reported since this
# key's last request (`RedisLimiter.add_tokens`), read the window, add the prompt's tokens.
# Token usage is read after the earlier completions are added and before this prompt's are,
# as the in-process limiter does.
_CHECK_SCRIPT = """
local r = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 180)
local pending, prompt = tonumber(ARGV[1]), tonumber(ARGV[2])
if pending > 0 then redis.call('INCRBY', KEYS[3], pending) end
local t = tonumber(redis.call('GET', KEYS[3]) or '0')
if prompt > 0 then redis.call('INCRBY', KEYS[3], prompt) end
if pending > 0 or prompt > 0 then redis.call('EXPIRE', KEYS[3], 180) end
return {r, tonumber(redis.call('GET', KEYS[2]) or '0'), t,
        tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(redis.call('GET', KEYS[5]) or '-1')}
"""

_CHECK_SHA = hashlib.sha1(_CHECK_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis' script id


class _Calls(Protocol):
    async def call(self, *args: str | int | bytes) -> Any: ...

    async def aclose(self) -> None: ...


class _RedisPy:
    """redis-py for what `RespClient` does not serve (TLS, Unix sockets)."""

    def __init__(self, url: str) -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    async def call(self, *args: str | int | bytes) -> Any:
        return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        await self._redis.aclose()


class RedisLimiter:
    """Limits shared by every gateway replica through Redis (one round trip per request).

    Commands go through `finegate.gateway.redis_wire.RespClient` (redis-py for ``rediss://``
    and Unix-socket URLs).

    Completion tokens (`add_tokens`) are not sent on their own: they travel with the key's
    next `check`, or at the latest ``flush_s`` later, so other replicas see them within that
    time. A refused request costs a second round trip (its counts are given back).

    Args:
        url: ``redis://host:port/db``.
        prefix: Key prefix, so several gateways (or tests) can share one Redis.
        flush_s: Most time completion tokens wait for the key's next request.
    """

    def __init__(
        self, url: str, *, prefix: str = "finegate:rl", clock: Any = time.time,
        flush_s: float = 0.5,
    ) -> None:  # fmt: skip
        from finegate.gateway.redis_wire import RespClient

        self._client: _Calls = RespClient.from_url(url) or _RedisPy(url)
        self.prefix = prefix
        self.flush_s = flush_s
        self._clock = clock
        self._pending: dict[str, int] = {}
        self._flusher: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def _k(self, key_id: str, kind: str, minute: int) -> str:
        return f"{self.prefix}:{key_id}:{kind}:{minute}"

    async def check(self, key_id: str, rpm: int, tpm: int, tokens: int) -> Limit:  # noqa: D102
        minute, frac = _window(self._clock())
        cur_r, cur_t = self._k(key_id, "r", minute), self._k(key_id, "t", minute)
        keys = [cur_r, self._k(key_id, "r", minute - 1), cur_t,
                self._k(key_id, "t", minute - 1), f"{self.prefix}:{key_id}:throttle"]  # fmt: skip
        pending = self._pending.pop(key_id, 0)
        try:
            r_cur, r_prev, t_cur, t_prev, thr = await self._script(keys, pending, tokens)
        except BaseException:
            self._pending[key_id] = self._pending.get(key_id, 0) + pending
            raise
        if thr >= 0:
            rpm = min(rpm, int(thr)) if rpm else int(thr)
        verdict = _decide(int(r_cur), int(r_prev), int(t_cur), int(t_prev), frac, rpm, tpm)
        if not verdict.allowed:
            give_back = [self._client.call("DECR", cur_r)]
            if tokens:
                give_back.append(self._client.call("DECRBY", cur_t, tokens))
            await asyncio.gather(*give_back)  # sent together: one round trip
        return verdict

    async def _script(self, keys: list[str], pending: int, tokens: int) -> list[int]:
        args: tuple[str | int, ...] = (len(keys), *keys, pending, tokens)
        try:
            return list(await self._client.call("EVALSHA", _CHECK_SHA, *args))
        except Exception as exc:
            if "NOSCRIPT" not in str(exc):
                raise
        # The server does not have the script yet (restarted, or first use): send it whole.
        return list(await self._client.call("EVAL", _CHECK_SCRIPT, *args))

    async def add_tokens(self, key_id: str, tokens: int) -> None:  # noqa: D102
        if tokens <= 0:
            return
        self._pending[key_id] = self._pending.get(key_id, 0) + tokens
        if self._flusher is None:
            loop = asyncio.get_running_loop()
            self._flusher = loop.call_later(self.flush_s, self._start_flush)

    def _start_flush(self) -> None:
        self._flusher = None
        task = asyncio.ensure_future(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Send every key's pending completion tokens now."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        minute, _ = _window(self._clock())
        calls = []
        for key_id, tokens in pending.items():
            key = self._k(key_id, "t", minute)
            calls.append(self._client.call("INCRBY", key, tokens))
            calls.append(self._client.call("EXPIRE", key, 180))
        try:
            await asyncio.gather(*calls)
        except Exception as exc:  # noqa: BLE001 - kept for the next try, not lost
            for key_id, tokens in pending.items():
                self._pending[key_id] = self._pending.get(key_id, 0) + tokens
            log.error("gateway: sending token counts to Redis failed (%s)", type(exc).__name__)

    async def throttle(self, key_id: str, seconds: float, rpm: int) -> None:  # noqa: D102
        key = f"{self.prefix}:{key_id}:throttle"
        await self._client.call("SET", key, rpm, "PX", max(1, int(seconds * 1000)))

    async def aclose(self) -> None:  # noqa: D102
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await asyncio.gather(*self._flushing, return_exceptions=True)
        try:
            await self.flush()
        finally:
            await self._client.aclose()


def make_limiter(redis_url: str | None, *, prefix: str = "finegate:rl") -> RateLimiter:
    """Return a Redis limiter when a URL is configured, else an in-process one."""
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix)
    return MemoryLimiter()
