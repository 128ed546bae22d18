"""LoRA training throughput on the embedded model: optimizer steps/s and trained tokens/s.

Trains a rank-8 LoRA (q/k/v/o projections) on the cleaned-support-style chat records for a
fixed number of steps through `finegate.tune.train` (the same code path as `finegate tune`,
checkpoints and validation off) and reports steps/s, examples/s and tokens/s (tokens that
enter the forward pass, padding excluded), with the machine's load average so numbers taken
on a shared machine can be judged.

Run:
    python benchmarks/bench_tune.py                   # 12 steps, batch 4
    python benchmarks/bench_tune.py --steps 30 --batch-size 8 --seq-len 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a JSON line of results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FINEGATE_HOME"] = tmp
        from importlib import resources

        from finegate.models.embedded import ensure_embedded_dir
        from finegate.store.db import open_store
        from finegate.tune._data import encode_chat, load_chat_file
        from finegate.tune.config import load_tune_config
        from finegate.tune.trainer import train

        src = resources.files("finegate.resources").joinpath(
            "datasets/support_demo/support_tickets.jsonl"
        )
        rows = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
        data = Path(tmp) / "train.jsonl"
        good = []
        for line in rows:
            try:
                msgs = json.loads(line)["messages"]
                if any(m["role"] == "assistant" for m in msgs):
                    good.append(json.dumps({"messages": msgs}))
            except (ValueError, KeyError, TypeError):
                continue
        data.write_text("\n".join(good) + "\n", encoding="utf-8")
        cfg = load_tune_config(
            data={
                "data_file": str(data),
                "output_dir": str(Path(tmp) / "out"),
                "max_steps": args.steps,
                "batch_size": args.batch_size,
                "max_seq_len": args.seq_len,
                "lora_r": args.rank,
                "validation_fraction": 0.0,
                "eval_steps": 0,
                "save_steps": 10_000,
                "safety_mix_ratio": 0.0,
            },
            overrides=([f"lora_r={args.rank}"] if args.rank > 16 else []),
        )
        ensure_embedded_dir()  # conversion is a one-time cost, not training
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(ensure_embedded_dir()[0]))
        lengths = [
            len(encode_chat(tok, c, max_len=args.seq_len)["input_ids"])
            for c in load_chat_file(data)
        ]
        stamps: list[float] = []
        t0 = time.perf_counter()
        result = train(
            cfg,
            open_store(),
            allow_unscanned=True,
            progress=lambda s, m, loss: stamps.append(time.perf_counter()),
        )
        total = time.perf_counter() - t0
    # Steps after the first exclude model loading and the first step's warm-up.
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1) if len(stamps) > 1 else total
    mean_len = sum(lengths) / len(lengths)
    out = {
        "steps": result.global_step,
        "batch_size": args.batch_size,
        "lora_r": args.rank,
        "mean_tokens_per_example": round(mean_len, 1),
        "wall_s_total": round(total, 1),
        "s_per_step": round(steady, 3),
        "steps_per_s": round(1 / steady, 3),
        "examples_per_s": round(args.batch_size / steady, 2),
        "tokens_per_s": round(args.batch_size * mean_len / steady, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
