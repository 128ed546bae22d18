"""Plots for reports: matplotlib figures rendered to inline SVG (text kept as text)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["family_bars_svg"]

COLORS = ("#4062bb", "#e07a1f", "#3a9d5d", "#b53a3a", "#7b4fa6", "#59a5b5")


def _panel(ax: Any, families: list[str], runs: Sequence[Mapping[str, Any]], title: str) -> None:
    height = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        stats = {f["family"]: f for f in run["summary"]["families"]}
        ys, xs, lo, hi = [], [], [], []
        for j, fam in enumerate(families):
            rate = (stats.get(fam) or {}).get("rate") or {}
            if rate.get("rate") is None:
                continue
            ys.append(j - 0.4 + height * (i + 0.5))
            xs.append(100 * rate["rate"])
            lo.append(100 * (rate["rate"] - rate["low"]))
            hi.append(100 * (rate["high"] - rate["rate"]))
        ax.barh(
            ys,
            xs,
            height=height * 0.9,
            color=COLORS[i % len(COLORS)],
            xerr=[lo, hi],
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333"},
            label=f"{i + 1}. {run['run_id']}",
        )
    ax.set_yticks(range(len(families)))
    ax.set_yticklabels(families, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% with 95% Wilson interval", fontsize=8)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="x", color="#ddd", linewidth=0.5)
    ax.set_axisbelow(True)
    ax.tick_params(axis="x", labelsize=7)


def family_bars_svg(runs: Sequence[Mapping[str, Any]]) -> str:
    """Return an SVG of per-family bars (ASR for attack families, pass rate otherwise).

    Each run gets one bar per family, side by side, with its 95% interval as an error bar.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    kinds: dict[str, str] = {}
    for run in runs:
        for fam in run["summary"]["families"]:
            kinds.setdefault(fam["family"], fam["kind"])
    attack = sorted(f for f, k in kinds.items() if k == "attack")
    other = sorted(f for f, k in kinds.items() if k != "attack")
    panels = [
        (fams, title)
        for fams, title in (
            (attack, "Attack success rate per family (lower is better)"),
            (other, "Pass rate per family (higher is better)"),
        )
        if fams
    ]
    if not panels:
        return ""
    rows = sum(len(f) for f, _ in panels)
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "finegate", "font.family": "sans-serif"}
    ):
        fig, axes = plt.subplots(
            len(panels),
            1,
            figsize=(7.5, 1.2 + 0.22 * rows * max(1, len(runs)) ** 0.5 + 0.6),
            squeeze=False,
            gridspec_kw={"height_ratios": [len(f) + 1 for f, _ in panels]},
        )
        for ax, (fams, title) in zip(axes[:, 0], panels, strict=True):
            _panel(ax, fams, runs, title)
        axes[0, 0].legend(fontsize=7, loc="lower right", frameon=False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    svg = buf.getvalue()
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)  # tool credits, no data
    return svg[svg.find("<svg") :]
