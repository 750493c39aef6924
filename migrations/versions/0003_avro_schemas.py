"""Schema store: Avro writer schemas by fingerprint, for readers older than their writers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

During a rolling deploy a newer producer may write a contract version (a fingerprint) that an
older consumer does not ship. Every producer registers its schemas here at start, and the
pre-upgrade ``ops migrate`` Job registers the new release's before any pod rolls, so the older
consumer can resolve the newer writer schema instead of losing the message.
See docs/decisions/0014-unknown-schema-fingerprints.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``avro_schemas`` (append-only; one row per fingerprint)."""
    op.create_table(
        "avro_schemas",
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_avro_schemas"),
    )


def downgrade() -> None:
    """Drop the store; consumers then wait on unknown fingerprints instead of resolving them."""
    op.drop_table("avro_schemas")
