"""Latency added by the guard gateway: the same load directly to an upstream vs through it.

Starts ``finegate serve-model mock:echo`` (answers instantly, no batching window) and
``finegate gateway`` in front of it with every non-ML guard on (PII pseudonymization, secrets,
injection on user and document channels, canary and system-prompt leakage, output redaction,
tool policy, rate limiting, usage monitoring, request log), then sends the same requests
(2 KB prompts, concurrency 16) to both and prints p50/p99 latency, the added latency and
requests/s, the gateway's CPU per request, and how busy each process sharing the cores was
(gateway, upstream, load generator: the slowest one sets the latency at this concurrency).

    python benchmarks/bench_gateway.py                 # 3000 requests per target
    python benchmarks/bench_gateway.py --requests 500 --redis redis://127.0.0.1:6379/0
    python benchmarks/bench_gateway.py --workers 2 --redis redis://127.0.0.1:6379/0

With ``--workers N`` the gateway runs N worker processes on its port (shared state through
Redis and one usage-monitor service); its CPU is then that of all its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import yaml

CANARY = "NW-CANARY-7F3K"
SYSTEM = "You are the support assistant of Northwind. Never reveal internal discount codes."

_SENTENCES = [
    "The customer reports that the export job stalls after the second page of results.",
    "We restarted the worker and cleared the queue, but the issue came back within an hour.",
    "Logs show repeated retries against the reporting database during peak traffic.",
    "Please summarize the likely causes and suggest the next diagnostic steps to take.",
    "The account was migrated last week together with its archived invoices and settings.",
    "Contact me at jane.roe@acme-mail.com if you need more details about the timeline.",
]


def prompt_2kb(i: int) -> str:
    """A realistic ~2 KB support prompt (one e-mail address in it), distinct per request."""
    parts = [f"Ticket {i}:"]
    j = i
    while sum(len(p) + 1 for p in parts) < 2048:
        parts.append(_SENTENCES[j % len(_SENTENCES)])
        j += 1
    return " ".join(parts)[:2048]


def typographic_2kb(i: int) -> str:
    """`prompt_2kb` written as people and models write: curly quotes, apostrophes, em dashes.

    Text that is not ASCII takes the slower paths of normalization, scanning and the leak
    checks (the mock upstream echoes it, so the answers have them too).
    """
    p = prompt_2kb(i).replace("The customer", "The customer\u2019s client")
    p = p.replace("Please summarize", "\u201cPlease summarize").replace(" take.", " take.\u201d")
    return p.replace(", but", " \u2014 but")[:2048]


PROMPTS = {"bench": prompt_2kb, "typographic": typographic_2kb}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up:\n{log.read_text()[-3000:]}")


@contextmanager
def process(
    args: list[str], health: str, log: Path, env: dict[str, str], script: str | None = None
) -> Iterator[int]:
    """Run ``finegate ARGS`` (or ``python SCRIPT ARGS``) until the block ends."""
    head = [script] if script else ["-c", "from finegate.cli.main import run; run()"]
    cmd = [sys.executable, *head, *args]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        wait_up(health, proc, log)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def gateway_config(upstream_port: int, redis_url: str | None) -> dict[str, Any]:
    return {
        "upstreams": [
            {"name": "bot", "uri": f"openai:http://127.0.0.1:{upstream_port}/v1#mock:echo",
             "max_retries": 0, "concurrency": 64}
        ],
        "tiers": {
            "default": {
                "limits": {"requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000},
                "tools": {
                    "allowed": {"get_weather": {"type": "object",
                                                "properties": {"city": {"type": "string"}}}},
                    "allowed_hosts": ["api.weather.example"],
                },
            }
        },
        "canaries": [CANARY],
        "system_prompts": [SYSTEM],
        "internal_domains": ["corp.northwind.example"],
        "redis_url": redis_url,
        "usage": {"enabled": True, "throttle": False},
        "request_log": True,
    }  # fmt: skip


@contextmanager
def stack(
    redis_url: str | None = None, home: Path | None = None, workers: int = 1, floor: bool = False
) -> Iterator[dict[str, Any]]:
    """Start upstream and gateway; yield their URLs, the gateway pid and a key.

    With ``floor`` a bare proxy (`bare_proxy.py`) to the same upstream starts too (``bare``).
    """
    tmp = Path(tempfile.mkdtemp(prefix="fg-bench-")) if home is None else home
    env = {**os.environ, "FINEGATE_HOME": str(tmp / "home")}
    env.pop("FINEGATE_DB", None)
    up_port, gw_port = free_port(), free_port()
    up_args = ["serve-model", "mock:echo", "--port", str(up_port), "--batch-window-ms", "0",
               "--max-batch", "64", "--log-level", "warning"]  # fmt: skip
    cfg_path = tmp / "gateway.yaml"
    cfg_path.write_text(yaml.safe_dump(gateway_config(up_port, redis_url)))
    os.environ["FINEGATE_HOME"] = env["FINEGATE_HOME"]
    from finegate.gateway import create_key
    from finegate.store.db import open_store

    _, key = create_key(open_store(), "default", name="bench")
    gw_args = ["gateway", "--config", str(cfg_path), "--port", str(gw_port),
               "--log-level", "warning", "--workers", str(workers)]  # fmt: skip
    with process(up_args, f"http://127.0.0.1:{up_port}/healthz", tmp / "up.log", env) as up_pid:
        with (
            process(gw_args, f"http://127.0.0.1:{gw_port}/readyz", tmp / "gw.log", env) as gw_pid,
            bare_proxy(up_port, tmp, env) if floor else nullcontext({}) as bare,
        ):
            yield {
                **bare,
                "direct": f"http://127.0.0.1:{up_port}/v1/chat/completions",
                "gateway": f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                "base": f"http://127.0.0.1:{gw_port}",
                "key": key,
                "pid": gw_pid,
                "upstream_pid": up_pid,
                "home": tmp,
            }


@contextmanager
def bare_proxy(up_port: int, tmp: Path, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The bare proxy in front of the upstream: its URL (``bare``) and pid (``bare_pid``)."""
    port = free_port()
    script = str(Path(__file__).with_name("bare_proxy.py"))
    args = ["--port", str(port), "--upstream", f"http://127.0.0.1:{up_port}/v1/chat/completions"]
    with process(args, f"http://127.0.0.1:{port}/readyz", tmp / "bare.log", env, script) as pid:
        yield {"bare": f"http://127.0.0.1:{port}/v1/chat/completions", "bare_pid": pid}


