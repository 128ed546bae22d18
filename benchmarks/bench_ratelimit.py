"""CPU and latency of one shared (Redis) rate-limit check, as the gateway makes per request.

    python benchmarks/bench_ratelimit.py                   # Redis at 127.0.0.1:6379/0
    python benchmarks/bench_ratelimit.py --calls 10000 --redis redis://host:6379/0

Prints wall and CPU time per `RedisLimiter.check` + `add_tokens` (what a chat request
costs), sequentially and with 16 concurrent callers, and the same for one plain redis-py
GET as the baseline of a redis-py round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid


async def main(url: str, calls: int) -> None:
    from redis import asyncio as aioredis

    from finegate.gateway.ratelimit import RedisLimiter

    lim = RedisLimiter(url, prefix=f"bench-rl-{uuid.uuid4().hex[:8]}")

    async def request() -> None:
        await lim.check("k", 1_000_000, 1_000_000_000, 500)
        await lim.add_tokens("k", 20)

    for _ in range(200):  # connect, load the script
        await request()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await request()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"limiter check+add_tokens, sequential: {wall / calls * 1e6:.0f} us wall, "
          f"{cpu / calls * 1e6:.0f} us CPU per request")  # fmt: skip

    async def worker(n: int) -> None:
        for _ in range(n):
            await request()

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(calls // 16) for _ in range(16)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = calls // 16 * 16
    print(f"limiter check+add_tokens, 16 concurrent: {done / wall:.0f} requests/s, "
          f"{cpu / done * 1e6:.0f} us CPU per request")  # fmt: skip
    await lim.aclose()

    client = aioredis.from_url(url)
    await client.get("bench-rl-none")
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await client.get("bench-rl-none")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"baseline, one redis-py GET: {wall / calls * 1e6:.0f} us wall, "
          f"{cpu / calls * 1e6:.0f} us CPU")  # fmt: skip
    await client.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    asyncio.run(main(args.redis, args.calls))
