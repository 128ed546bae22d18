"""The post-incident report: what happened, when, who acted, and whether the trail verifies."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from finegate.store.db import Store

__all__ = ["incident_report"]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def incident_report(store: Store, incident_id: int) -> str:
    """Return the post-incident document (Markdown) of one incident.

    It holds the summary, the timeline (every step with who and when), the monitor findings,
    the audit events recorded for the incident and the audit chain's verification result.
    """
    from finegate.governance import list_events, verify_chain
    from finegate.monitor._incidents import get_incident

    inc = get_incident(store, incident_id)
    lines = [
        f"# Incident #{inc.id}: {inc.title}",
        "",
        f"- **Kind:** {inc.kind}",
        f"- **Severity:** {inc.severity}",
        f"- **Status:** {inc.status}",
        f"- **Source:** {inc.source}" + (f" ({inc.source_ref})" if inc.source_ref else ""),
        f"- **Model:** {inc.model_name or '-'}"
        + (f" (target `{inc.target}`)" if inc.target else ""),
        f"- **Opened:** {inc.opened_at.isoformat()} by {inc.opened_by}",
        "- **Closed:** "
        + (f"{inc.closed_at.isoformat()} by {inc.closed_by}" if inc.closed_at else "not yet"),
        "",
        "## Timeline",
        "",
        "| when | who | step | details |",
        "| --- | --- | --- | --- |",
    ]
    for t in inc.timeline:
        detail = ", ".join(f"{k}={v}" for k, v in t.details.items() if k != "findings")
        lines.append(f"| {t.at.isoformat()} | {_cell(t.actor)} | {t.action} | {_cell(detail)} |")
    findings = inc.details.get("findings") or []
    if findings:
        lines += ["", "## Findings", ""]
        for f in findings:
            if f.get("type") == "family":
                lines.append(
                    f"- family **{f['family']}** ({f['metric']}): baseline {f['baseline']} -> "
                    f"current {f['current']}, Holm p = {f['p_holm']:.3g}; "
                    f"cases that got worse: {', '.join(f['worse'])}"
                )
            else:
                lines.append(f"- gate {f.get('policy')} failed: {', '.join(f.get('failed', []))}")
        if inc.details.get("run_id"):
            lines.append(
                f"\nRun `{inc.details['run_id']}` vs release baseline "
                f"`{inc.details.get('baseline_run_id')}`."
            )
    closing = [t for t in inc.timeline if t.action == "close"]
    if closing:
        lines += ["", "## Resolution", "", str(closing[-1].details.get("resolution", ""))]
    events = list_events(store, object_type="incident", object_id=str(inc.id))
    report = verify_chain(store)
    lines += [
        "",
        "## Audit trail",
        "",
        f"{len(events)} audit events recorded for this incident; chain of {report.events} "
        f"events {'verifies' if report.ok else 'DOES NOT verify'} "
        f"(head {report.head_hash[:16]}).",
        "",
    ]
    lines += [f"- #{e.seq} {e.created_at.isoformat()} {e.actor} {e.action}" for e in events]
    return "\n".join(lines) + "\n"
