"""TimescaleDB for candles: hypertable, compression and retention — only where the extension exists.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Production and the local cluster (infra/dev.sh builds and preloads TimescaleDB 2.23.1) run
TimescaleDB; a plain PostgreSQL server does not. Rather than two schemas, this revision inspects
the server and is a logged no-op when TimescaleDB cannot be used, so every environment reaches the
same head revision. If TimescaleDB is loaded later, apply this revision alone to a database
already at head with `alembic stamp 0001 && alembic upgrade 0002 && alembic stamp head` (only the
version row moves; `downgrade 0001` would drop the tables of the later revisions).
The work itself is common.db.timescale.make_hypertable, shared with 0005.

Options: `-x candle_retention_days=N` (default 400; 0 disables the retention policy).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from common.db.timescale import HypertableSpec, make_hypertable, undo_hypertable

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_RETENTION_DAYS = 400
CANDLES = HypertableSpec(
    table="candles",
    time_column="open_time",
    chunk_interval="7 days",
    segment_by=("symbol", "timeframe"),
    order_by=("open_time",),
    compress_after="7 days",
)


def _retention_days() -> int:
    raw = context.get_x_argument(as_dictionary=True).get("candle_retention_days", DEFAULT_RETENTION_DAYS)
    days = int(raw)
    if days < 0:
        raise ValueError(f"candle_retention_days must be >= 0, got {days}")
    return days


def upgrade() -> None:
    """Make candles a compressed hypertable with retention, when TimescaleDB is usable."""
    make_hypertable(op.get_bind(), CANDLES, retention_days=_retention_days())


def downgrade() -> None:
    """Remove the policies and compression; candles stays a hypertable (Timescale cannot revert it).

    Leaving the extension and the hypertable in place keeps every row; downgrading 0001 after this
    drops candles as an ordinary table would be.
    """
    undo_hypertable(op.get_bind(), CANDLES.table)
