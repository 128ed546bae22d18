"""data: dataset versions and dataset scans

Revision ID: 0006_data
Revises: 0005_gateway
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_data"
down_revision = "0005_gateway"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("transformation", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("approver", sa.String(128), nullable=True),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("report_sha256", sa.String(64), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_dataset_versions_name", "dataset_versions", ["name"])
    op.create_index("ix_dataset_versions_parent_id", "dataset_versions", ["parent_id"])
    op.create_table(
        "dataset_scans",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "version_id",
            sa.String(64),
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("policy_name", sa.String(128), nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("tool_version", sa.String(64), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("malformed", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("report_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_dataset_scans_version_id", "dataset_scans", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_dataset_scans_version_id", table_name="dataset_scans")
    op.drop_table("dataset_scans")
    op.drop_index("ix_dataset_versions_parent_id", table_name="dataset_versions")
    op.drop_index("ix_dataset_versions_name", table_name="dataset_versions")
    op.drop_table("dataset_versions")
