"""HTTP overhead of the ``openai:`` backend versus a bare httpx loop.

Starts ``finegate serve-model mock:echo`` as a separate process on 127.0.0.1 (so client and
server do not share an event loop or a core's time slices more than the OS makes them), then
sends the same N requests at the same concurrency twice per round: once through the harness
(``load_backend("openai:...").generate``: wire conversion, validation, semaphore, retries
armed) and once through a bare ``httpx.AsyncClient`` loop. Rounds alternate the order and the
median wall time of each is reported. Goal: harness <= 1.10x bare.

Usage:
    .venv/bin/python benchmarks/bench_http.py [--requests 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from finegate.models import BackendOptions, ChatRequest, GenerationParams, load_backend

GOAL = 1.10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, log: Any) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-c",
        "from finegate.cli.main import run; run()",
        "serve-model",
        "mock:echo",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve-model exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve-model did not start within 60 s")


def prompts(n: int) -> list[str]:
    return [f"Request {i}: summarize the quarterly report in three sentences." for i in range(n)]


Timing = tuple[float, float]  # (wall seconds, client CPU seconds)


async def run_harness(base: str, texts: list[str], concurrency: int, max_tokens: int) -> Timing:
    params = GenerationParams(max_tokens=max_tokens)
    requests = [ChatRequest.from_prompt(t, params=params) for t in texts]
    start, cpu = time.perf_counter(), time.process_time()
    backend = load_backend(
        f"openai:{base}#mock:echo", BackendOptions(concurrency=concurrency, api_key_env=None)
    )
    out = await backend.generate(requests)
    await backend.aclose()
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    bad = [r for r, t in zip(out, texts, strict=True) if r.error or r.text != t]
    if bad:
        raise SystemExit(f"harness got {len(bad)} wrong answers, e.g. {bad[0]}")
    return elapsed


async def run_bare(base: str, texts: list[str], concurrency: int, max_tokens: int) -> Timing:
    url = f"{base}/chat/completions"
    start, cpu = time.perf_counter(), time.process_time()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(text: str) -> str:
            body = {
                "model": "mock:echo",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": text}],
            }
            async with semaphore:
                resp = await client.post(url, json=body)
            resp.raise_for_status()
            return str(resp.json()["choices"][0]["message"]["content"])

        out = await asyncio.gather(*(one(t) for t in texts))
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    if out != texts:
        raise SystemExit("bare loop got wrong answers")
    return elapsed


async def measure(base: str, args: argparse.Namespace) -> tuple[list[Timing], list[Timing]]:
    texts = prompts(args.requests)
    # Warm both paths (imports, server-side code paths) before timing anything.
    await run_harness(base, texts[:32], args.concurrency, args.max_tokens)
    await run_bare(base, texts[:32], args.concurrency, args.max_tokens)
    harness: list[Timing] = []
    bare: list[Timing] = []
    for i in range(args.repeats):
        # Alternate which goes first so slow drift in machine load hits both equally.
        order = [("harness", run_harness), ("bare", run_bare)]
        if i % 2:
            order.reverse()
        for name, fn in order:
            elapsed = await fn(base, texts, args.concurrency, args.max_tokens)
            (harness if name == "harness" else bare).append(elapsed)
    return harness, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--repeats", type=int, default=7, help="measurements of each (median)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request")
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(port, log)
        try:
            harness, bare = asyncio.run(measure(f"http://127.0.0.1:{port}/v1", args))
        finally:
            proc.terminate()
            proc.wait(15)
    h = statistics.median(w for w, _ in harness)
    b = statistics.median(w for w, _ in bare)
    # Each round runs both back to back, so the per-round ratio cancels slow drift in load
    # from other processes; its median is the most robust figure on a shared machine.
    paired = statistics.median(hw / bw for (hw, _), (bw, _) in zip(harness, bare, strict=True))
    h_cpu = statistics.median(c for _, c in harness)
    b_cpu = statistics.median(c for _, c in bare)
    ratio = h / b
    print(
        f"bench_http: {args.requests} requests, concurrency {args.concurrency}, "
        f"server: finegate serve-model mock:echo (separate process), "
        f"median of {args.repeats}, {os.cpu_count()} CPUs"
    )
    print(
        f"  harness (openai: backend)  {h:.3f} s wall  {h_cpu:.3f} s client CPU   runs: "
        + " ".join(f"{w:.3f}" for w, _ in harness)
    )
    print(
        f"  bare httpx loop            {b:.3f} s wall  {b_cpu:.3f} s client CPU   runs: "
        + " ".join(f"{w:.3f}" for w, _ in bare)
    )
    print(
        f"  ratio harness/bare         {ratio:.3f}x wall (median of paired rounds "
        f"{paired:.3f}x, client CPU {h_cpu / b_cpu:.3f}x)  goal <= {GOAL:.2f}x: "
        f"{'met' if ratio <= GOAL else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
