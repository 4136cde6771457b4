"""API keys of the HTTP service (``api_keys``), and run-listing indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

One row per key (``taskloom keys create``): its public id, name, role, who made it, when,
and when it was revoked. The token itself is never stored, only its SHA-256, so a copy of
the database does not hand out working keys.

The service lists runs newest first, filtered by workflow or status. With one index per
column the planner picks the filter's index and sorts every matching run (46 ms for a page
of 50 among 200,000 runs on SQLite); a (filter, created_at) index reads just the page
(under 1 ms). The new indexes replace the single-column ones, which are their prefixes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200
KEY_ID = 32
RUN_FILTERS = ("workflow", "status")  # runs columns listed by, newest first


def upgrade() -> None:
    """Create the keys table (looked up by id, its primary key); index runs for listing."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(KEY_ID), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(NAME), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    for column in RUN_FILTERS:
        op.create_index(f"ix_runs_{column}_created", "runs", [column, "created_at"], unique=False)
        op.drop_index(op.f(f"ix_runs_{column}"), table_name="runs")


def downgrade() -> None:
    """Drop the table (every key stops working; the audit log keeps their history)."""
    for column in RUN_FILTERS:
        op.create_index(op.f(f"ix_runs_{column}"), "runs", [column], unique=False)
        op.drop_index(f"ix_runs_{column}_created", table_name="runs")
    op.drop_table("api_keys")
