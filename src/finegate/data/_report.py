"""Rendering scan reports: a rich terminal table and a self-contained HTML page."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def print_report(report: dict[str, Any], console: Console, *, review: bool = True) -> None:
    """Print counts per kind and source, malformed records, similarity and the review sample."""
    from rich.table import Table

    console.print(
        f"[bold]{report['records']}[/] records, [bold]{report['flagged']}[/] flagged, "
        f"[bold]{len(report['malformed'])}[/] malformed — policy {report['policy']['name']} "
        f"({report['policy']['hash'][:12]}), engine {report['engine']}"
    )
    sources = sorted(report["counts_by_source"])
    table = Table(title="flagged records per kind", show_lines=False)
    table.add_column("kind")
    table.add_column("total", justify="right")
    for s in sources:
        table.add_column(s, justify="right")
    for kind, n in report["counts"].items():
        table.add_row(
            kind, str(n), *(str(report["counts_by_source"][s].get(kind, "")) for s in sources)
        )
    console.print(table)
    if report["malformed"]:
        mt = Table(title="malformed records (quarantined)")
        for col in ("file", "line", "reason"):
            mt.add_column(col)
        for m in report["malformed"]:
            mt.add_row(m["file"], str(m["line"]), m["reason"])
        console.print(mt)
    sim = report.get("similarity")
    if sim:
        warn = " [red](high: fine-tuning on it may erode guardrails more)[/]" if sim["warn"] else ""
        console.print(
            f"safety-anchor similarity: {sim['close']}/{sim['checked']} records close "
            f"(share {sim['share']:.1%}, 95% CI {sim['share_ci95'][0]:.1%}–"
            f"{sim['share_ci95'][1]:.1%}, threshold {sim['threshold']}){warn}"
        )
    if review and report["review_sample"]:
        rt = Table(title="review sample")
        for col in ("record", "source", "trust", "flags"):
            rt.add_column(col)
        for r in report["review_sample"]:
            rt.add_row(r["record"], r["source"], r["trust"], ", ".join(r["flags"]) or "-")
        console.print(rt)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.sev-high,.sev-critical{color:#b00}
.sev-medium{color:#a60}code{font-size:90%}
"""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page of the report (values already masked in the report)."""
    e = html.escape
    sources = sorted(report["counts_by_source"])
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>finegate data scan</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Data scan — {e(report['policy']['name'])}</h1>",
        f"<p>{report['records']} records, {report['flagged']} flagged, "
        f"{len(report['malformed'])} malformed. Policy hash <code>{report['policy']['hash']}"
        f"</code>; {e(report['tool'])}; engine {e(report['engine'])}.</p>",
        "<h2>Flagged records per kind</h2>",
        _table(
            ["kind", "total", *sources],
            [
                [e(k), str(n), *(str(report["counts_by_source"][s].get(k, "")) for s in sources)]
                for k, n in report["counts"].items()
            ],
        ),
        "<h2>Sources</h2>",
        _table(
            ["name", "trust", "class", "owner", "origin", "approver"],
            [
                [
                    e(str(s.get(k, "")))
                    for k in ("name", "trust", "data_class", "owner", "origin", "approver")
                ]
                for s in report["sources"]
            ],
        ),  # fmt: skip
    ]
    if report["malformed"]:
        parts += [
            "<h2>Malformed records (quarantined)</h2>",
            _table(["file", "line", "reason"],
                   [[e(m["file"]), str(m["line"]), e(m["reason"])] for m in report["malformed"]]),
        ]  # fmt: skip
    sim = report.get("similarity")
    if sim:
        parts.append(
            f"<h2>Safety-anchor similarity</h2><p>{sim['close']} of {sim['checked']} records "
            f"close (share {sim['share']:.1%}, 95% CI {sim['share_ci95'][0]:.1%}–"
            f"{sim['share_ci95'][1]:.1%}, threshold {sim['threshold']}).</p>"
        )
    for title, key in (("Review sample", "review_sample"), ("All flagged records",
                                                              "flagged_records")):  # fmt: skip
        rows = []
        for r in report[key]:
            fs = "<br>".join(
                f"<span class='sev-{f['severity']}'>{e(f['kind'])}</span> "
                f"{e(f['detail'])} <code>{e(f['text'][:80])}</code>"
                for f in r["findings"]
            )
            rows.append([e(r["record"]), e(r["source"]), e(r["trust"]), fs])
        parts += [f"<h2>{title}</h2>", _table(["record", "source", "trust", "findings"], rows)]
    parts.append("</body></html>")
    return "\n".join(parts)
