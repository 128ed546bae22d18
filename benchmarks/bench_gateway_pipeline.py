"""CPU of the gateway's chat pipeline alone: `Gateway.chat` in-process, no HTTP on either side.

The same configuration as ``bench_gateway.py`` (every non-ML guard, usage monitoring, the
request log through its writer process) with an in-process ``mock:echo`` upstream, so the
figure is the guards, limits, monitoring and logging per request without the server, the
upstream hop or a load generator sharing the CPU: steadier than the HTTP benchmark on a
noisy machine, and the part of the gateway's CPU its own code decides.

    python benchmarks/bench_gateway_pipeline.py                   # the HTTP benchmark's prompts
    python benchmarks/bench_gateway_pipeline.py --prompts varied  # prompts that are not alike
    python benchmarks/bench_gateway_pipeline.py --prompts typographic  # curly quotes, dashes

``bench`` prompts are the six support sentences of ``bench_gateway.py`` rotated: to the usage
monitor they are near-duplicates (one incident, then the signal is not computed again within
the window). ``varied`` prompts are 300 random words and an e-mail address each: traffic that
is not probing, for which every signal is computed on every request. ``typographic`` prompts
are the ``bench`` ones written as people and models write: curly apostrophes and quotes, em
dashes (echoed back, so the answers have them too): text that is not ASCII, the slower path
of normalization, scanning and the leak checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_gateway import SYSTEM, gateway_config, prompt_2kb, typographic_2kb  # noqa: E402


def varied_prompts(n: int, seed: int = 1) -> list[str]:
    """Prompts of 300 random words (from 3,000 made-up ones) and one e-mail address."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(3000)]
    tail = " contact jane.roe@acme-mail.com"
    return [" ".join(rng.choices(vocab, k=300)) + tail for _ in range(n)]


def typographic_prompts(n: int) -> list[str]:
    """The ``bench`` prompts with curly quotes, apostrophes and em dashes."""
    return [typographic_2kb(i) for i in range(n)]


def make_prompts(kind: str, n: int) -> list[str]:
    """``n`` prompts of one kind: ``bench``, ``typographic`` or ``varied``."""
    if kind == "bench":
        return [prompt_2kb(i) for i in range(n)]
    if kind == "typographic":
        return typographic_prompts(n)
    return varied_prompts(n)


async def measure(
    prompts: list[str], rounds: int, *, pseudonym_key_env: str | None = None,
    around: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> float:  # fmt: skip
    """Best CPU seconds per request over ``rounds`` passes of all prompts.

    ``around`` is entered for the rounds only (after the warm-up); ``pseudonym_key_env``
    names the variable holding a fixed pseudonym key (default: a random key).
    """
    from finegate.gateway import create_key
    from finegate.gateway.config import GatewayConfig
    from finegate.gateway.service import Gateway
    from finegate.store.db import open_store

    cfg = gateway_config(1, None)
    cfg["pseudonym_key_env"] = pseudonym_key_env
    cfg["upstreams"][0]["uri"] = "mock:echo"
    store = open_store()
    _, key = create_key(store, "default", name="bench")
    gw = Gateway(GatewayConfig.model_validate(cfg), store)
    await gw.start()
    bodies = [
        json.dumps({"model": "bot", "max_tokens": 1024, "messages": [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]}).encode()
        for p in prompts
    ]  # fmt: skip
    auth = f"Bearer {key}"
    try:
        for body in bodies[:300]:  # warm up: caches, compiled prefilters, the writer process
            await gw.chat(body, auth)
        best = float("inf")
        with around():
            for _ in range(rounds):
                t = time.process_time()
                for body in bodies:
                    reply = await gw.chat(body, auth)
                    assert reply.status == 200, reply.body
                best = min(best, (time.process_time() - t) / len(bodies))
    finally:
        await gw.aclose()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", choices=["bench", "varied", "typographic"], default="bench")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ["FINEGATE_HOME"] = tempfile.mkdtemp(prefix="fg-pipeline-")
    os.environ.pop("FINEGATE_DB", None)
    best = asyncio.run(measure(make_prompts(args.prompts, args.requests), args.rounds))
    print(f"chat pipeline CPU per request ({args.prompts} prompts, best of {args.rounds} rounds "
          f"of {args.requests}): {best * 1000:.3f} ms (gateway process; the request-log "
          "writer process not included)")  # fmt: skip


if __name__ == "__main__":
    main()
