"""TimescaleDB for exogenous observations: hypertable on about_ts, compression and retention.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

The same treatment as candles in 0002 (common.db.timescale.make_hypertable), and like it a logged
no-op where TimescaleDB cannot be used. ``exogenous_observations`` is partitioned on ``about_ts``
(its primary key (series, about_ts, item_key) includes it, as TimescaleDB requires), compressed per
series. Chunks span 30 days: most series are daily, so 7-day chunks would hold a few hundred rows
each. Compression waits 90 days because values arrive late: a monthly series is published about
two months after the month it describes, and writing into a compressed chunk is slower.

Options: `-x exogenous_retention_days=N` (default 0: no retention policy).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from common.db.timescale import HypertableSpec, make_hypertable, undo_hypertable

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: None by default: the series go back to 2009 and research reads all of it; dropping old
#: chunks would also make every re-import insert them again.
DEFAULT_RETENTION_DAYS = 0
OBSERVATIONS = HypertableSpec(
    table="exogenous_observations",
    time_column="about_ts",
    chunk_interval="30 days",
    segment_by=("series",),
    order_by=("about_ts", "item_key"),
    compress_after="90 days",
)


def _retention_days() -> int:
    raw = context.get_x_argument(as_dictionary=True).get("exogenous_retention_days", DEFAULT_RETENTION_DAYS)
    days = int(raw)
    if days < 0:
        raise ValueError(f"exogenous_retention_days must be >= 0, got {days}")
    return days


def upgrade() -> None:
    """Make exogenous_observations a compressed hypertable with retention, when TimescaleDB is usable."""
    make_hypertable(op.get_bind(), OBSERVATIONS, retention_days=_retention_days())


def downgrade() -> None:
    """Remove the policies and compression; the table stays a hypertable with every row (see 0002)."""
    undo_hypertable(op.get_bind(), OBSERVATIONS.table)
