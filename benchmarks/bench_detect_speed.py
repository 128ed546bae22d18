"""Throughput (MB/s) of the full non-ML detector set, versus LLM Guard and Presidio.

Run: python benchmarks/bench_detect_speed.py [--clean-mb 50] [--dense-mb 5]
     [--baseline-python .venv-bench/bin/python] [--baseline-seconds 20]
     [--no-baselines] [--engine hyperscan|python|both] [--repeat N]

Rates are wall-clock (median of --repeat runs); the CPU-time rate of the process is printed
too, which is steadier on a shared machine.

(a) clean chat-like text (no findings) and (b) text dense with findings (the labeled corpus
snippets), scanned message by message in this single process. When a baseline interpreter
with llm-guard / presidio-analyzer exists (they are not finegate dependencies; install them in
a separate venv), the same messages are scanned there with LLM Guard's Secrets,
InvisibleText and Regex input scanners and Presidio's pattern recognizers, for a fixed time
budget each, and the ratios are printed. Missing baselines are reported, never estimated.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "detect" / "corpus.jsonl"

WORDS = (
    "the a we you I they it this that and or but so because when if then with for to of "
    "in on at by from about into over after before meeting project plan release team "
    "customer report update draft review design feedback budget deadline week today "
    "tomorrow morning afternoon lunch coffee idea question answer issue bug fix test build "
    "deploy server page button color font layout chart number sales growth quarter goal "
    "think know want need like love hate see look make take give send share write read "
    "call meet start finish move change keep help try ask tell really just very quite "
    "maybe probably definitely great good fine bad nice new old big small quick slow "
    "happy sorry thanks please hello hi hey okay sure yes no"
).split()
NAMES = ("alex", "sam", "jordan", "priya", "marco", "lena", "kai", "noor")


def clean_messages(total_bytes: int, seed: int = 7) -> list[str]:
    """Chat-like messages without secrets, PII, URLs or injection (numbers and times allowed)."""
    rnd = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < total_bytes:
        n = rnd.randint(8, 90)
        words = [rnd.choice(WORDS) for _ in range(n)]
        if rnd.random() < 0.3:
            words.insert(rnd.randrange(n), str(rnd.randint(2, 500)))
        if rnd.random() < 0.1:
            words.insert(rnd.randrange(n), f"{rnd.randint(1, 12)}:{rnd.randint(10, 59)}pm")
        if rnd.random() < 0.02:
            words.insert(rnd.randrange(n), rnd.choice(["café", "naïve", "👍", "🙂", "déjà"]))
        text = f"{rnd.choice(NAMES)}: " + " ".join(words).capitalize() + rnd.choice(".!?")
        out.append(text)
        size += len(text.encode())
    return out


def dense_messages(total_bytes: int) -> list[str]:
    """Corpus snippets (nearly all contain findings), repeated to the requested size."""
    base = [json.loads(line)["text"] for line in CORPUS.open(encoding="utf-8")]
    out: list[str] = []
    size = 0
    i = 0
    while size < total_bytes:
        t = base[i % len(base)]
        out.append(t)
        size += len(t.encode())
        i += 1
    return out


def as_documents(msgs: list[str], size: int = 16_000) -> list[str]:
    """Join messages into documents of about ``size`` bytes (dataset records, web pages)."""
    docs: list[str] = []
    cur: list[str] = []
    n = 0
    for m in msgs:
        cur.append(m)
        n += len(m) + 2
        if n >= size:
            docs.append("\n\n".join(cur))
            cur, n = [], 0
    if cur:
        docs.append("\n\n".join(cur))
    return docs


def mb(msgs: list[str]) -> float:
    return sum(len(m.encode()) for m in msgs) / 1e6


def time_finegate(msgs: list[str], engine: str) -> tuple[float, float, int]:
    """Scan ``msgs``; return (wall seconds, CPU seconds of this process, findings)."""
    from finegate.detect import Scanner

    scanner = Scanner(engine=engine)  # type: ignore[arg-type]
    scanner.scan("warm-up AKIA2E0A8F3B244C9986 jane@acme-mail.com " + "x " * 2000)
    t0, c0 = time.perf_counter(), time.process_time()
    found = sum(len(f) for f in scanner.scan_batch(msgs))
    return time.perf_counter() - t0, time.process_time() - c0, found


BASELINE = r"""
import json, sys, time, os, logging
os.environ.setdefault("TLDEXTRACT_CACHE", "/tmp/tldextract-cache")
logging.disable(logging.CRITICAL)
path, budget = sys.argv[1], float(sys.argv[2])
msgs = json.load(open(path))
res = {}
def run(name, fn):
    done = 0; t0 = time.perf_counter()
    for m in msgs:
        fn(m); done += len(m.encode())
        if time.perf_counter() - t0 > budget: break
    dt = time.perf_counter() - t0
    res[name] = {"mb": done / 1e6, "seconds": dt, "mb_s": done / 1e6 / dt}
try:
    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
except Exception:
    pass
