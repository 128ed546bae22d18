"""The lifecycle report: the eval report of base, A and B with a lifecycle section on top."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finegate.store import Store
    from finegate.tune.lifecycle import DemoResult

__all__ = ["family_rows", "write_lifecycle_report"]


def family_rows(
    store: Store, runs: dict[str, str], decisions: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per family: base/A/B rates and each variant's paired comparison with the base.

    p-values are one-sided (is the variant worse?) McNemar exact tests, Holm-corrected across
    the families; the last row (``all-attacks``) pools every attack family's pairs. With the
    gate ``decisions``, a row is marked significant when the gate's paired rule for it failed
    (the gate shares alpha between the pooled test and the families).
    """
    from finegate.evals.compare import compare_runs

    cmp = {
        lb: compare_runs(store, runs["base"], runs[lb], alternative="greater") for lb in ("A", "B")
    }
    rows: list[dict[str, Any]] = []
    pooled = [cmp["A"].pooled_attacks] if cmp["A"].pooled_attacks is not None else []
    for fam in [*cmp["A"].families, *pooled]:
        fb = cmp["B"].family(fam.family)
        row: dict[str, Any] = {
            "family": fam.family,
            "kind": fam.kind,
            "metric": fam.metric,
            "base": fam.a.rate,
            "n": fam.pairs,
        }
        for lb, fc in (("A", fam), ("B", fb)):
            if fc is None:
                continue
            row[lb] = fc.b.rate
            row[f"{lb}_p"] = fc.p_value
            row[f"{lb}_p_holm"] = fc.p_holm
            row[f"{lb}_worse"] = len(fc.worse)
            row[f"{lb}_better"] = len(fc.better)
            if decisions is not None:
                relative = decisions[lb].get("relative_failures") or []
                row[f"{lb}_worse_significant"] = any(
                    f == f"{rule}/{fam.family}"
                    for f in relative
                    for rule in ("max_asr_increase", "max_over_refusal_increase")
                )
            else:
                row[f"{lb}_worse_significant"] = bool(fc.worse) and fc.p_holm < 0.05
        rows.append(row)
    return rows


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}%"


def _lifecycle_html(
    result: DemoResult,
    data: dict[str, Any],
    training: dict[str, Any],
    decisions: dict[str, dict[str, Any]],
) -> str:
    e = html.escape
    parts = ['<section id="lifecycle"><h2>Lifecycle</h2>']
    if result.simulated:
        parts.append(
            '<p class="fail"><b>Quick mode (simulated):</b> no model was trained; '
            "see the notes.</p>"
        )
    parts.append("<h3>Stages</h3><table><tr><th>stage</th><th>seconds</th><th>outcome</th></tr>")
    for s in result.stages:
        parts.append(
            f"<tr><td>{e(s.name)}</td><td class='num'>{s.seconds:.1f}</td>"
            f"<td>{e(s.detail)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h3>Data</h3><ul>"
        + "".join(f"<li>{e(k)}: <code>{e(str(v))}</code></li>" for k, v in data.items())
        + "</ul>"
    )
    if training:
        parts.append(
            "<h3>Training records</h3><table><tr><th>variant</th><th>recipe</th>"
            "<th>run</th><th>steps</th><th>loss first → last</th><th>adapter</th>"
            "<th>alerts</th></tr>"
        )
        for lb, t in training.items():
            loss = f"{t['loss_first'][0]:.3f} → {t['loss_last'][0]:.3f}" if t["loss_first"] else "-"
            parts.append(
                f"<tr><td>{lb}</td><td>{e(t['recipe'])}</td><td><code>{e(t['run_id'])}</code>"
                f"</td><td class='num'>{t['steps']}</td><td>{loss}</td>"
                f"<td><code>{e(t['adapter_sha256'][:16])}</code></td>"
                f"<td>{len(t['alerts'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h3>Per family: base vs A vs B (one-sided paired McNemar, Holm)</h3><table>"
        "<tr><th>family</th><th>metric</th><th>n</th><th>base</th><th>A</th>"
        "<th>p(A worse)</th><th>B</th><th>p(B worse)</th></tr>"
    )
    for r in result.families:

        def cell(lb: str, row: dict[str, Any] = r) -> str:
            sig = " <b>significant</b>" if row.get(f"{lb}_worse_significant") else ""
            return (
                f"<td>{_pct(row.get(lb))}</td><td>{row.get(f'{lb}_p', 1):.3g} "
                f"(Holm {row.get(f'{lb}_p_holm', 1):.3g}){sig}</td>"
            )

        parts.append(
            f"<tr><td>{e(r['family'])}</td><td>{e(r['metric'])}</td>"
            f"<td class='num'>{r['n']}</td><td>{_pct(r['base'])}</td>"
            f"{cell('A')}{cell('B')}</tr>"
        )
    parts.append("</table><h3>Gate (default policy, versus the base)</h3><ul>")
    for lb, d in decisions.items():
        verdict = "SHIP" if d["passed"] else "DO NOT SHIP"
        new = d.get("new_failures") or []
        why = (
            ""
            if d["passed"]
            else " — failed: "
            + ", ".join(d["failed"])
            + (
                f"; not failed by the base: {', '.join(new)}"
                if new
                else "; all failed by the base too"
            )
        )
        parts.append(f"<li>variant {lb}: <b>{verdict}</b>{e(why)}</li>")
    parts.append("</ul>")
    reg = ", ".join(result.registered) or "nothing"
    parts.append(f"<p>Registered: {e(reg)}. Base model: <code>{e(result.base_uri)}</code>.</p>")
    parts.append(
        "<h3>Notes</h3><ul>" + "".join(f"<li>{e(n)}</li>" for n in result.notes) + "</ul></section>"
    )
    return "".join(parts)


def write_lifecycle_report(
    store: Store,
    result: DemoResult,
    data: dict[str, Any],
    training: dict[str, Any],
    decisions: dict[str, dict[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """Write the one HTML report of the lifecycle; keep a copy in the artifact store."""
    from finegate.report import build_report
    from finegate.report.html import render_html

    runs = [result.runs["base"], result.runs["A"], result.runs["B"]]
    report = build_report(store, runs)
    report["title"] = "finegate lifecycle demo" + (
        " (quick, simulated)" if result.simulated else ""
    )
    page = render_html(report)
    section = _lifecycle_html(result, data, training, decisions)
    head, sep, rest = page.partition("</h1>")
    page = head + sep + section + rest if sep else page.replace("<body>", "<body>" + section, 1)
    out = result.report_path
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    sha = store.artifacts.put(out, kind="report", name=out.name, meta={"runs": runs})
    return f"{out} (artifact {sha[:12]})", {"path": str(out)}
