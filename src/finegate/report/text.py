"""Markdown and JUnit XML renderings of a report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finegate.report.html import fmt_rate, fmt_value

__all__ = ["render_junit", "render_markdown"]


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def render_markdown(data: Mapping[str, Any]) -> str:
    """Return the report as GitHub-flavoured Markdown."""
    runs = data["runs"]
    lines = [
        f"# {data['title']}",
        "",
        f"Generated {data['generated_at']} by finegate {data['finegate_version']}; "
        f"policy **{data['policy']['name']}** (sha256 `{data['policy']['hash'][:16]}`).",
        "",
        "## Summary verdict",
        "",
    ]
    for r in runs:
        failed = sum(1 for x in r["gate"]["rules"] if x["verdict"] != "pass")
        verdict = "SHIP" if r["gate"]["passed"] else "DO NOT SHIP"
        prefix = " + system prefix" if r.get("system_prefix") else ""
        lines.append(
            f"- **{verdict}** `{r['run_id']}` {r['model_uri']}{prefix}: {failed} of "
            f"{len(r['gate']['rules'])} rules failed"
        )
    lines += [
        "",
        "## Runs",
        "",
        "| run | model | model hash | suite | suite hash | seed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| `{r['run_id']}` | {_cell(r['model_uri'])} | "
            f"`{(r.get('model_hash') or '')[:16]}` | {_cell(r['suite'])} | "
            f"`{(r.get('suite_hash') or '')[:16]}` | {r.get('seed')} |"
        )
    lines += [
        "",
        "## Per-family results",
        "",
        "| family | kind | metric | " + " | ".join(f"`{r['run_id']}`" for r in runs) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in runs) + " |",
    ]
    fams: dict[str, Any] = {}
    for r in runs:
        for f in r["summary"]["families"]:
            fams.setdefault(f["family"], f)
    for name, f in sorted(fams.items(), key=lambda kv: (kv[1]["kind"] != "attack", kv[0])):
        cells = []
        for r in runs:
            st = next((x for x in r["summary"]["families"] if x["family"] == name), None)
            cells.append("n/a" if st is None else fmt_rate(st["rate"]))
        metric = "ASR" if f["metric"] == "asr" else "pass rate"
        lines.append(f"| {name} | {f['kind']} | {metric} | " + " | ".join(cells) + " |")
    for cmp in data["comparisons"]:
        lines += [
            "",
            f"## Comparison: `{cmp['run_a']}` (A) vs `{cmp['run_b']}` (B)",
            "",
            f"McNemar exact ({cmp['alternative']}), Holm-corrected across families.",
            "",
            "| family | A | B | B - A | worse | better | p | p (Holm) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for f in cmp["families"]:
            diff = "n/a" if f["diff"] is None else f"{100 * f['diff']:+.1f}%"
            lines.append(
                f"| {f['family']} | {fmt_rate(f['a'])} | {fmt_rate(f['b'])} | {diff} "
                f"| {len(f['worse'])} | {len(f['better'])} | {f['p_value']:.4g} | "
                f"{f['p_holm']:.4g} |"
            )
    for r in runs:
        g = r["gate"]
        lines += [
            "",
            f"## Gate: `{r['run_id']}` — {'SHIP' if g['passed'] else 'DO NOT SHIP'}",
            "",
            "| rule | family | value | limit | verdict | reason |",
            "| --- | --- | ---: | ---: | --- | --- |",
        ]
        for x in g["rules"]:
            lines.append(
                f"| {x['rule']} | {x['family']} | {fmt_value(x['value'], x['rule'])} | "
                f"{fmt_value(x['limit'], x['rule'])} | {x['verdict']} | "
                f"{_cell(x['reason'])} |"
            )
    if data["flipped"]:
        lines += ["", "## Flipped cases", ""]
        for f in data["flipped"]:
            lines.append(
                f"- `{f['case_id']}` ({f['family']}): B is {f['direction']} — "
                f"`finegate runs trace {f['run_b']} {f['case_id']}`"
            )
    return "\n".join(lines) + "\n"


def render_junit(data: Mapping[str, Any]) -> str:
    """Return JUnit XML: one test suite per run, one test case per gate rule."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="finegate gate")
    total = failures = 0
    for r in data["runs"]:
        rules = r["gate"]["rules"]
        bad = [x for x in rules if x["verdict"] != "pass"]
        total += len(rules)
        failures += len(bad)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"finegate gate {r['run_id']}",
            tests=str(len(rules)),
            failures=str(len(bad)),
            errors="0",
            skipped="0",
        )
        props = ET.SubElement(suite, "properties")
        for key in ("model_uri", "model_hash", "suite", "suite_hash"):
            ET.SubElement(props, "property", name=key, value=str(r.get(key) or ""))
        ET.SubElement(props, "property", name="policy_hash", value=r["gate"]["policy_hash"])
        for x in rules:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"finegate.gate.{r['run_id']}",
                name=f"{x['family']}::{x['rule']}",
                time="0",
            )
            text = (
                f"value {fmt_value(x['value'], x['rule'])}, limit "
                f"{fmt_value(x['limit'], x['rule'])}: {x['reason']}"
            )
            if x["verdict"] != "pass":
                fail = ET.SubElement(case, "failure", message=text, type="GateRuleFailed")
                fail.text = text
            else:
                ET.SubElement(case, "system-out").text = text
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