try:
    from llm_guard.input_scanners import Secrets, InvisibleText, Regex
    s = Secrets(redact_mode="all"); run("llm_guard.Secrets", s.scan)
    it = InvisibleText(); run("llm_guard.InvisibleText", it.scan)
    rx = Regex(patterns=[r"Bearer [A-Za-z0-9\-._~+/]+",
                         r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
                         r"\b\d{3}-\d{2}-\d{4}\b", r"\b(?:\d[ -]*?){13,16}\b"], is_blocked=True)
    run("llm_guard.Regex", rx.scan)
except Exception as exc:
    res["llm_guard_error"] = f"{type(exc).__name__}: {exc}"
try:
    from presidio_analyzer.predefined_recognizers import (EmailRecognizer, CreditCardRecognizer,
        IbanRecognizer, UsSsnRecognizer, IpRecognizer, UrlRecognizer, PhoneRecognizer)
    recs = [EmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), UsSsnRecognizer(),
            IpRecognizer(), UrlRecognizer(), PhoneRecognizer()]
    ents = [r.supported_entities for r in recs]
    def presidio(m):
        for r, e in zip(recs, ents):
            r.analyze(m, e, None)
    run("presidio.pattern_recognizers", presidio)
except Exception as exc:
    res["presidio_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(res))
"""


def run_baselines(python: Path, msgs: list[str], seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "msgs.json"
        data.write_text(json.dumps(msgs))
        script = Path(tmp) / "baseline.py"
        script.write_text(BASELINE)
        proc = subprocess.run(
            [str(python), str(script), str(data), str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds * 10 + 300,
        )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean-mb", type=float, default=50.0)
    ap.add_argument("--dense-mb", type=float, default=5.0)
    ap.add_argument("--baseline-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    ap.add_argument("--baseline-seconds", type=float, default=20.0)
    ap.add_argument(
        "--no-baselines", action="store_true", help="skip the LLM Guard / Presidio columns"
    )
    ap.add_argument(
        "--engine",
        choices=("both", "hyperscan", "python"),
        default="both",
        help="finegate prefilter engine(s) to time (default: both when hyperscan is installed)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="time each case N times and report the median"
    )
    args = ap.parse_args()
    from finegate.detect import hyperscan_available

    clean = clean_messages(int(args.clean_mb * 1e6))
    dense = dense_messages(int(args.dense_mb * 1e6))
    print(
        f"clean: {len(clean)} messages, {mb(clean):.1f} MB; dense: {len(dense)} messages, "
        f"{mb(dense):.1f} MB (one process, message by message)"
    )
    engines = ["hyperscan", "python"] if hyperscan_available() else ["python"]
    if args.engine != "both":
        engines = [args.engine]
    results: dict[str, dict[str, float]] = {}
    for engine in engines:
        for name, msgs in (
            ("clean", clean),
            ("dense", dense),
            ("dense-docs", as_documents(dense)),
        ):
            runs = [time_finegate(msgs, engine) for _ in range(max(1, args.repeat))]
            mid = len(runs) // 2
            dt = sorted(r[0] for r in runs)[mid]
            cpu = sorted(r[1] for r in runs)[mid]
            found = runs[0][2]
            rate = mb(msgs) / dt
            results.setdefault(engine, {})[name] = rate
            print(
                f"finegate[{engine:9}] {name:10}: {rate:7.1f} MB/s  ({dt:.2f}s, {found} findings;"
                f" CPU time {mb(msgs) / cpu:.1f} MB/s)"
            )
    best = results[engines[0]]
    print(
        f"goals: clean >= 20 MB/s: {'met' if best['clean'] >= 20 else 'NOT met'}; "
        f"dense >= 5 MB/s: messages {'met' if best['dense'] >= 5 else 'NOT met'}, "
        f"16 KB documents {'met' if best['dense-docs'] >= 5 else 'NOT met'}"
    )
    if args.no_baselines:
        print("baselines: skipped (--no-baselines)")
        return
    if not args.baseline_python.exists():
        print(
            f"baselines: not run - no interpreter at {args.baseline_python} (create a venv "
            "there with: pip install llm-guard presidio-analyzer)"
        )
        return
    for name, msgs in (("clean", clean), ("dense", dense)):
        print(f"baselines on {name} text ({args.baseline_seconds:.0f}s budget each):")
        res = run_baselines(args.baseline_python, msgs, args.baseline_seconds)
        for key, val in res.items():
            if isinstance(val, dict):
                ratio = best[name] / val["mb_s"] if val["mb_s"] else float("inf")
                print(
                    f"  {key:32} {val['mb_s']:9.3f} MB/s  (scanned {val['mb']:.2f} MB) -> "
                    f"finegate (all detectors) / baseline = {ratio:,.2f}x"
                )
            else:
                print(f"  {key}: not available ({val})")
        sec = res.get("llm_guard.Secrets")
        if isinstance(sec, dict):
            ratio = best[name] / sec["mb_s"]
            print(
                f"  goal >= 50x LLM Guard Secrets on {name}: {'met' if ratio >= 50 else 'NOT met'}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
