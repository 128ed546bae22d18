"""Time `import finegate` and `finegate --help` in fresh processes (goal: < 0.5 s each)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

GOAL_S = 0.5


def median_wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    baseline = median_wall([sys.executable, "-c", "pass"], args.repeat)
    rows = [
        ("import finegate", [sys.executable, "-c", "import finegate"]),
        (
            "import finegate.models, store",
            [sys.executable, "-c", "import finegate.models, finegate.store"],
        ),
        ("finegate --help", [sys.executable, "-m", "finegate", "--help"]),
    ]
    print(f"python startup (baseline): {baseline * 1000:.0f} ms")
    for name, cmd in rows:
        wall = median_wall(cmd, args.repeat)
        verdict = "ok" if wall < GOAL_S else "OVER GOAL"
        print(
            f"{name:32s} {wall * 1000:6.0f} ms  ({wall / baseline:.1f}x bare python, "
            f"goal < {GOAL_S * 1000:.0f} ms: {verdict})"
        )


if __name__ == "__main__":
    main()
