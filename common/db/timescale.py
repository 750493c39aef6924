"""TimescaleDB for time-series tables, shared by the migrations that apply it (0002 candles, 0005
exogenous observations).

Production and the local cluster (infra/dev.sh preloads TimescaleDB 2.23.1) run the extension; a
server without it (plain PostgreSQL, SQLite) gets none of this, and the revisions become logged
no-ops so every environment reaches the same head. A revision's upgrade is one call::

    make_hypertable(op.get_bind(), HypertableSpec(...), retention_days=...)

Everything takes a live connection rather than Alembic's ``op``, so the helpers do what their
names say from a migration, a test or a shell alike. Table and column names are spliced into DDL
(``ALTER TABLE ... SET`` takes no parameters), so they must be plain identifiers; values travel as
bound parameters.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import Connection, text

log = logging.getLogger("alembic.runtime.migration")

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Interval literals we accept ("7 days", "12 hours"): checked so a typo fails before any DDL runs.
_INTERVAL = re.compile(r"^\d+ (minute|hour|day|week|month)s?$")


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return name


def _interval(value: str) -> str:
    if not _INTERVAL.match(value):
        raise ValueError(f"not an interval like '7 days': {value!r}")
    return value


@dataclass(frozen=True)
class HypertableSpec:
    """How one table is partitioned and compressed.

    ``segment_by`` are the columns a query filters on (one compressed batch per value, so reading
    one symbol or one series decompresses only its rows); ``order_by`` is the order inside a batch
    (time first, so range scans stay cheap). Chunks whose whole range is older than
    ``compress_after`` are compressed by the policy; the retention policy (when asked for) drops
    chunks older than that many days.
    """

    table: str
    time_column: str
    chunk_interval: str
    segment_by: tuple[str, ...]
    order_by: tuple[str, ...]
    compress_after: str

    def __post_init__(self) -> None:
        for name in (self.table, self.time_column, *self.segment_by, *self.order_by):
            _ident(name)
        _interval(self.chunk_interval)
        _interval(self.compress_after)
        if not self.order_by or self.order_by[0] != self.time_column:
            raise ValueError("order_by must start with the time column")


def _scalar(conn: Connection, sql: str, **params: object) -> object:
    return conn.execute(text(sql), params).scalar()


def extension_installed(conn: Connection) -> bool:
    """True when ``CREATE EXTENSION timescaledb`` has run in this database."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(_scalar(conn, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"))


def timescale_usable(conn: Connection) -> bool:
    """True when TimescaleDB is installed, or installable (packaged and preloaded) on this server.

    A packaged but not preloaded extension is reported as unusable with a warning: CREATE
    EXTENSION would fail there and abort the whole upgrade, and a loud skip is more useful.
    """
    if conn.dialect.name != "postgresql":
        log.info("timescale: skipped (dialect %s is not postgresql)", conn.dialect.name)
        return False
    if extension_installed(conn):
        return True
    if not _scalar(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        log.info("timescale: skipped (extension timescaledb not available on this server)")
        return False
    preload = str(_scalar(conn, "SHOW shared_preload_libraries") or "")
    if "timescaledb" not in preload:
        log.warning("timescale: skipped (timescaledb is packaged but not in shared_preload_libraries)")
        return False
    return True


def license_edition(conn: Connection) -> str:
    """'timescale' (community: compression and policies) or 'apache' (hypertables only)."""
    return str(_scalar(conn, "SELECT current_setting('timescaledb.license', true)") or "timescale")


def is_hypertable(conn: Connection, table: str) -> bool:
    """True when ``table`` (in the current schema) is a hypertable."""
    if not extension_installed(conn):
        return False
    return bool(
        _scalar(
            conn,
            "SELECT 1 FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = :t",
            t=_ident(table),
        )
    )


def make_hypertable(conn: Connection, spec: HypertableSpec, retention_days: int) -> bool:
    """Make ``spec.table`` a compressed hypertable with a compression and (if > 0) a retention policy.

    Idempotent, and a logged no-op returning False where TimescaleDB cannot be used. Existing rows
    move into chunks (``migrate_data``). No default time index is added: the tables' primary keys
    already lead to the time column per series, and an index the models do not declare would show
    up as schema drift.
    """
    if retention_days < 0:
        raise ValueError(f"retention_days must be >= 0, got {retention_days}")
    if not timescale_usable(conn):
        return False
    table = _ident(spec.table)
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    conn.execute(
        text(
            "SELECT create_hypertable(CAST(:t AS regclass), by_range(:col, CAST(:chunk AS interval)), "
            "create_default_indexes => false, if_not_exists => true, migrate_data => true)"
        ),
        {"t": table, "col": spec.time_column, "chunk": spec.chunk_interval},
    )
    if license_edition(conn) == "apache":
        # The Apache-2-only build has hypertables but neither compression nor policies.
        log.warning("timescale: Apache-only build, %s left without compression/retention policies", table)
        return True
    conn.execute(
        text(
            f"ALTER TABLE {table} SET (timescaledb.compress, "
            f"timescaledb.compress_segmentby = '{', '.join(spec.segment_by)}', "
            f"timescaledb.compress_orderby = '{', '.join(spec.order_by)}')"
        )
    )
    conn.execute(
        text(
            "SELECT add_compression_policy(CAST(:t AS regclass), CAST(:after AS interval), "
            "if_not_exists => true)"
        ),
        {"t": table, "after": spec.compress_after},
    )
    if retention_days:
        conn.execute(
            text(
                "SELECT add_retention_policy(CAST(:t AS regclass), "
                "make_interval(days => CAST(:d AS integer)), if_not_exists => true)"
            ),
            {"t": table, "d": retention_days},
        )
    retention = f"{retention_days} d" if retention_days else "none"
    log.info(
        "timescale: %s is a hypertable (chunks %s, compress after %s, retention %s)",
        table,
        spec.chunk_interval,
        spec.compress_after,
        retention,
    )
    return True


def undo_hypertable(conn: Connection, table: str) -> bool:
    """Remove the policies and compression of ``table``; it stays a hypertable, with every row.

    TimescaleDB cannot turn a hypertable back into a plain table in place, and dropping the
    extension would drop the data, so both stay. Returns False (and does nothing) when ``table``
    is not a hypertable.
    """
    table = _ident(table)
    if not is_hypertable(conn, table):
        log.info("timescale: downgrade skipped (%s is not a hypertable)", table)
        return False
    if license_edition(conn) == "apache":
        return True  # nothing but the hypertable was created
    for remove in ("remove_retention_policy", "remove_compression_policy"):
        conn.execute(text(f"SELECT {remove}(CAST(:t AS regclass), if_exists => true)"), {"t": table})
    conn.execute(
        text("SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks(CAST(:t AS regclass)) c"),
        {"t": table},
    )
    conn.execute(text(f"ALTER TABLE {table} SET (timescaledb.compress = false)"))
    return True
