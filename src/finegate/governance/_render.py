"""Render an :class:`EvidenceDoc` as Markdown or as one self-contained HTML file."""

from __future__ import annotations

import html

from finegate.governance._evidence import Block, EvidenceDoc

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1b1b1b}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.map{color:#555;font-size:.85em;margin:-.6em 0 .8em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.none{color:#a00;font-style:italic}
"""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> list[str]:
    if block.kind == "none":
        return [f"_{block.text}_", ""]
    if block.kind == "text":
        return [block.text, ""]
    if block.kind == "kv":
        return [f"- **{_md_cell(k)}**: {_md_cell(v)}" for k, v in block.rows] + [""]
    lines = [
        "| " + " | ".join(_md_cell(h) for h in block.headers) + " |",
        "|" + "---|" * len(block.headers),
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
    return [*lines, ""]


def to_markdown(doc: EvidenceDoc) -> str:
    """Return the document as Markdown."""
    out = [
        f"# {doc.title}",
        "",
        f"Generated {doc.generated_at} by finegate from recorded facts only; a section "
        "with nothing recorded behind it says so.",
        "",
    ]
    for sec in doc.sections:
        out += [
            f"## {sec.title}",
            "",
            f"*EU AI Act: {sec.eu_ai_act} · NIST AI RMF: {sec.nist_ai_rmf}*",
            "",
        ]
        for block in sec.blocks:
            out += _md_block(block)
    return "\n".join(out).rstrip() + "\n"


def _html_block(block: Block) -> str:
    e = html.escape
    if block.kind == "none":
        return f'<p class="none">{e(block.text)}</p>'
    if block.kind == "text":
        return f"<p>{e(block.text)}</p>"
    if block.kind == "kv":
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in block.rows)
        return f"<table>{rows}</table>"
    head = "".join(f"<th>{e(h)}</th>" for h in block.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(doc: EvidenceDoc) -> str:
    """Return the document as one self-contained HTML page (no network needed)."""
    e = html.escape
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(doc.title)}"
        f"</title><style>{_CSS}</style></head><body><h1>{e(doc.title)}</h1>",
        f"<p>Generated {e(doc.generated_at)} by finegate from recorded facts only; a "
        "section with nothing recorded behind it says so.</p>",
    ]
    for sec in doc.sections:
        parts.append(
            f"<section><h2>{e(sec.title)}</h2><p class=map>EU AI Act: "
            f"{e(sec.eu_ai_act)} · NIST AI RMF: {e(sec.nist_ai_rmf)}</p>"
        )
        parts += [_html_block(b) for b in sec.blocks]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(doc: EvidenceDoc, fmt: str = "md") -> str:
    """Render as ``md`` or ``html``."""
    from finegate.errors import ConfigError

    if fmt == "md":
        return to_markdown(doc)
    if fmt == "html":
        return to_html(doc)
    raise ConfigError(f"unknown format {fmt!r}", hint="md or html")
