"""Recommendations keep the v3 contract's ``reason`` and ``attention``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

Recommendation v3 (schemas/avro) added why a strategy has no opinion on a bar (``reason``, e.g.
``stale:funding_binance_8h``) and the news high-attention flag (``attention``). The meta consumer
used to drop both when storing an answer, so nobody could see them afterwards. Both columns are
nullable and have no default: rows stored before this revision, and answers from writers that do
not set the fields (v1/v2 messages, strategies that do not say), read back as NULL, and adding a
nullable column without a default is a catalog-only change on PostgreSQL (no table rewrite, so it is
cheap on a large table). ``recommendations`` is an ordinary table on every server: only candles
(0002) and exogenous_observations (0005) become hypertables, and its primary key (namespace,
tick_id, strategy) holds no time column, which a hypertable would need. Should that change, ADD and
DROP of a nullable column without a default also work on a (compressed) hypertable in TimescaleDB
2.23, so this revision needs no Timescale branch. Hand-written and frozen; works on SQLite too
(``batch_alter_table`` for the drop).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``reason`` (TEXT) and ``attention`` (BOOLEAN) columns."""
    op.add_column("recommendations", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("recommendations", sa.Column("attention", sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Drop both columns (what they held is lost; the v3 messages on Kafka still carry it)."""
    with op.batch_alter_table("recommendations") as batch:
        batch.drop_column("attention")
        batch.drop_column("reason")
