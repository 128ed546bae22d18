"""Evidence documents (model card, technical documentation) built from recorded facts only.

Each section names the EU AI Act Annex IV item and the NIST AI RMF subcategories it serves.
A section with nothing recorded behind it says exactly :data:`NO_EVIDENCE`; nothing is
paraphrased, estimated or filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from finegate.governance._audit import list_events, verify_chain
from finegate.store.schema import AuditEvent, Run

if TYPE_CHECKING:
    from finegate.registry._lineage import Lineage
    from finegate.store.db import Store

NO_EVIDENCE = "no evidence recorded"
DOC_KINDS = ("model-card", "technical")


@dataclass(frozen=True)
class Block:
    """A piece of a section: ``text``, a key/value list (``kv``) or a ``table``."""

    kind: str
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    """One documented topic with its regulatory mapping."""

    title: str
    eu_ai_act: str
    nist_ai_rmf: str
    blocks: list[Block]

    @property
    def empty(self) -> bool:
        """True when the section is only the no-evidence statement."""
        return all(b.kind == "none" for b in self.blocks)


@dataclass(frozen=True)
class EvidenceDoc:
    """A rendered-ready evidence document."""

    kind: str
    title: str
    ref: str
    generated_at: str
    sections: list[Section]


def _none() -> list[Block]:
    return [Block("none", NO_EVIDENCE)]


def _kv(pairs: list[tuple[str, Any]]) -> Block:
    return Block("kv", rows=[[k, _fmt(v)] for k, v in pairs if v not in (None, "", [], {})])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _rate(rate: Any) -> str:
    if not isinstance(rate, dict) or rate.get("rate") is None:
        return "n/a"
    return (
        f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}] "
        f"({rate.get('k')}/{rate.get('n')})"
    )


def _run(store: Store, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    with store.session() as s:
        return s.get(Run, run_id)


def _pick_runs(store: Store, lin: Lineage) -> tuple[Run | None, Run | None, str]:
    """Choose the post-tuning run and its baseline: from the gate decision when one exists."""
    for d in lin.gate_decisions:
        post = _run(store, d.run_id)
        if post is not None:
            return post, _run(store, d.baseline_run_id), f"gate decision #{d.id}"
    done = [
        r for r in lin.eval_runs if r["matches_version"] and str(r["status"]).startswith("done")
    ]
    if not done:
        return None, None, ""
    post = _run(store, done[-1]["id"])
    suite_hash = done[-1]["suite_hash"]
    same = [
        r
        for r in lin.baseline_runs
        if r["suite_hash"] == suite_hash and str(r["status"]).startswith("done")
    ]
    return post, _run(store, same[-1]["id"]) if same else None, "latest eval run"


def _family_rows(post: Run, pre: Run | None) -> list[list[str]]:
    pre_fams = {f["family"]: f for f in (pre.summary or {}).get("families", [])} if pre else {}
    rows = []
    for fam in (post.summary or {}).get("families", []):
        before = pre_fams.get(fam["family"])
        change = "n/a"
        if (
            before
            and before["rate"].get("rate") is not None
            and fam["rate"].get("rate") is not None
        ):
            change = f"{100 * (fam['rate']['rate'] - before['rate']['rate']):+.1f} pts"
        rows.append(
            [
                fam["family"],
                fam.get("kind", ""),
                fam.get("metric", ""),
                _rate(before["rate"]) if before else "no baseline recorded",
                _rate(fam["rate"]),
                change,
            ]
        )
    return rows


def _safety(store: Store, lin: Lineage, technical: bool) -> list[Block]:
    post, pre, source = _pick_runs(store, lin)
    if post is None:
        return _none()
    blocks = [
        _kv(
            [
                ("post-tuning run", post.id),
                ("baseline run", pre.id if pre else "no evidence recorded"),
                ("chosen from", source),
                ("suite", (post.config or {}).get("suite")),
                ("suite hash", (post.config or {}).get("suite_hash")),
                ("evaluated model hash", post.model_hash),
            ]
        )
    ]
    rows = _family_rows(post, pre)
    if rows:
        blocks.append(
            Block(
                "table",
                headers=[
                    "family",
                    "kind",
                    "metric",
                    "baseline (95% Wilson CI)",
                    "this version (95% Wilson CI)",
                    "change",
                ],
                rows=rows,
            )
        )
    else:
        blocks.append(Block("text", "the run recorded no per-family statistics"))
    summ = post.summary or {}
    blocks.append(
        _kv(
            [
                ("refusal rate on harmful prompts", _rate(summ.get("refusal_on_harmful"))),
                ("over-refusal on benign prompts", _rate(summ.get("over_refusal_on_benign"))),
            ]
        )
    )
    if technical and len(lin.eval_runs) > 0:
        blocks.append(
            Block(
                "table",
                headers=["eval run", "suite", "status", "started", "model hash matches"],
                rows=[
                    [
                        r["id"],
                        _fmt(r["suite"]),
                        r["status"],
                        _fmt(r["started_at"]),
                        _fmt(r["matches_version"]),
                    ]
                    for r in lin.eval_runs
                ],
            )
        )
    return blocks


def _runs_of_kind(store: Store, kinds: tuple[str, ...], model_hash: str) -> list[Run]:
    with store.session() as s:
        return list(
            s.scalars(
                select(Run)
                .where(Run.kind.in_(kinds), Run.model_hash == model_hash)
                .order_by(Run.started_at)
            )
        )


def _summary_blocks(runs: list[Run]) -> list[Block]:
    if not runs:
        return _none()
    blocks = []
    for run in runs:
        pairs = [
            ("run", run.id),
            ("kind", run.kind),
            ("status", run.status),
            ("started", run.started_at.isoformat()),
        ]
        pairs += [
            (k, v) for k, v in sorted((run.summary or {}).items()) if not isinstance(v, dict | list)
        ]
        blocks.append(_kv(pairs))
    return blocks


def _rate_text(summary: dict[str, Any]) -> str:
    overall = summary.get("overall") or {}
    rate = overall.get("rate") or {}
    if rate.get("rate") is None:
        return "-"
    metric = "ASR" if overall.get("metric") == "asr" else "pass rate"
    return f"{metric} {100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def _monitoring(store: Store, name: str, model_hash: str) -> list[Block]:
    """Monitor checks and red-team campaigns run on this identity, and the model's incidents."""
    from finegate.store.schema import Incident

    with store.session() as s:
        runs = [
            r
            for r in s.scalars(
                select(Run)
                .where(Run.model_hash == model_hash, Run.kind.in_(("eval", "monitor", "redteam")))
                .order_by(Run.started_at)
            )
            if r.kind != "eval" or "monitor" in r.config or "redteam" in r.config
        ]
        incidents = list(
            s.scalars(select(Incident).where(Incident.model_name == name).order_by(Incident.id))
        )
    blocks: list[Block] = []
    if runs:
        rows = []
        for r in runs:
            facts = r.config.get("redteam")
            what = (
                f"red-team campaign from {facts.get('seeds')} ({facts.get('queries')} queries)"
                if isinstance(facts, dict)
                else f"monitor check {r.config.get('monitor', r.kind)}"
            )
            rows.append([r.id, what, r.started_at.isoformat(timespec="seconds"),
                         _rate_text(r.summary or {})])  # fmt: skip
        blocks.append(Block("table", headers=["run", "what", "started", "overall"], rows=rows))
    if incidents:
        rows = [
            [
                f"#{i.id}",
                i.kind,
                i.severity,
                i.status,
                i.opened_at.isoformat(timespec="seconds"),
                i.title,
            ]  # fmt: skip
            for i in incidents
        ]
        blocks.append(
            Block(
                "table",
                headers=["incident", "kind", "severity", "status", "opened", "title"],
                rows=rows,
            )
        )
    return blocks or _none()


