"""The ``core`` suite on the embedded model: batched vs one at a time vs HTTP (concurrency 8).

Three runs of the same cases, each into a fresh store with the call cache off, greedy:

1. ``local batched``: ``hf:embedded`` in this process, batches of ``--batch-size``.
2. ``local one-at-a-time``: the same backend, one request per call.
3. ``http c=8``: ``finegate serve-model hf:embedded`` in a subprocess (micro-batching
   server), evaluated through ``openai:http://127.0.0.1:PORT/v1#hf:embedded`` with 8
   requests in flight.

Prints cases/s, CPU seconds of this process (local modes), the ratios, and how many verdicts
agree with the batched run (greedy decoding, so they should, up to rare float differences
between batch shapes).
Goal: local batched >= 4x one-at-a-time.

Usage::

    .venv/bin/python benchmarks/bench_eval.py [--limit N] [--skip-http] [--skip-sequential]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finegate.evals import EvalConfig, EvalRun, Suite, load_suite, run_eval  # noqa: E402
from finegate.models import BackendOptions, GenerationParams, load_backend  # noqa: E402
from finegate.models.types import ModelBackend  # noqa: E402
from finegate.store import Store  # noqa: E402

CPU: dict[str, float] = {}


def balanced(suite: Suite, limit: int | None) -> Suite:
    """Take ``limit`` cases round-robin over the families, so every family is represented."""
    if not limit or limit >= len(suite.cases):
        return suite
    by_family: dict[str, list[Any]] = defaultdict(list)
    for case in suite.cases:
        by_family[case.family].append(case)
    picked: list[Any] = []
    while len(picked) < limit:
        for cases in by_family.values():
            if cases and len(picked) < limit:
                picked.append(cases.pop(0))
    return suite.model_copy(update={"cases": picked})


async def timed(
    name: str, backend: ModelBackend, suite: Suite, config: EvalConfig, home: Path
) -> tuple[float, EvalRun]:
    store = Store(f"sqlite:///{home / f'{name}.db'}", home=home / name)
    start, cpu0 = time.perf_counter(), time.process_time()
    run = await run_eval(backend, suite, store=store, config=config)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    store.close()
    errors = sum(1 for r in run.results if r.verdict == "error")
    tokens = sum(r.completion_tokens for r in run.results)
    cpu_text = "n/a (server)" if name.startswith("http") else f"{cpu:.1f}"
    CPU[name] = cpu
    print(
        f"{name:<22}{len(run.results):>6}{elapsed:>9.1f}{len(run.results) / elapsed:>10.2f}"
        f"{tokens / elapsed:>10.1f}{errors:>8}{cpu_text:>14}",
        flush=True,
    )
    return elapsed, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, batch: int, log: Any) -> subprocess.Popen[bytes]:
    import httpx

    cmd = [
        sys.executable,
        "-c",
        "from finegate.cli.main import run; run()",
        "serve-model",
        "hf:embedded",
        "--port",
        str(port),
        "--max-batch",
        str(batch),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve-model exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("serve-model did not start within 300 s")


def agreement(a: EvalRun, b: EvalRun) -> str:
    va = {r.case_id: r.verdict for r in a.results}
    vb = {r.case_id: r.verdict for r in b.results}
    same = sum(1 for k in va if vb.get(k) == va[k])
    return f"{same}/{len(va)}"


async def main_async(args: argparse.Namespace) -> None:
    suite = balanced(load_suite(args.suite), args.limit)
    params = GenerationParams(max_tokens=args.max_tokens)
    print(
        f"suite {args.suite}: {len(suite.cases)} cases, "
        f"{len({c.family for c in suite.cases})} families, max_tokens {args.max_tokens}, "
        f"cache off, greedy"
    )
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        local = load_backend("hf:embedded", BackendOptions(batch_size=args.batch_size))
        print(f"model loaded in {time.perf_counter() - t0:.1f} s\n")
        print(
            f"{'mode':<22}{'cases':>6}{'wall s':>9}{'cases/s':>10}{'tok/s':>10}{'errors':>8}"
            f"{'CPU s':>14}"
        )
        batched_s, batched = await timed(
            "local batched",
            local,
            suite,
            EvalConfig(params=params, batch_size=args.batch_size, concurrency=1, use_cache=False),
            home,
        )
        results = {"local batched": (batched_s, batched)}
        if not args.skip_sequential:
            results["local one-at-a-time"] = await timed(
                "local one-at-a-time",
                local,
                suite,
                EvalConfig(params=params, batch_size=1, concurrency=1, use_cache=False),
                home,
            )
        await local.aclose()
        if not args.skip_http:
            port = free_port()
            with (home / "server.log").open("wb") as log:
                server = start_server(port, args.batch_size, log)
                try:
                    remote = load_backend(
                        f"openai:http://127.0.0.1:{port}/v1#hf:embedded",
                        BackendOptions(concurrency=8, api_key_env=None, timeout_s=600),
                    )
                    results["http c=8"] = await timed(
                        "http c=8",
                        remote,
                        suite,
                        EvalConfig(params=params, batch_size=1, concurrency=8, use_cache=False),
                        home,
                    )
                    await remote.aclose()
                finally:
                    server.terminate()
                    server.wait(30)
        print()
        for name, (elapsed, run) in results.items():
            if name == "local batched":
                continue
            print(
                f"local batched vs {name}: {elapsed / batched_s:.2f}x faster; "
                f"verdicts agree {agreement(batched, run)}"
            )
        if "local one-at-a-time" in results:
            ratio = results["local one-at-a-time"][0] / batched_s
            cpu_ratio = CPU["local one-at-a-time"] / max(CPU["local batched"], 1e-9)
            print(
                f"CPU time per case, one-at-a-time / batched: {cpu_ratio:.2f}x "
                f"(less sensitive to other load on the machine than wall time)"
            )
            print(
                f"goal local batched >= 4x one-at-a-time: "
                f"{'met' if ratio >= 4 else 'NOT met'} ({ratio:.2f}x wall)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="core", help="suite to run (default core)")
    parser.add_argument(
        "--limit", type=int, default=None, help="run only N cases (round-robin over families)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="local batch size (the eval default)"
    )
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens per reply")
    parser.add_argument("--skip-http", action="store_true", help="skip the serve-model run")
    parser.add_argument("--skip-sequential", action="store_true", help="skip the one-at-a-time run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
