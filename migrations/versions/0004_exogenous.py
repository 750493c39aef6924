"""Exogenous series: the catalog as stored, and their observations with two times each.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

``exogenous_observations`` keeps what a value is about (``about_ts``) and when it became known
(``published_at``): strategies read by publication time, so a daily value never leaks into the day
it describes. The primary key (series, about_ts, item_key) contains ``about_ts`` so that a later
revision can make the table a TimescaleDB hypertable partitioned on it (unique keys there must
include the partitioning column). Hand-written and frozen, like 0001; works on SQLite too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``exogenous_series`` and ``exogenous_observations``."""
    op.create_table(
        "exogenous_series",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("frequency", sa.Text(), nullable=False),
        sa.Column("units", JSONDOC, nullable=False),
        sa.Column("value_column", sa.Text(), nullable=True),
        sa.Column("publication_rule", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("point_in_time", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("name", name="pk_exogenous_series"),
    )
    op.create_table(
        "exogenous_observations",
        sa.Column("series", sa.Text(), nullable=False),
        sa.Column("about_ts", TS, nullable=False),
        sa.Column("item_key", sa.Text(), nullable=False, server_default=""),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("fields", JSONDOC, nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ingested_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("series", "about_ts", "item_key", name="pk_exogenous_observations"),
        sa.ForeignKeyConstraint(
            ["series"],
            ["exogenous_series.name"],
            ondelete="CASCADE",
            name="fk_exogenous_observations_series_exogenous_series",
        ),
    )
    op.create_index(
        "ix_exogenous_observations_series_published_at", "exogenous_observations", ["series", "published_at"]
    )


def downgrade() -> None:
    """Drop both tables (observations first: they reference the series)."""
    op.drop_index("ix_exogenous_observations_series_published_at", table_name="exogenous_observations")
    op.drop_table("exogenous_observations")
    op.drop_table("exogenous_series")