def _training(lin: Lineage) -> list[Block]:
    blocks: list[Block] = []
    if lin.adapter:
        blocks.append(
            _kv(
                [
                    ("adapter artifact (sha256)", lin.adapter["sha256"]),
                    ("adapter size (bytes)", lin.adapter["size"]),
                ]
            )
        )
    tr = lin.training_run
    if tr is None or tr.get("missing"):
        note = (
            NO_EVIDENCE
            if tr is None
            else f"training record {tr['id']} is linked but not found in the store"
        )
        blocks.append(Block("none" if tr is None else "text", note))
        return blocks
    cfg = tr.get("config") or {}
    blocks.append(
        _kv(
            [("training run", tr["id"]), ("status", tr["status"]), ("started", tr["started_at"])]
            + [(k, v) for k, v in sorted(cfg.items())]
        )
    )
    summ = {k: v for k, v in (tr.get("summary") or {}).items() if not isinstance(v, list)}
    if summ:
        blocks.append(_kv(sorted(summ.items())))
    return blocks


def _data(lin: Lineage) -> list[Block]:
    if not lin.dataset_versions:
        return _none()
    return [
        Block(
            "table",
            headers=["dataset version", "record found", "name", "facts"],
            rows=[
                [
                    d["id"],
                    "yes" if d["found"] else "no",
                    _fmt(d["name"]) if d["name"] else "",
                    _fmt(d["meta"]) if d["meta"] else "",
                ]
                for d in lin.dataset_versions
            ],
        )
    ]


