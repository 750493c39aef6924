"""TimescaleDB for candles: hypertable, compression and retention — only where the extension exists.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Production runs TimescaleDB; dev/CI machines run plain PostgreSQL. Rather than two schemas, this
revision inspects the server and is a logged no-op when TimescaleDB cannot be used, so every
environment reaches the same head revision. If TimescaleDB is installed later, re-run it with
`alembic downgrade 0001 && alembic upgrade head` (both steps are safe on data).

Options: `-x candle_retention_days=N` (default 400; 0 disables the retention policy).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

DEFAULT_RETENTION_DAYS = 400
COMPRESS_AFTER = "7 days"
CHUNK_INTERVAL = "7 days"


def _scalar(sql: str) -> object:
    return op.get_bind().execute(sa.text(sql)).scalar()


def _timescale_usable() -> bool:
    """True when TimescaleDB is installed, or installable (packaged and preloaded) on this server."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        log.info("timescale: skipped (dialect %s is not postgresql)", bind.dialect.name)
        return False
    if _scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return True
    if not _scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        log.info("timescale: skipped (extension timescaledb not available on this server)")
        return False
    preload = str(_scalar("SHOW shared_preload_libraries") or "")
    if "timescaledb" not in preload:
        # CREATE EXTENSION would fail and abort the whole upgrade; a loud skip is more useful.
        log.warning("timescale: skipped (timescaledb is packaged but not in shared_preload_libraries)")
        return False
    return True


def _retention_days() -> int:
    raw = context.get_x_argument(as_dictionary=True).get("candle_retention_days", DEFAULT_RETENTION_DAYS)
    days = int(raw)
    if days < 0:
        raise ValueError(f"candle_retention_days must be >= 0, got {days}")
    return days


def _license() -> str:
    """'timescale' (community: compression, policies) or 'apache' (hypertables only)."""
    return str(_scalar("SELECT current_setting('timescaledb.license', true)") or "timescale")


def _is_hypertable() -> bool:
    return bool(
        _scalar(
            "SELECT 1 FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = 'candles'"
        )
    )


def upgrade() -> None:
    """Make candles a compressed hypertable with retention, when TimescaleDB is usable."""
    if not _timescale_usable():
        return
    days = _retention_days()  # validated before any change
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.execute(
        "SELECT create_hypertable('candles', 'open_time', "
        f"chunk_time_interval => INTERVAL '{CHUNK_INTERVAL}', "
        "migrate_data => true, if_not_exists => true)"
    )
    if _license() == "apache":
        # The Apache-2-only build has hypertables but neither compression nor policies.
        log.warning("timescale: Apache-only build, candles left without compression/retention policies")
        return
    op.execute(
        "ALTER TABLE candles SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'symbol, timeframe', "
        "timescaledb.compress_orderby = 'open_time')"
    )
    op.execute(
        f"SELECT add_compression_policy('candles', INTERVAL '{COMPRESS_AFTER}', if_not_exists => true)"
    )
    if days:
        op.execute(f"SELECT add_retention_policy('candles', INTERVAL '{days} days', if_not_exists => true)")
    log.info("timescale: candles is a hypertable (compress after %s, retention %s d)", COMPRESS_AFTER, days)


def downgrade() -> None:
    """Remove the policies and compression; candles stays a hypertable (Timescale cannot revert it).

    Leaving the extension and the hypertable in place keeps every row; downgrading 0001 after this
    drops candles as an ordinary table would be.
    """
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if not _scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'") or not _is_hypertable():
        log.info("timescale: downgrade skipped (candles is not a hypertable)")
        return
    if _license() == "apache":
        return  # nothing but the hypertable was created
    op.execute("SELECT remove_retention_policy('candles', if_exists => true)")
    op.execute("SELECT remove_compression_policy('candles', if_exists => true)")
    op.execute("SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('candles') c")
    op.execute("ALTER TABLE candles SET (timescaledb.compress = false)")
