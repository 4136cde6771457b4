"""Multi-label predictions: ``predictions.multi_label``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

A multi-label classifier's probability vector holds one independent sigmoid per label, so it
does not sum to 1; the flag tells the review queue to measure its uncertainty per label
instead of as one distribution. Existing rows are single-label (the only kind 0001 accepted).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the flag, false for every existing row."""
    # A plain ADD COLUMN, never a batch copy: on SQLite a batch operation recreates the
    # table, and dropping the old one would cascade to the feedback rows that reference it.
    op.add_column(
        "predictions",
        sa.Column("multi_label", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Drop the flag (multi-label rows then read as single-label vectors)."""
    op.drop_column("predictions", "multi_label")
