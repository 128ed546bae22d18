"""One self-contained HTML report: inline CSS, inline SVG plots, no script, no network."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from finegate.report.plots import family_bars_svg

__all__ = ["fmt_rate", "fmt_value", "render_html"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d1d1f;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem;width:100%}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f4f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17723a;font-weight:600}.fail{color:#b3261e;font-weight:700}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;font-weight:700;
margin-right:.5rem}.ship{background:#dff3e4;color:#17723a}.noship{background:#fbe3e1;
color:#b3261e}.muted{color:#666;font-size:.85rem}code{font-size:.8rem;background:#f4f5f7;
padding:0 .2rem;border-radius:.2rem}details{margin:.3rem 0;border:1px solid #e3e3e3;
border-radius:.3rem;padding:.3rem .6rem}summary{cursor:pointer}pre{white-space:pre-wrap;
word-break:break-word;background:#fafafa;padding:.4rem;font-size:.8rem;margin:.2rem 0}
.plot svg{max-width:100%;height:auto}
"""


def fmt_rate(rate: Mapping[str, Any] | None) -> str:
    """Return ``"62.5% [30.6, 86.3]"`` for a rate dict, ``"n/a"`` when unmeasured."""
    if not rate or rate.get("rate") is None:
        return "n/a"
    return f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def fmt_value(value: Any, rule: str) -> str:
    """Format a rule's value or limit: counts as integers, shares as percentages."""
    if value is None:
        return "n/a"
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and ("cases" in rule or "families" in rule or "present" in rule)
    ):
        return str(value)
    sign = "+" if "increase" in rule and float(value) >= 0 else ""
    return f"{sign}{100 * float(value):.1f}%"


