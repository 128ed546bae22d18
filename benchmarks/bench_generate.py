"""Batched vs one-at-a-time generation on the embedded model (``hf:embedded``).

Runs the same prompts twice in one process: once as a single ``generate`` call (the backend
batches them) and once one prompt per call. Decoding is greedy, so both runs produce the same
tokens and the tokens/s figures compare like with like. Goal: batched >= 5x sequential.

Usage::

    .venv/bin/python benchmarks/bench_generate.py [--batch 16] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from finegate.models import BackendOptions, ChatRequest, GenerationParams, load_backend

TOPICS = [
    "the history of the bicycle",
    "how volcanoes form",
    "why the sky is blue",
    "the life cycle of a butterfly",
    "how a compiler works",
    "the rules of chess",
    "the water cycle",
    "how bread rises",
    "the first moon landing",
    "how vaccines work",
    "the invention of the printing press",
    "how bees make honey",
    "what causes tides",
    "how a rainbow forms",
    "the Roman aqueducts",
    "how trains run on electricity",
]


def prompts(n: int) -> list[str]:
    # Long-answer prompts, so most rows run to the token limit and little compute is wasted
    # on rows that already stopped.
    return [f"Write a detailed essay about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="number of prompts (batch size)")
    parser.add_argument("--new-tokens", type=int, default=64, help="max new tokens per prompt")
    parser.add_argument("--uri", default="hf:embedded", help="model URI to benchmark")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate batched and sequential runs this many times and report "
        "the fastest of each (steadier figures on a shared machine)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    started = time.perf_counter()
    backend = load_backend(args.uri, BackendOptions(batch_size=args.batch))
    print(
        f"model: {args.uri}  load: {time.perf_counter() - started:.1f}s  "
        f"details: {dict(backend.identity().details)}"
    )
    # Timings on a shared machine swing with other load; print it so figures can be judged.
    print(f"cpus: {os.cpu_count()}  load average at start: {os.getloadavg()[0]:.2f}")
    params = GenerationParams(max_tokens=args.new_tokens)
    requests = [ChatRequest.from_prompt(p, params=params) for p in prompts(args.batch)]

    async def run() -> None:
        await backend.generate(requests[:2])  # warm-up: first-call allocations and kernels
        best_b = best_s = float("inf")
        for n in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            batched = await backend.generate(requests)
            batched_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            sequential = [(await backend.generate([r]))[0] for r in requests]
            sequential_s = time.perf_counter() - t0

            b_tokens = sum(r.completion_tokens for r in batched)
            s_tokens = sum(r.completion_tokens for r in sequential)
            same = sum(a.text == b.text for a, b in zip(batched, sequential, strict=True))
            b_rate, s_rate = b_tokens / batched_s, s_tokens / sequential_s
            best_b, best_s = min(best_b, batched_s), min(best_s, sequential_s)
            print(f"round {n}:")
            print(f"  batched:    {b_tokens} tokens in {batched_s:.2f}s = {b_rate:.1f} tok/s")
            print(f"  sequential: {s_tokens} tokens in {sequential_s:.2f}s = {s_rate:.1f} tok/s")
            print(f"  ratio:      {b_rate / s_rate:.2f}x (goal >= 5x)")
            print(f"  identical texts batched vs sequential: {same}/{len(requests)}")
        if args.rounds > 1:
            b_rate, s_rate = b_tokens / best_b, s_tokens / best_s
            print(
                f"best of {args.rounds}: batched {b_rate:.1f} tok/s, sequential "
                f"{s_rate:.1f} tok/s, ratio {b_rate / s_rate:.2f}x"
            )
        await backend.aclose()

    asyncio.run(run())


if __name__ == "__main__":
    main()
