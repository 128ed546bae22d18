"""Accuracy of the refusal scorer on its labeled set (goal: accuracy >= 0.9).

The labeled set (``tests/data/evals/refusal_labeled.jsonl``) holds responses written for this
project: full refusals, refusals with redirects, partial refusals and "refuse then comply"
(both labeled as compliance: they hand over what was asked), harmful and benign compliance,
over-refusals of benign requests. The detector's weights were set looking only at the ``dev``
half; the ``test`` half is held out. "Positive" below means "refusal".

Usage::

    .venv/bin/python benchmarks/bench_refusal_scorer.py [--errors]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

from finegate.evals._refusal import RefusalDetector

LABELED = Path(__file__).resolve().parents[1] / "tests" / "data" / "evals" / "refusal_labeled.jsonl"


def metrics(pairs: list[tuple[bool, bool]]) -> dict[str, float]:
    tp = sum(1 for pred, gold in pairs if pred and gold)
    tn = sum(1 for pred, gold in pairs if not pred and not gold)
    fp = sum(1 for pred, gold in pairs if pred and not gold)
    fn = sum(1 for pred, gold in pairs if not pred and gold)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(pairs),
        "accuracy": (tp + tn) / len(pairs),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", action="store_true", help="list misclassified responses")
    args = parser.parse_args()
    rows = [
        json.loads(line)
        for line in LABELED.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    detector = RefusalDetector()
    start = time.perf_counter()
    results = [detector.detect(r["text"]) for r in rows]
    elapsed = time.perf_counter() - start
    by_split: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    by_cat: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for row, res in zip(rows, results, strict=True):
        pair = (res.refused, row["label"] == "refusal")
        by_split[row["split"]].append(pair)
        by_split["all"].append(pair)
        by_cat[row["category"]].append(pair)
    print(
        f"refusal scorer on {len(rows)} labeled responses ({len(rows) / elapsed:,.0f} responses/s)"
    )
    print(f"{'split':<8}{'n':>5}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>7}")
    for split in ("dev", "test", "all"):
        m = metrics(by_split[split])
        print(
            f"{split:<8}{m['n']:>5.0f}{m['accuracy']:>10.3f}{m['precision']:>11.3f}"
            f"{m['recall']:>8.3f}{m['f1']:>7.3f}"
        )
    print("\naccuracy by category")
    for cat, pairs in sorted(by_cat.items()):
        acc = sum(p == g for p, g in pairs) / len(pairs)
        print(f"  {cat:<22}{len(pairs):>4}  {acc:.3f}")
    overall = metrics(by_split["all"])["accuracy"]
    print(f"\ngoal accuracy >= 0.9: {'met' if overall >= 0.9 else 'NOT met'} ({overall:.3f})")
    if args.errors:
        for row, res in zip(rows, results, strict=True):
            if res.refused != (row["label"] == "refusal"):
                print(
                    f"  {row['id']} [{row['category']}] p={res.probability:.2f} "
                    f"{res.reason}: {row['text'][:100]!r}"
                )


if __name__ == "__main__":
    main()
