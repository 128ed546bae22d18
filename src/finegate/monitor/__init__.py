"""Monitoring and incident response: scheduled checks against deployments, incidents, playbook.

::

    from finegate.monitor import add_monitor, run_due, contain_incident, rollback_incident

    add_monitor(store, "bot", target="registry:bot@production", suite="core", every="30d")
    for check in run_due(store):                 # cron: finegate monitor run-due
        if check.incident_opened:
            contain_incident(store, check.incident_id)
            rollback_incident(store, check.incident_id)

Every incident step is recorded with who and when, in the incident's timeline and the audit log.
"""

from finegate.monitor._incidents import (
    INCIDENT_KINDS,
    INCIDENT_STATUSES,
    SEVERITIES,
    IncidentInfo,
    TimelineEntry,
    close_incident,
    contain_incident,
    get_incident,
    import_gateway_incidents,
    list_incidents,
    note_incident,
    open_incident,
    revoke_incident_keys,
    rollback_incident,
)
from finegate.monitor._monitors import (
    MonitorCheck,
    MonitorInfo,
    add_monitor,
    find_regressions,
    list_monitors,
    monitor_runs,
    parse_every,
    run_daemon,
    run_due,
    run_monitor,
    set_baseline,
)
from finegate.monitor._report import incident_report

__all__ = [
    "INCIDENT_KINDS",
    "INCIDENT_STATUSES",
    "SEVERITIES",
    "IncidentInfo",
    "MonitorCheck",
    "MonitorInfo",
    "TimelineEntry",
    "add_monitor",
    "close_incident",
    "contain_incident",
    "find_regressions",
    "get_incident",
    "import_gateway_incidents",
    "incident_report",
    "list_incidents",
    "list_monitors",
    "monitor_runs",
    "note_incident",
    "open_incident",
    "parse_every",
    "revoke_incident_keys",
    "rollback_incident",
    "run_daemon",
    "run_due",
    "run_monitor",
    "set_baseline",
]