def _gates(lin: Lineage, technical: bool) -> list[Block]:
    if not lin.gate_decisions:
        return _none()
    blocks = [
        Block(
            "table",
            headers=["decision", "date", "run", "baseline", "policy", "policy hash", "verdict"],
            rows=[
                [
                    f"#{d.id}",
                    d.created_at.isoformat(timespec="seconds"),
                    d.run_id,
                    d.baseline_run_id or "",
                    d.policy_name,
                    d.policy_hash if technical else d.policy_hash[:16],
                    "pass" if d.passed else "fail",
                ]
                for d in lin.gate_decisions
            ],
        )
    ]
    latest = lin.gate_decisions[0]
    if latest.rules:
        blocks.append(Block("text", f"Rules of the latest decision (#{latest.id}):"))
        blocks.append(
            Block(
                "table",
                headers=["rule", "family", "value", "limit", "verdict", "reason"],
                rows=[
                    [
                        _fmt(r.get(k))
                        for k in ("rule", "family", "value", "limit", "verdict", "reason")
                    ]
                    for r in latest.rules
                ],
            )
        )
    return blocks


def _changes(store: Store, lin: Lineage, technical: bool) -> list[Block]:
    v = lin.version
    events = list_events(store, object_type="model_version", object_id=v.ref)
    gate_ids = {str(d.id) for d in lin.gate_decisions}
    if gate_ids:
        with store.session() as s:
            events += list(
                s.scalars(
                    select(AuditEvent).where(
                        AuditEvent.object_type == "gate_decision",
                        AuditEvent.object_id.in_(gate_ids),
                    )
                )
            )
    events.sort(key=lambda e: e.seq)
    if not events and not lin.transitions:
        return _none()
    report = verify_chain(store)
    status = (
        f"audit chain verified: {report.events} events, head {report.head_hash[:16]}"
        if report.ok
        else f"AUDIT CHAIN BROKEN: {len(report.problems)} problem(s); run finegate audit verify"
    )
    headers = ["seq", "when", "actor", "action", "details"] + (["hash"] if technical else [])
    rows = []
    for e in events:
        det = {k: val for k, val in (e.details or {}).items() if val not in (None, "", [])}
        row = [str(e.seq), e.created_at.isoformat(timespec="seconds"), e.actor, e.action, _fmt(det)]
        rows.append(row + ([e.hash[:16]] if technical else []))
    return [Block("text", status), Block("table", headers=headers, rows=rows)]


