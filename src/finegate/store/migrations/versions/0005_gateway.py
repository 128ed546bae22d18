"""gateway: API keys, kill switch, review queue, request log, usage incidents

Revision ID: 0005_gateway
Revises: 0003_governance
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_gateway"
down_revision = "0003_governance"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("rotated_from", sa.String(32), nullable=True),
    )
    op.create_table(
        "gateway_model_state",
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
    )
    op.create_table(
        "gateway_reviews",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_gateway_reviews_key_id", "gateway_reviews", ["key_id"])
    op.create_index("ix_gateway_reviews_status", "gateway_reviews", ["status"])
    op.create_table(
        "gateway_request_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("tool_calls", sa.JSON(), nullable=False),
        sa.Column("decisions", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("upstream_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_gateway_request_log_request_id", "gateway_request_log", ["request_id"])
    op.create_index("ix_gateway_request_log_key_id", "gateway_request_log", ["key_id"])
    op.create_index("ix_gateway_request_log_created_at", "gateway_request_log", ["created_at"])
    op.create_table(
        "gateway_incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("throttled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_gateway_incidents_key_id", "gateway_incidents", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_gateway_incidents_key_id", table_name="gateway_incidents")
    op.drop_table("gateway_incidents")
    op.drop_index("ix_gateway_request_log_created_at", table_name="gateway_request_log")
    op.drop_index("ix_gateway_request_log_key_id", table_name="gateway_request_log")
    op.drop_index("ix_gateway_request_log_request_id", table_name="gateway_request_log")
    op.drop_table("gateway_request_log")
    op.drop_index("ix_gateway_reviews_status", table_name="gateway_reviews")
    op.drop_index("ix_gateway_reviews_key_id", table_name="gateway_reviews")
    op.drop_table("gateway_reviews")
    op.drop_table("gateway_model_state")
    op.drop_table("gateway_keys")
