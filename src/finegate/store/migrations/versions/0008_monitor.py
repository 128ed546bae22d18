"""monitor: monitors, monitor runs, incidents and incident events

Revision ID: 0008_monitor
Revises: 0006_data
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_monitor"
down_revision = "0006_data"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("suite", sa.String(512), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(512), nullable=True),
        sa.Column("baseline_run_id", sa.String(64), nullable=True),
        sa.Column("gateway_model", sa.String(256), nullable=True),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_due_at", _TS, nullable=False),
        sa.Column("last_run_at", _TS, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "monitor_id",
            sa.Integer(),
            sa.ForeignKey("monitors.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("baseline_run_id", sa.String(64), nullable=True),
        sa.Column("resolved_target", sa.String(1024), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_monitor_runs_monitor_id", "monitor_runs", ["monitor_id"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_ref", sa.String(128), nullable=True, unique=True),
        sa.Column("monitor_id", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(256), nullable=True),
        sa.Column("target", sa.String(512), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("opened_by", sa.String(128), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_index("ix_incidents_monitor_id", "incidents", ["monitor_id"])
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.Integer(),
            sa.ForeignKey("incidents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_incident_events_incident_id", "incident_events", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_events_incident_id", table_name="incident_events")
    op.drop_table("incident_events")
    op.drop_index("ix_incidents_monitor_id", table_name="incidents")
    op.drop_index("ix_incidents_status", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index("ix_monitor_runs_monitor_id", table_name="monitor_runs")
    op.drop_table("monitor_runs")
    op.drop_table("monitors")
