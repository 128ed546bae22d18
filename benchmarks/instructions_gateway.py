"""Instructions the gateway executes per request, counted by callgrind: a steady A/B measure.

Timing on a shared two-core VM moves by ±10% from run to run, more than most single changes
to the gateway are worth. Instruction counts do not: this starts the same stack as
``bench_gateway.py`` (``serve-model mock:echo`` upstream, every non-ML guard on) with the
gateway process under ``valgrind --tool=callgrind``, warms it up with instrumentation off,
then counts only while ``--requests`` requests go through (concurrency 16) and prints the
instructions per request. Repeated runs agree within about 1%. ``--pipeline`` counts
`Gateway.chat` in-process instead (no HTTP, an in-process upstream), like
``bench_gateway_pipeline.py``.

    python benchmarks/instructions_gateway.py                       # 400 requests, ASCII
    python benchmarks/instructions_gateway.py --prompts typographic
    python benchmarks/instructions_gateway.py --pipeline --prompts varied
    callgrind_annotate /tmp/fg-instr-*/callgrind.out                # where they went

Instructions are not time (a cache miss or a system call costs far more than its count), so
confirm a gain with the timed benchmarks; but a change that does not lower the count rarely
makes the gateway faster. The pseudonym key is fixed (``FINEGATE_PSEUDONYM_KEY``): the
placeholders in the answers then are the same in every run, and so is the work they cause.
Needs valgrind (``apt-get install valgrind``); under it the gateway runs ~50 times slower.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from bench_gateway import PROMPTS, free_port, gateway_config, run_load, wait_up  # noqa: E402

_KEY_ENV = "FINEGATE_BENCH_PSEUDONYM_KEY"


def _config(upstream_port: int) -> dict[str, object]:
    cfg = gateway_config(upstream_port, None)
    cfg["pseudonym_key_env"] = _KEY_ENV
    return cfg


def _collected(log: Path) -> int:
    found = re.findall(r"Collected : (\d+)", log.read_text())
    if not found:
        raise SystemExit(f"callgrind reported no count:\n{log.read_text()[-2000:]}")
    return int(found[-1])


def count_http(tmp: Path, env: dict[str, str], requests: int, prompts: str) -> int:
    """Instructions of the gateway process over ``requests`` requests through it."""
    from finegate.gateway import create_key
    from finegate.store.db import open_store

    up, gw = free_port(), free_port()
    cli = [sys.executable, "-c", "from finegate.cli.main import run; run()"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    upstream = subprocess.Popen(
        [*cli, "serve-model", "mock:echo", "--port", str(up), "--batch-window-ms", "0",
         "--max-batch", "64", "--log-level", "warning"], env=env, **quiet,
    )  # fmt: skip
    cfg = tmp / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(_config(up)))
    _, key = create_key(open_store(), "default", name="bench")
    log = tmp / "callgrind.log"
    with log.open("w") as fh:
        gateway = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={tmp / 'callgrind.out'}", *cli, "gateway", "--config",
             str(cfg), "--port", str(gw), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip
    try:
        wait_up(f"http://127.0.0.1:{gw}/readyz", gateway, log, timeout=600)  # valgrind: slow
        url = f"http://127.0.0.1:{gw}/v1/chat/completions"
        prompt = PROMPTS[prompts]
        print("warming up (instrumentation off) ...", flush=True)
        asyncio.run(run_load(url, key, 300, 16, "bot", prompt))
        _instrument(gateway.pid, "on")
        print(f"counting {requests} requests ...", flush=True)
        _, _, statuses = asyncio.run(run_load(url, key, requests, 16, "bot", prompt))
        _instrument(gateway.pid, "off")
        if set(statuses) != {200}:
            raise SystemExit(f"answers other than 200: {statuses}")
    finally:
        gateway.terminate()
        gateway.wait(120)
        upstream.terminate()
        upstream.wait(15)
    return _collected(log)


def _instrument(pid: int, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


_PIPELINE = """
import asyncio, os, subprocess, sys
from contextlib import contextmanager
sys.path.insert(0, {bench!r})
from bench_gateway_pipeline import make_prompts, measure

@contextmanager
def counting():
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True)
    yield
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True)

prompts = make_prompts({prompts!r}, {requests})
asyncio.run(measure(prompts, 1, pseudonym_key_env={key_env!r}, around=counting))
"""


def count_pipeline(tmp: Path, env: dict[str, str], requests: int, prompts: str) -> int:
    """Instructions of ``requests`` calls of `Gateway.chat` in-process (no HTTP).

    The first 300 of the prompts also warm the gateway up, uncounted.
    """
    script = tmp / "pipeline.py"
    script.write_text(
        _PIPELINE.format(
            bench=str(Path(__file__).parent), requests=requests, prompts=prompts,
            key_env=_KEY_ENV,
        )
    )  # fmt: skip
    log = tmp / "callgrind.log"
    with log.open("w") as fh:
        rc = subprocess.call(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={tmp / 'callgrind.out'}", sys.executable, str(script)],
            env=env, stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip
    if rc != 0:
        raise SystemExit(f"the pipeline run failed ({rc}):\n{log.read_text()[-2000:]}")
    return _collected(log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="Requests counted (after 300 "
                    "uncounted ones).")  # fmt: skip
    ap.add_argument("--prompts", choices=["bench", "typographic", "varied"], default="bench")
    ap.add_argument("--pipeline", action="store_true",
                    help="Count Gateway.chat in-process (no HTTP) instead of the gateway "
                         "process behind its port.")  # fmt: skip
    args = ap.parse_args()
    if args.prompts == "varied" and not args.pipeline:
        raise SystemExit("--prompts varied needs --pipeline")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install valgrind)")
    tmp = Path(tempfile.mkdtemp(prefix="fg-instr-"))
    env = {**os.environ, "FINEGATE_HOME": str(tmp / "home"), "PYTHONHASHSEED": "0",
           _KEY_ENV: "instructions-benchmark-fixed-key"}  # fmt: skip
    env.pop("FINEGATE_DB", None)
    os.environ.update({k: env[k] for k in ("FINEGATE_HOME", _KEY_ENV)})
    os.environ.pop("FINEGATE_DB", None)
    count = (count_pipeline if args.pipeline else count_http)(tmp, env, args.requests, args.prompts)
    where = "Gateway.chat in-process" if args.pipeline else "the gateway process, HTTP included"
    print(f"{count / args.requests:,.0f} instructions per request ({where}; {args.prompts} "
          f"prompts, {args.requests} requests counted)")  # fmt: skip
    print(f"callgrind output: {tmp / 'callgrind.out'} (callgrind_annotate it)")


if __name__ == "__main__":
    main()
