"""Fine-tuning jobs: ``finetune_jobs``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

One row per fine-tuning round of an agent (``taskloom finetune run|watch``): its status,
what triggered it, the dataset version it trained on, the candidate it registered, the run
folder a failed or crashed round resumes from, and the gate's result.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create the table and its per-agent index (jobs are listed newest first per agent)."""
    op.create_table(
        "finetune_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agent", sa.String(NAME), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(NAME), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("candidate_version", sa.String(NAME), nullable=True),
        sa.Column("out_dir", sa.String(2000), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_jobs")),
    )
    op.create_index("ix_finetune_jobs_agent", "finetune_jobs", ["agent", "id"], unique=False)


def downgrade() -> None:
    """Drop the table (the job history is lost; models and datasets stay)."""
    op.drop_index("ix_finetune_jobs_agent", table_name="finetune_jobs")
    op.drop_table("finetune_jobs")
