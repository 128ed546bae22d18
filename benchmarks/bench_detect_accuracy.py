"""Precision, recall and F1 of finegate's detectors on the labeled corpus.

Run: python benchmarks/bench_detect_accuracy.py [--engine python] [--errors KIND]

The corpus (tests/data/detect/corpus.jsonl, built by make_corpus.py) holds snippets in
realistic contexts with planted items and hard negatives. A finding counts as a true
positive when it overlaps a label of the same group; a label is recalled when some finding of
its group overlaps it. Groups: ``secret``, each structured PII kind, ``pii.person``,
``pii.street_address``, ``injection``, ``hidden``, ``network.url``, ``network.internal``,
``malware``, ``leak``, ``obedience``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "detect"
CORPUS = DATA / "corpus.jsonl"
HELDOUT = DATA / "heldout.jsonl"
STRUCTURED_PII = (
    "pii.email",
    "pii.phone",
    "pii.credit_card",
    "pii.iban",
    "pii.ssn",
    "pii.ip_address",
)
WHOLE_CATEGORIES = ("secret", "injection", "hidden", "malware", "leak", "obedience")


def group_of(kind: str) -> str:
    """Map a finding kind or a label kind to its evaluation group."""
    cat = kind.split(".", 1)[0]
    if cat in WHOLE_CATEGORIES:
        return cat
    if kind in ("network.internal_url", "network.internal_host", "network.private_ip"):
        return "network.internal"
    return kind


def load(path: Path = CORPUS) -> list[dict[str, Any]]:
    """Read the corpus records."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(records: list[dict[str, Any]], engine: str = "auto") -> dict[str, Any]:
    """Scan every record and return per-group counts and scores plus error examples."""
    from finegate.detect import Scanner

    base = Scanner(engine=engine)  # type: ignore[arg-type]
    tp_pred: dict[str, int] = defaultdict(int)
    n_pred: dict[str, int] = defaultdict(int)
    hit_lab: dict[str, int] = defaultdict(int)
    n_lab: dict[str, int] = defaultdict(int)
    errors: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        scanner = base
        if rec.get("config"):
            scanner = Scanner(options={"leakage": rec["config"]}, engine=engine)  # type: ignore[arg-type]
        found = scanner.scan(rec["text"], channel=rec["channel"])
        labels = [(group_of(lab["kind"]), lab["start"], lab["end"]) for lab in rec["labels"]]
        for f in found:
            g = group_of(f.kind)
            n_pred[g] += 1
            if any(lg == g and f.start < le and ls < f.end for lg, ls, le in labels):
                tp_pred[g] += 1
            else:
                errors[g].append(f"FP {rec['id']}: {f.kind} {f.text[:70]!r}")
        for lg, ls, le in labels:
            n_lab[lg] += 1
            if any(group_of(f.kind) == lg and f.start < le and ls < f.end for f in found):
                hit_lab[lg] += 1
            else:
                errors[lg].append(f"FN {rec['id']}: {rec['text'][ls:le][:70]!r}")
    scores: dict[str, dict[str, float]] = {}

    def score(name: str, groups: tuple[str, ...]) -> None:
        tp = sum(tp_pred[g] for g in groups)
        npred = sum(n_pred[g] for g in groups)
        hit = sum(hit_lab[g] for g in groups)
        nlab = sum(n_lab[g] for g in groups)
        p = tp / npred if npred else 1.0
        r = hit / nlab if nlab else 1.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        scores[name] = {"precision": p, "recall": r, "f1": f1, "labels": nlab, "predicted": npred}

    for g in sorted(set(n_lab) | set(n_pred)):
        score(g, (g,))
    score("pii (structured)", STRUCTURED_PII)
    return {"scores": scores, "errors": errors, "engine": base.engine}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="auto", choices=("auto", "hyperscan", "python"))
    ap.add_argument("--errors", default=None, help="print FP/FN examples for this group")
    ap.add_argument(
        "--heldout",
        action="store_true",
        help="score the hand-written held-out set (never used for tuning)",
    )
    args = ap.parse_args()
    records = load(HELDOUT if args.heldout else CORPUS)
    t0 = time.perf_counter()
    result = evaluate(records, args.engine)
    dt = time.perf_counter() - t0
    n_labels = sum(len(r["labels"]) for r in records)
    print(
        f"corpus: {len(records)} snippets, {n_labels} labels; engine={result['engine']}; {dt:.2f}s"
    )
    print(f"{'group':<22}{'P':>7}{'R':>7}{'F1':>7}{'labels':>8}{'found':>7}")
    for name, s in result["scores"].items():
        print(
            f"{name:<22}{s['precision']:>7.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}"
            f"{s['labels']:>8}{s['predicted']:>7}"
        )
    if args.errors:
        for line in result["errors"].get(args.errors, []):
            print(line)
    goals = {"secret": 0.95, "pii (structured)": 0.95, "injection": 0.90, "hidden": 0.90}
    missed = [g for g, goal in goals.items() if result["scores"][g]["f1"] < goal]
    print(
        "goals (F1): secrets/structured PII >= 0.95, injection/hidden >= 0.90: "
        + ("met" if not missed else f"NOT met for {', '.join(missed)}")
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