def _e(value: Any) -> str:
    return escape(str(value) if value is not None else "")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], num: Sequence[int] = ()) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append(
            "<tr>"
            + "".join(
                f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _verdict(v: str) -> str:
    return f'<span class="{"pass" if v == "pass" else "fail"}">{_e(v)}</span>'


def _runs_section(data: Mapping[str, Any]) -> str:
    rows = []
    for i, r in enumerate(data["runs"], 1):
        prefix = (
            f"yes (sha256 <code>{_e(r['system_prefix_sha256'][:12])}</code>)"
            if r.get("system_prefix")
            else "none"
        )
        params = r.get("params") or {}
        rows.append(
            [
                str(i),
                f"<code>{_e(r['run_id'])}</code>",
                _e(r["model_uri"]),
                f"<code>{_e((r.get('model_hash') or '')[:16])}</code>",
                prefix,
                f"{_e(r['suite'])} v{_e(r.get('suite_version'))}",
                f"<code>{_e((r.get('suite_hash') or '')[:16])}</code>",
                _e(r.get("seed")),
                _e(
                    f"temperature {params.get('temperature')}, max_tokens "
                    f"{params.get('max_tokens')}, repeat {r.get('repeat')}"
                ),
                _e(r["status"]),
            ]
        )
    return "<h2>Runs</h2>" + _table(
        [
            "#",
            "run",
            "model",
            "model hash",
            "system prefix",
            "suite",
            "suite hash",
            "seed",
            "decoding",
            "status",
        ],
        rows,
    )


def _families_section(data: Mapping[str, Any]) -> str:
    runs = data["runs"]
    fams: dict[str, dict[str, Any]] = {}
    for r in runs:
        for f in r["summary"]["families"]:
            fams.setdefault(f["family"], f)
    rows = []
    for name, f in sorted(fams.items(), key=lambda kv: (kv[1]["kind"] != "attack", kv[0])):
        cells = [_e(name), _e(f["kind"]), "ASR" if f["metric"] == "asr" else "pass rate"]
        for r in runs:
            st = next((x for x in r["summary"]["families"] if x["family"] == name), None)
            cells.append(
                "n/a"
                if st is None
                else f"{fmt_rate(st['rate'])} ({st['rate']['k']}/{st['rate']['n']})"
            )
        rows.append(cells)
    for label, key in (
        ("refusal on harmful", "refusal_on_harmful"),
        ("over-refusal on benign", "over_refusal_on_benign"),
    ):
        rows.append(
            [f"<b>{label}</b>", "", "rate", *(fmt_rate(r["summary"].get(key)) for r in runs)]
        )
    head = ["family", "kind", "metric", *(f"{i}. {r['run_id']}" for i, r in enumerate(runs, 1))]
    svg = family_bars_svg(runs)
    return (
        "<h2>Per-family results</h2>"
        + (f'<div class="plot">{svg}</div>' if svg else "")
        + _table(head, rows, num=tuple(range(3, 3 + len(runs))))
    )


def _comparison_section(data: Mapping[str, Any]) -> str:
    parts = []
    for cmp in data["comparisons"]:
        rows = []
        pooled = cmp.get("pooled_attacks")
        for f in [*cmp["families"], *([pooled] if pooled else [])]:
            diff = "n/a" if f["diff"] is None else f"{100 * f['diff']:+.1f}%"
            rows.append(
                [
                    "all attack families (pooled)" if f is pooled else _e(f["family"]),
                    _e(f["kind"]),
                    "ASR" if f["metric"] == "asr" else "pass rate",
                    fmt_rate(f["a"]),
                    fmt_rate(f["b"]),
                    diff,
                    str(f["pairs"]),
                    str(len(f["worse"])),
                    str(len(f["better"])),
                    f"{f['p_value']:.4g}",
                    "(one test)" if f is pooled else f"{f['p_holm']:.4g}",
                ]
            )
        ra, rb = cmp["refusal_on_harmful"]
        oa, ob = cmp["over_refusal_on_benign"]
        parts.append(
            f"<h3>A <code>{_e(cmp['run_a'])}</code> vs B <code>{_e(cmp['run_b'])}</code></h3>"
            f'<p class="muted">McNemar exact test ({_e(cmp["alternative"])}) on paired '
            "outcomes, Holm-corrected across families; the pooled row tests every attack "
            "case at once. Worse = pass in A, fail in B.</p>"
            + _table(
                [
                    "family",
                    "kind",
                    "metric",
                    "A [95% CI]",
                    "B [95% CI]",
                    "B - A",
                    "pairs",
                    "worse",
                    "better",
                    "p",
                    "p (Holm)",
                ],
                rows,
                num=(3, 4, 5, 6, 7, 8, 9, 10),
            )
            + f"<p>Refusal on harmful prompts: A {fmt_rate(ra)} &rarr; B {fmt_rate(rb)}. "
            f"Over-refusal on benign prompts: A {fmt_rate(oa)} &rarr; B {fmt_rate(ob)}.</p>"
            + "".join(f'<p class="fail">warning: {_e(w)}</p>' for w in cmp["warnings"])
        )
    return "<h2>Paired comparison</h2>" + "".join(parts) if parts else ""


def _trace_html(trace: Mapping[str, Any] | None, label: str) -> str:
    if trace is None:
        return f"<p>{_e(label)}: no result</p>"
    msgs = "".join(
        f"<pre><b>{_e(m.get('role'))}</b>: {_e(m.get('content') or '')}</pre>"
        for m in trace["messages"]
    )
    scores = "".join(
        f"<li>{_verdict(s.get('verdict', ''))} {_e(s.get('scorer'))}/"
        f"{_e(s.get('expectation'))}: {_e(s.get('reason'))}</li>"
        for s in trace["scores"]
    )
    return (
        f"<p><b>{_e(label)}</b>: {_verdict(trace['verdict'])} &mdash; "
        f"{_e(trace['reason'])}</p>{msgs}<ul>{scores}</ul>"
    )


def _flipped_section(data: Mapping[str, Any]) -> str:
    if not data["flipped"]:
        return (
            "<h2>Flipped cases</h2><p>No case changed verdict.</p>" if data["comparisons"] else ""
        )
    items = []
    for f in data["flipped"]:
        items.append(
            f"<details><summary><code>{_e(f['case_id'])}</code> ({_e(f['family'])}): "
            f'B is <span class="{"fail" if f["direction"] == "worse" else "pass"}">'
            f"{_e(f['direction'])}</span> &mdash; <code>finegate runs trace {_e(f['run_b'])} "
            f"{_e(f['case_id'])}</code></summary>"
            + _trace_html(f["a"], f"A {f['run_a']}")
            + _trace_html(f["b"], f"B {f['run_b']}")
            + "</details>"
        )
    return (
        f'<h2>Flipped cases</h2><p class="muted">At most {data["max_flipped"]} per '
        "comparison, with both traces.</p>" + "".join(items)
    )


def _gate_section(data: Mapping[str, Any]) -> str:
    parts = []
    for r in data["runs"]:
        g = r["gate"]
        rows = [
            [
                _e(x["rule"]),
                _e(x["family"]),
                fmt_value(x["value"], x["rule"]),
                fmt_value(x["limit"], x["rule"]),
                _verdict(x["verdict"]),
                _e(x["reason"]),
            ]
            for x in g["rules"]
        ]
        rec = g.get("recorded")
        note = (
            f"decision {rec['decision_id']} recorded {rec['recorded_at']} by "
            f"{_e(rec['recorded_by'])}"
            if rec
            else "evaluated for this report (not a recorded decision)"
        )
        base = (
            f", baseline <code>{_e(g['baseline_run_id'])}</code>"
            if g.get("baseline_run_id")
            else ""
        )
        parts.append(
            f"<h3><code>{_e(r['run_id'])}</code>: {_badge(g['passed'])}</h3>"
            f'<p class="muted">{note}{base}</p>'
            + _table(["rule", "family", "value", "limit", "verdict", "reason"], rows, num=(2, 3))
        )
    pol = data["policy"]
    return (
        f"<h2>Gate rules</h2><p>Policy <b>{_e(pol['name'])}</b> v{_e(pol['version'])} "
        f"(sha256 <code>{_e(pol['hash'][:16])}</code>): {_e(pol['description'])}</p>"
        + "".join(parts)
    )


def _badge(passed: bool) -> str:
    return (
        '<span class="badge ship">SHIP</span>'
        if passed
        else '<span class="badge noship">DO NOT SHIP</span>'
    )


def _identities(data: Mapping[str, Any]) -> str:
    parts = []
    for r in data["runs"]:
        ident = json.dumps(r.get("model"), indent=2, ensure_ascii=False)
        prefix = (
            f"<p>System prefix:</p><pre>{_e(r['system_prefix'])}</pre>"
            if r.get("system_prefix")
            else ""
        )
        parts.append(
            f"<details><summary><code>{_e(r['run_id'])}</code> "
            f"{_e(r['model_uri'])}</summary><pre>{_e(ident)}</pre>{prefix}</details>"
        )
    return "<h2>Model identities</h2>" + "".join(parts)


def render_html(data: Mapping[str, Any]) -> str:
    """Return the report as one HTML document that needs no network to view."""
    summary = "".join(
        f"<p>{_badge(r['gate']['passed'])}<code>{_e(r['run_id'])}</code> "
        f"{_e(r['model_uri'])}{' + system prefix' if r.get('system_prefix') else ''}: "
        f"{sum(1 for x in r['gate']['rules'] if x['verdict'] != 'pass')} of "
        f"{len(r['gate']['rules'])} rules failed</p>"
        for r in data["runs"]
    )
    body = (
        f'<h1>{_e(data["title"])}</h1><p class="muted">generated '
        f"{_e(data['generated_at'])} by finegate {_e(data['finegate_version'])}; "
        f"baseline <code>{_e(data['baseline_run_id'])}</code></p>"
        f"<h2>Summary verdict</h2>{summary}"
        + _runs_section(data)
        + _families_section(data)
        + _comparison_section(data)
        + _gate_section(data)
        + _flipped_section(data)
        + _identities(data)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(data['title'])}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
