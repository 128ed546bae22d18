"""Monitors: scheduled suite runs against a deployment, compared with its release baseline.

A monitor names a target (any model URI; ``registry:NAME@production`` follows promotions and
rollbacks), a suite, an interval and optionally a gate policy. Each check runs the suite like
any eval run (recorded, cached, comparable), then compares it case by case with the monitor's
pinned release baseline run (McNemar per family, one-sided "candidate worse", Holm-adjusted).
A significant per-family regression or a failed policy opens an incident; while an incident
from the monitor is unresolved, later checks are appended to its timeline instead (a clean
check is recorded as verification that the mitigation worked).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from finegate.errors import ConfigError, NotFoundError
from finegate.store.schema import Incident, Monitor, MonitorRun

if TYPE_CHECKING:
    from finegate.evals.compare import Comparison
    from finegate.governance import Principal
    from finegate.store.db import Store

__all__ = [
    "MonitorCheck",
    "MonitorInfo",
    "add_monitor",
    "find_regressions",
    "list_monitors",
    "monitor_runs",
    "parse_every",
    "run_daemon",
    "run_due",
    "run_monitor",
    "set_baseline",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_every(text: str) -> int:
    """Parse an interval such as ``30d``, ``12h``, ``15m``, ``90s`` or ``2w`` into seconds.

    Raises:
        ConfigError: for anything else.
    """
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"bad interval {text!r}", hint="e.g. 30d, 12h, 15m, 90s, 2w")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MonitorInfo:
    """A monitor as the library returns it."""

    id: int
    name: str
    target: str
    suite: str
    every_s: int
    policy: str | None
    baseline_run_id: str | None
    gateway_model: str | None
    alpha: float
    enabled: bool
    next_due_at: datetime
    last_run_at: datetime | None

    @classmethod
    def from_row(cls, row: Monitor) -> MonitorInfo:
        """Build from a database row."""
        return cls(
            id=row.id,
            name=row.name,
            target=row.target,
            suite=row.suite,
            every_s=row.every_s,
            policy=row.policy,
            baseline_run_id=row.baseline_run_id,
            gateway_model=row.gateway_model,
            alpha=row.alpha,
            enabled=row.enabled,
            next_due_at=_aware(row.next_due_at),
            last_run_at=_aware(row.last_run_at) if row.last_run_at else None,
        )


@dataclass(frozen=True)
class MonitorCheck:
    """The outcome of one monitor check.

    Attributes:
        outcome: ``baseline`` (first run, pinned as the baseline), ``clean`` or ``regression``.
        findings: One dict per regressed family (``type: family``) or failed gate
            (``type: gate``).
        incident_id: The incident opened or updated, if any.
    """

    monitor: str
    run_id: str
    baseline_run_id: str | None
    resolved_target: str
    outcome: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    incident_id: int | None = None
    incident_opened: bool = False


def _row(s: Any, name: str) -> Monitor:
    row = s.scalar(select(Monitor).where(Monitor.name == name))
    if row is None:
        raise NotFoundError(f"no monitor {name!r}", hint="see finegate monitor list")
    assert isinstance(row, Monitor)
    return row


def add_monitor(
    store: Store,
    name: str,
    *,
    target: str,
    suite: str,
    every: str = "30d",
    policy: str | None = None,
    baseline_run_id: str | None = None,
    gateway_model: str | None = None,
    alpha: float = 0.05,
    actor: Principal | None = None,
) -> MonitorInfo:
    """Create a monitor (due at once); needs ``evals:run``.

    Args:
        store: The store.
        name: Unique monitor name.
        target: Model URI; ``registry:NAME@production`` follows the registry.
        suite: Suite name or file.
        every: Interval (``30d``, ``12h``, ...).
        policy: Gate policy (name or file) every run must pass; None: regressions only.
        baseline_run_id: The release baseline run; None: the first check becomes it.
        gateway_model: The model name the gateway serves (for ``incident contain``).
        alpha: Significance level of the per-family regression test (Holm-adjusted).
        actor: Who acts.
    """
    from finegate.governance import (
        Action,
        append_event,
        authorize,
        resolve_actor,
        write_transaction,
    )

    who = resolve_actor(store, actor)
    authorize(store, who, Action.RUN_EVALS, object_type="monitor", object_id=name)
    every_s = parse_every(every)
    if not 0 < alpha < 1:
        raise ConfigError("alpha must be between 0 and 1")
    if baseline_run_id is not None and store.get_run(baseline_run_id) is None:
        raise NotFoundError(f"no run {baseline_run_id!r}")
    with write_transaction(store) as s:
        if s.scalar(select(Monitor.id).where(Monitor.name == name)) is not None:
            raise ConfigError(f"monitor {name!r} exists")
        row = Monitor(name=name, target=target, suite=suite, every_s=every_s, policy=policy,
                      baseline_run_id=baseline_run_id, gateway_model=gateway_model, alpha=alpha,
                      enabled=True, next_due_at=datetime.now(UTC), created_by=who.name)  # fmt: skip
        s.add(row)
        s.flush()
        info = MonitorInfo.from_row(row)
        append_event(s, who, "monitor.add", "monitor", name,
                     after={k: v for k, v in info.__dict__.items() if k not in
                            ("next_due_at", "last_run_at")})  # fmt: skip
        return info


def list_monitors(store: Store) -> list[MonitorInfo]:
    """Return every monitor, by name."""
    with store.session() as s:
        return [MonitorInfo.from_row(r) for r in s.scalars(select(Monitor).order_by(Monitor.name))]


def set_baseline(
    store: Store, name: str, run_id: str, *, actor: Principal | None = None
) -> MonitorInfo:
    """Pin a new release baseline run (after a legitimate release); audited."""
    from finegate.governance import (
        Action,
        append_event,
        authorize,
        resolve_actor,
        write_transaction,
    )

    who = resolve_actor(store, actor)
    authorize(store, who, Action.RUN_EVALS, object_type="monitor", object_id=name)
    if store.get_run(run_id) is None:
        raise NotFoundError(f"no run {run_id!r}")
    with write_transaction(store) as s:
        row = _row(s, name)
        before = {"baseline_run_id": row.baseline_run_id}
        row.baseline_run_id = run_id
        append_event(s, who, "monitor.baseline", "monitor", name, before=before,
                     after={"baseline_run_id": run_id})  # fmt: skip
        return MonitorInfo.from_row(row)


def find_regressions(comparison: Comparison, alpha: float) -> list[dict[str, Any]]:
    """Return the families that got significantly worse (Holm-adjusted p below ``alpha``)."""
    out = []
    for fam in comparison.families:
        if len(fam.worse) > len(fam.better) and fam.p_holm < alpha:
            out.append({"type": "family", "family": fam.family, "kind": fam.kind,
                        "metric": fam.metric, "baseline": fam.a.rate, "current": fam.b.rate,
                        "p_holm": fam.p_holm, "worse": list(fam.worse)})  # fmt: skip
    return out


def _resolve(store: Store, target: str) -> tuple[str, str | None, str | None]:
    """Return (concrete URI, registry model name, registry ref) for a target."""
    if not target.startswith("registry:"):
        return target, None, None
    from finegate.registry import get_version

    info = get_version(store, target.removeprefix("registry:"))
    return info.resolved_uri, info.name, info.ref


def _classify(findings: list[dict[str, Any]]) -> tuple[str, str]:
    fams = [f for f in findings if f["type"] == "family"]
    if any("leak" in f["family"] for f in fams):
        return "leakage", "critical"
    if any(f["kind"] == "attack" for f in fams):
        return "drift", "high"
    if fams:
        return "drift", "medium"
    return "policy_violation", "high"


def run_monitor(
    store: Store, name: str, *, actor: Principal | None = None, now: datetime | None = None
) -> MonitorCheck:
    """Run one monitor check now (see the module docs); needs ``evals:run``."""
    from finegate.evals import EvalConfig, load_suite, run_eval_sync
    from finegate.evals.compare import compare_runs
    from finegate.governance import (
        Action,
        append_event,
        authorize,
        resolve_actor,
        write_transaction,
    )
    from finegate.models.uri import load_backend

    who = resolve_actor(store, actor)
    authorize(store, who, Action.RUN_EVALS, object_type="monitor", object_id=name)
    with store.session() as s:
        mon = MonitorInfo.from_row(_row(s, name))
    uri, model_name, ref = _resolve(store, mon.target)
    backend = load_backend(uri)
    labels = {"monitor": name, "target": mon.target, "registry_ref": ref}
    run = run_eval_sync(
        backend, load_suite(mon.suite), store=store, config=EvalConfig(), labels=labels
    )
    findings: list[dict[str, Any]] = []
    outcome = "baseline"
    if mon.baseline_run_id is not None:
        comparison = compare_runs(store, mon.baseline_run_id, run.run_id, alternative="greater")
        findings = find_regressions(comparison, mon.alpha)
        if mon.policy:
            from finegate.gate import gate_run

            gate = gate_run(store, run.run_id, policy=mon.policy,
                            baseline_run_id=mon.baseline_run_id, record=False)  # fmt: skip
            if not gate.passed:
                findings.append({"type": "gate", "policy": gate.policy_name,
                                 "failed": [r.id for r in gate.failed]})  # fmt: skip
        outcome = "regression" if findings else "clean"
    at = now or datetime.now(UTC)
    incident_id: int | None = None
    opened = False
    with write_transaction(store) as s:
        row = _row(s, name)
        row.last_run_at = at
        row.next_due_at = at + timedelta(seconds=row.every_s)
        if outcome == "baseline":
            row.baseline_run_id = run.run_id
        current = s.scalar(
            select(Incident)
            .where(Incident.monitor_id == row.id, Incident.status != "closed")
            .order_by(Incident.id.desc())
        )
        facts = {"run_id": run.run_id, "baseline_run_id": mon.baseline_run_id,
                 "target": mon.target, "resolved": uri, "registry_ref": ref}  # fmt: skip
        from finegate.monitor._incidents import new_incident, record_step

        if current is not None and outcome != "baseline":
            incident_id = current.id
            record_step(s, who, current, "still_failing" if findings else "verified_clean",
                        {**facts, "findings": findings})  # fmt: skip
        elif findings:
            kind, severity = _classify(findings)
            what = ", ".join(f.get("family") or f"gate {f.get('policy')}" for f in findings)
            inc = new_incident(
                s, who, title=f"monitor {name}: regression in {what}", kind=kind,
                severity=severity, source="monitor", monitor_id=row.id,
                model_name=model_name, target=mon.target,
                details={**facts, "findings": findings,
                         "gateway_model": mon.gateway_model or model_name},
            )  # fmt: skip
            incident_id, opened = inc.id, True
        s.add(MonitorRun(monitor_id=row.id, run_id=run.run_id,
                         baseline_run_id=mon.baseline_run_id, resolved_target=uri,
                         outcome=outcome, findings=findings, incident_id=incident_id,
                         created_by=who.name, created_at=at))  # fmt: skip
        append_event(s, who, "monitor.run", "monitor", name,
                     details={**facts, "outcome": outcome, "incident_id": incident_id})  # fmt: skip
    return MonitorCheck(name, run.run_id, mon.baseline_run_id, uri, outcome, findings,
                        incident_id, opened)  # fmt: skip


def run_due(
    store: Store,
    *,
    now: datetime | None = None,
    actor: Principal | None = None,
    import_gateway: bool = True,
) -> list[MonitorCheck]:
    """Run every enabled monitor that is due (cron-friendly); import gateway incidents too."""
    at = now or datetime.now(UTC)
    with store.session() as s:
        due = [
            r.name
            for r in s.scalars(select(Monitor).where(Monitor.enabled.is_(True)))
            if _aware(r.next_due_at) <= at
        ]
    if import_gateway:
        from finegate.monitor._incidents import import_gateway_incidents

        import_gateway_incidents(store, actor=actor)
    return [run_monitor(store, name, actor=actor, now=at) for name in sorted(due)]


def run_daemon(
    store: Store,
    *,
    interval_s: float = 60.0,
    iterations: int | None = None,
    actor: Principal | None = None,
    on_check: Callable[[MonitorCheck], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Call :func:`run_due` every ``interval_s`` seconds (``iterations`` times, or forever).

    Returns:
        The number of checks run.
    """
    done = 0
    n = 0
    while iterations is None or n < iterations:
        for check in run_due(store, actor=actor):
            done += 1
            if on_check:
                on_check(check)
        n += 1
        if iterations is None or n < iterations:
            sleep(interval_s)
    return done


def monitor_runs(store: Store, name: str) -> list[dict[str, Any]]:
    """Return a monitor's checks, oldest first."""
    with store.session() as s:
        mon = _row(s, name)
        rows = s.scalars(
            select(MonitorRun).where(MonitorRun.monitor_id == mon.id).order_by(MonitorRun.id)
        )
        return [
            {
                "id": r.id,
                "run_id": r.run_id,
                "baseline_run_id": r.baseline_run_id,
                "resolved_target": r.resolved_target,
                "outcome": r.outcome,
                "findings": r.findings,
                "incident_id": r.incident_id,
                "by": r.created_by,
                "at": _aware(r.created_at).isoformat(),
            }  # fmt: skip
            for r in rows
        ]
