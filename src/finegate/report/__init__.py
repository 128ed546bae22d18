"""Reports of runs: one self-contained HTML file, Markdown, JSON, JUnit XML (one test per rule).

::

    from finegate.report import write_report

    write_report(store, [baseline_run, candidate_run], Path("report.html"))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError

if TYPE_CHECKING:
    from finegate.gate.policy import Policy
    from finegate.store.db import Store

__all__ = ["REPORT_FORMATS", "build_report", "render_report", "write_report"]

REPORT_FORMATS = ("html", "md", "json", "junit")
_SUFFIX = {".html": "html", ".htm": "html", ".md": "md", ".json": "json", ".xml": "junit"}


def build_report(
    store: Store, run_ids: Sequence[str], *, policy: Policy | str | None = None
) -> dict[str, Any]:
    """Collect a report's content (see :func:`finegate.report.data.build_report`)."""
    from finegate.report.data import build_report as build

    return build(store, run_ids, policy=policy)


def render_report(data: dict[str, Any], fmt: str) -> str:
    """Render collected report data in a format of :data:`REPORT_FORMATS`."""
    if fmt == "html":
        from finegate.report.html import render_html

        return render_html(data)
    if fmt == "md":
        from finegate.report.text import render_markdown

        return render_markdown(data)
    if fmt == "junit":
        from finegate.report.text import render_junit

        return render_junit(data)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
    raise ConfigError(f"unknown report format {fmt!r}", hint="html, md, json or junit")


def write_report(
    store: Store,
    run_ids: Sequence[str],
    out: Path,
    *,
    fmt: str | None = None,
    policy: Policy | str | None = None,
) -> tuple[Path, str]:
    """Build, render and write a report; keep a copy in the artifact store.

    Args:
        store: The store.
        run_ids: Eval runs (the first is the baseline of the others).
        out: The file to write.
        fmt: ``html``, ``md``, ``json`` or ``junit``; default from the suffix (else html).
        policy: The gate policy whose rules are shown (default: the built-in default).

    Returns:
        The path written and the format.
    """
    kind = fmt or _SUFFIX.get(out.suffix.lower(), "html")
    if kind not in REPORT_FORMATS:
        raise ConfigError(f"unknown report format {kind!r}", hint="html, md, json or junit")
    text = render_report(build_report(store, run_ids, policy=policy), kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    store.artifacts.put(
        out, kind="report", name=out.name, meta={"format": kind, "runs": list(run_ids)}
    )
    return out, kind