def _stages(lin: Lineage) -> list[Block]:
    if not lin.transitions:
        return [Block("text", f"stage: {lin.version.stage} (no stage change recorded)")]
    return [
        Block(
            "table",
            headers=["when", "from", "to", "kind", "by", "gate decision", "override", "reason"],
            rows=[
                [
                    t["at"][:19],
                    t["from"],
                    t["to"],
                    t["kind"],
                    t["actor"],
                    f"#{t['gate_decision_id']}" if t["gate_decision_id"] else "",
                    "yes" if t["override"] else "",
                    t["reason"],
                ]
                for t in lin.transitions
            ],
        )
    ]


def build_document(store: Store, ref: str, kind: str = "model-card") -> EvidenceDoc:
    """Collect the facts of a registry version into a model card or technical documentation.

    Args:
        store: The store.
        ref: ``NAME@VERSION`` (or ``NAME@production`` ...).
        kind: ``model-card`` or ``technical``.
    """
    from finegate.errors import ConfigError
    from finegate.registry._lineage import lineage

    if kind not in DOC_KINDS:
        raise ConfigError(f"unknown document kind {kind!r}", hint="model-card or technical")
    tech = kind == "technical"
    lin = lineage(store, ref)
    v = lin.version
    identity = [
        _kv(
            [
                ("name", v.name),
                ("version", v.version),
                ("stage", v.stage),
                ("model URI", v.model_uri),
                ("base model", v.base_model_uri),
                ("base model hash", v.base_model_hash),
                ("model identity hash", v.model_hash),
                ("registered by", v.created_by),
                ("registered at", v.created_at.isoformat(timespec="seconds")),
            ]
        )
    ]
    intended = [Block("text", v.intended_use)] if v.intended_use.strip() else _none()
    guard = [_kv(sorted(v.guardrails.items()))] if v.guardrails else _none()
    privacy = _summary_blocks(_runs_of_kind(store, ("privacy",), v.model_hash))
    monitoring = _monitoring(store, v.name, v.model_hash)
    sections = [
        Section(
            "General description and intended purpose",
            "Annex IV §1(a)-(c)",
            "MAP 1.1",
            [*identity, Block("text", "Intended use:"), *intended],
        ),
        Section(
            "Development: base model and fine-tuning method",
            "Annex IV §2(a)-(b)",
            "MAP 4.1",
            _training(lin),
        ),
        Section("Data: lineage, provenance and cleaning", "Annex IV §2(d)", "MAP 2.3", _data(lin)),
        Section(
            "Validation and testing: safety before and after tuning, per family",
            "Annex IV §2(g), §4",
            "MEASURE 2.6, MEASURE 2.7",
            _safety(store, lin, tech),
        ),
        Section("Privacy and memorization testing", "Annex IV §2(g)", "MEASURE 2.10", privacy),
        Section(
            "Release decisions (gate)",
            "Annex IV §5 (risk management, Art. 9)",
            "MANAGE 1.1",
            _gates(lin, tech),
        ),
        Section(
            "Guardrails configured (cybersecurity and runtime controls)",
            "Annex IV §2(h), §3",
            "MEASURE 2.7, MANAGE 1.3",
            guard,
        ),
        Section(
            "Monitoring and incident history",
            "Annex IV §3, §9 (post-market)",
            "MEASURE 2.4, MANAGE 4.1, MANAGE 4.3",
            monitoring,
        ),
        Section("Lifecycle: stage history", "Annex IV §6", "MANAGE 2.4", _stages(lin)),
        Section(
            "Change log (tamper-evident audit log)",
            "Annex IV §6",
            "GOVERN 2.1",
            _changes(store, lin, tech),
        ),
    ]
    title = ("Model card" if not tech else "Technical documentation") + f": {v.ref}"
    return EvidenceDoc(
        kind=kind,
        title=title,
        ref=v.ref,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sections=sections,
    )
