"""governance: registry, stage transitions, gate decisions, principals, tokens, audit chain

Revision ID: 0003_governance
Revises: 0002_evals
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_governance"
down_revision = "0002_evals"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "model_name",
            sa.String(128),
            sa.ForeignKey("registered_models.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("model_uri", sa.String(1024), nullable=False),
        sa.Column("base_model_uri", sa.String(1024), nullable=False),
        sa.Column("base_model_hash", sa.String(128), nullable=True),
        sa.Column("model_hash", sa.String(128), nullable=False),
        sa.Column("adapter_sha256", sa.String(64), nullable=True),
        sa.Column("intended_use", sa.Text(), nullable=False),
        sa.Column("training_run_id", sa.String(64), nullable=True),
        sa.Column("dataset_version_ids", sa.JSON(), nullable=False),
        sa.Column("eval_run_ids", sa.JSON(), nullable=False),
        sa.Column("guardrails", sa.JSON(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("stage_changed_at", _TS, nullable=False),
        sa.UniqueConstraint("model_name", "version", name="uq_model_versions_version"),
    )
    op.create_index("ix_model_versions_stage", "model_versions", ["stage"])
    op.create_index("ix_model_versions_model_hash", "model_versions", ["model_hash"])
    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=False),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gate_decision_id", sa.Integer(), nullable=True),
        sa.Column("policy_hash", sa.String(64), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_stage_transitions_model_name", "stage_transitions", ["model_name"])
    op.create_table(
        "gate_decisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("baseline_run_id", sa.String(64), nullable=True),
        sa.Column("model_hash", sa.String(128), nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("policy_name", sa.String(128), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("registry_model", sa.String(128), nullable=True),
        sa.Column("registry_version", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_gate_decisions_run_id", "gate_decisions", ["run_id"])
    op.create_index("ix_gate_decisions_model_hash", "gate_decisions", ["model_hash"])
    op.create_table(
        "principals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "principal_id",
            sa.String(32),
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_index("ix_api_tokens_principal_id", "api_tokens", ["principal_id"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(256), nullable=False),
        sa.Column("before_hash", sa.String(64), nullable=True),
        sa.Column("after_hash", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_object", "audit_events", ["object_type", "object_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_events_object", table_name="audit_events")
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_api_tokens_principal_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("principals")
    op.drop_index("ix_gate_decisions_model_hash", table_name="gate_decisions")
    op.drop_index("ix_gate_decisions_run_id", table_name="gate_decisions")
    op.drop_table("gate_decisions")
    op.drop_index("ix_stage_transitions_model_name", table_name="stage_transitions")
    op.drop_table("stage_transitions")
    op.drop_index("ix_model_versions_model_hash", table_name="model_versions")
    op.drop_index("ix_model_versions_stage", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("registered_models")