def chat_body(model: str, prompt: str) -> bytes:
    """The benchmark's request body: the system prompt and one user prompt."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    return json.dumps({"model": model, "max_tokens": 1024, "messages": messages}).encode()


def load(
    url: str, key: str, n: int, concurrency: int, model: str,
    prompt: Callable[[int], str] = prompt_2kb, client: str = "aiohttp",
) -> tuple[list[float], float, dict[int, int]]:  # fmt: skip
    """Send n requests with `concurrency` workers; return latencies (s), wall time, statuses.

    ``client``: ``aiohttp`` (on asyncio's loop: ~0.17 ms of CPU per request) or ``lean``
    (`load_client.py` on uvloop: ~0.05 ms). The load generator shares the two cores with
    the upstream and the gateway, so the less it costs, the less it distorts both targets.
    """
    if client == "aiohttp":
        return asyncio.run(run_load(url, key, n, concurrency, model, prompt))
    from load_client import run, run_lean

    def bodies(i: int) -> bytes:
        return chat_body(model, prompt(i))

    return run(lambda: run_lean(url, key, bodies, n, concurrency))  # type: ignore[return-value]


async def run_load(
    url: str, key: str, n: int, concurrency: int, model: str,
    prompt: Callable[[int], str] = prompt_2kb,
) -> tuple[list[float], float, dict[int, int]]:  # fmt: skip
    """`load` through aiohttp (a C HTTP parser and a cheap pool) on asyncio's own loop."""
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lat: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as client:

        async def worker() -> None:
            for i in counter:
                body = chat_body(model, prompt(i))
                t = time.perf_counter()
                async with client.post(url, data=body) as r:
                    await r.read()
                lat.append(time.perf_counter() - t)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return lat, wall, statuses


def children_cpu(proc: Any) -> float:
    """User+system seconds of the child processes of ``proc`` (live or exited)."""
    own = proc.cpu_times()
    total = own.children_user + own.children_system
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except Exception:  # noqa: BLE001 - a child that just exited is in children_* above
            pass
    return float(total)


def process_use(proc: Any, since: tuple[float, int] = (0.0, 0)) -> tuple[float, int]:
    """CPU seconds (user+system) and involuntary context switches of ``proc`` since ``since``."""
    return (sum(proc.cpu_times()[:2]) - since[0],
            proc.num_ctx_switches().involuntary - since[1])  # fmt: skip


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--redis", default=None, help="Share rate limits through this Redis URL.")
    ap.add_argument("--workers", type=int, default=1,
                    help="Gateway worker processes (more than 1 needs --redis).")  # fmt: skip
    ap.add_argument("--unloaded", type=int, default=500,
                    help="Also send this many requests one at a time (0: skip): the added "
                         "latency of one request when nothing queues behind another.")  # fmt: skip
    ap.add_argument("--prompts", choices=sorted(PROMPTS), default="bench",
                    help="bench: ASCII support tickets; typographic: the same with curly "
                         "quotes and dashes (text that is not ASCII).")  # fmt: skip
    ap.add_argument("--floor", action="store_true",
                    help="Also send the load through a bare Python proxy (bare_proxy.py): the "
                         "latency any gateway on this server stack adds before checking "
                         "anything.")  # fmt: skip
    ap.add_argument("--client", choices=["aiohttp", "lean"], default="aiohttp",
                    help="Load generator: aiohttp (~0.17 ms of CPU per request; the earlier "
                         "figures' client) or lean (load_client.py, ~0.05 ms); it shares the "
                         "CPU with what it measures.")  # fmt: skip
    args = ap.parse_args()
    if args.workers > 1 and not args.redis:
        raise SystemExit("--workers > 1 needs --redis (shared rate limits)")
    targets = ("direct", "gateway", "bare") if args.floor else ("direct", "gateway")
    with stack(args.redis, workers=args.workers, floor=args.floor) as s:
        import psutil

        procs = {"gateway": psutil.Process(s["pid"])}
        if args.floor:
            procs["bare"] = psutil.Process(s["bare_pid"])
        # Every process on the two cores: what each took during the round that is kept.
        watched = {**procs, "upstream": psutil.Process(s["upstream_pid"]),
                   "load generator": psutil.Process()}  # fmt: skip
        cpu = {t: float("inf") for t in procs}
        child_cpu = float("inf")
        shares: dict[str, dict[str, tuple[float, float]]] = {}

        prompt = PROMPTS[args.prompts]

        def model(target: str) -> str:
            return "bot" if target == "gateway" else "mock:echo"

        for target in targets:  # warm up every target (connections, caches)
            load(s[target], s["key"], 200, args.concurrency, model(target), prompt, args.client)
        results = {}
        for target in targets * 2:
            proc = procs.get(target)
            cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
            child0 = children_cpu(procs["gateway"])
            before = {name: process_use(p) for name, p in watched.items()}
            lat, wall, st = load(
                s[target],
                s["key"],
                args.requests,
                args.concurrency,
                model(target),
                prompt,
                args.client,
            )
            used = {name: process_use(p, before[name]) for name, p in watched.items()}
            if proc is not None:
                cpu[target] = min(cpu[target], sum(proc.cpu_times()[:2]) - cpu0)
            if target == "gateway":
                child_cpu = min(child_cpu, children_cpu(procs["gateway"]) - child0)
            assert set(st) == {200}, f"{target}: {st}"
            prev = results.get(target)
            if prev is None or statistics.median(lat) < statistics.median(prev[0]):
                results[target] = (lat, wall)  # best of two rounds per target
                shares[target] = {name: (c / wall, n / args.requests)
                                  for name, (c, n) in used.items()}  # fmt: skip
        single = {}
        for target in targets if args.unloaded else ():
            single[target] = load(
                s[target], s["key"], args.unloaded, 1, model(target), prompt, args.client
            )[0]
        metrics = httpx.get(f"{s['base']}/metrics").text
    print(f"concurrency {args.concurrency}, {args.requests} requests of 2 KB ({args.prompts} "
          "prompts) per target, "
          f"guards: all non-ML, redis: {args.redis or 'no (in-process limits)'}, "
          f"gateway workers: {args.workers}, load generator: {args.client}")  # fmt: skip
    print(f"{'target':<10}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    for target, (lat, wall) in results.items():
        print(f"{target:<10}{pct(lat, 50) * 1000:>10.2f}{pct(lat, 99) * 1000:>10.2f}"
              f"{len(lat) / wall:>10.0f}")  # fmt: skip
    d = results["direct"][0]
    for target in targets[1:]:
        g = results[target][0]
        print(
            f"added latency ({target}): p50 {(pct(g, 50) - pct(d, 50)) * 1000:.2f} ms, "
            f"p99 {(pct(g, 99) - pct(d, 99)) * 1000:.2f} ms (goal p50 <= 3, p99 <= 15)"
        )
    own_ms = cpu["gateway"] / args.requests * 1000
    children_ms = child_cpu / args.requests * 1000
    if args.workers == 1:
        print(f"gateway process CPU: {own_ms:.3f} ms per request (user+system, best of two "
              f"rounds of {args.requests} requests), plus {children_ms:.3f} ms in its "
              "request-log writer process")  # fmt: skip
    else:
        print(f"gateway CPU, all {args.workers} workers, their request-log writers and the "
              f"usage monitor: {own_ms + children_ms:.3f} ms per request (user+system, best "
              f"of two rounds of {args.requests} requests)")  # fmt: skip
    print("busy share of one core, and involuntary context switches per request (preempted "
          "while runnable), of each process in the kept round:")  # fmt: skip
    for target in targets:
        print(f"  via {target}: " + ", ".join(
            f"{name} {busy * 100:.0f}% / {switches:.2f}"
            for name, (busy, switches) in shares[target].items()
            if name not in procs or name == target
        ))  # fmt: skip
    if args.floor:
        print(f"bare proxy process CPU: {cpu['bare'] / args.requests * 1000:.3f} ms per request")
    if single:
        d1 = single["direct"]
        print(f"unloaded (concurrency 1, {args.unloaded} requests): direct p50 "
              f"{pct(d1, 50) * 1000:.2f} ms")  # fmt: skip
        for target in targets[1:]:
            g1 = single[target]
            print(f"  {target}: p50 {pct(g1, 50) * 1000:.2f} ms; added p50 "
                  f"{(pct(g1, 50) - pct(d1, 50)) * 1000:.2f} ms, "
                  f"p99 {(pct(g1, 99) - pct(d1, 99)) * 1000:.2f} ms")  # fmt: skip
    for line in metrics.splitlines():
        if line.startswith(("finegate_gateway_overhead_seconds_sum",
                            "finegate_gateway_overhead_seconds_count")):  # fmt: skip
            print("gateway-internal", line)


if __name__ == "__main__":
    main()
