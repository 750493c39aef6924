"""PostgreSQL through psycopg alone, for the few statements every service runs in the background.

Why not SQLAlchemy here: the shared consume loop writes a heartbeat every few seconds and every
producer registers its Avro schemas at start (``common.heartbeat``, ``common.schema_store``).
Through SQLAlchemy that loads sqlalchemy core, the ORM, the PostgreSQL dialect and the models
(~24 MB of resident memory) into every process, and a strategy process has no other use for a
database: with it, no strategy process met issue 17's "< 150 MB" (docs/BENCHMARKS.md). The
statements are three fixed one-liners, so plain SQL costs nothing in clarity.

This module imports nothing heavy at import time (psycopg is loaded on the first connection).
It understands the same URLs as :func:`common.db.session.make_engine` for PostgreSQL
(``postgresql[+psycopg]://...``, driverless ``postgres://`` too) and applies the same connection
settings (connect timeout, TCP keepalives, optional ``statement_timeout``, the local passfile).
Any other URL (SQLite on a laptop) gives ``None`` from :func:`libpq_url`; callers then keep
their SQLAlchemy path.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

if TYPE_CHECKING:
    from psycopg import Connection, Cursor

_REPO = Path(__file__).resolve().parents[2]
_PG_BACKENDS = {"postgres", "postgresql"}

#: Seconds libpq waits for a new connection; without it a frozen or unreachable server blocks a
#: service's start (or a pool refill after an outage) for the kernel's TCP timeout, minutes.
DEFAULT_CONNECT_TIMEOUT_S = 10

#: TCP keepalives: a dead peer is noticed in about a minute, not hours.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def _finite(value: Any) -> Any:
    """Replace non-finite floats by their names, recursively, so the document stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(float(value))  # 'nan', 'inf', '-inf' (numpy scalars too, not 'np.float64(nan)')
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """JSON serializer for engines: NaN-safe, and tolerant of datetimes/Decimals via str().

    Documents are almost always finite, so the C encoder runs first and the recursive rewrite of
    non-finite floats (~0.5 ms on a decision row) only when it refuses one; a finite document
    gives the same text either way, because the rewrite changes nothing else.
    """
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=str, allow_nan=False)


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (any driver suffix: ``postgresql+psycopg``)."""
    return urlsplit(url).scheme.partition("+")[0] in _PG_BACKENDS


def libpq_url(url: str) -> str | None:
    """The libpq URI for a PostgreSQL URL in SQLAlchemy's form (driver suffix dropped), else None."""
    parts = urlsplit(url)
    if parts.scheme.partition("+")[0] not in _PG_BACKENDS:
        return None
    return urlunsplit(parts._replace(scheme="postgresql"))


def local_passfile() -> Path:
    """The libpq password file ``infra/dev.sh`` writes for the local cluster (may not exist yet).

    ``$BTCMETA_STATE_DIR/pg/pgpass``, else ``.local/pg/pgpass`` in the checkout: the same rule as
    infra/dev.sh, so a second local cluster (another state dir and port) has its own file.
    """
    state = os.environ.get("BTCMETA_STATE_DIR") or str(_REPO / ".local")
    return Path(state) / "pg" / "pgpass"


def passfile_for(url: str) -> str | None:
    """The local passfile for a PostgreSQL URL that carries no password, else None.

    The local cluster uses scram-sha-256 with a generated password kept in ``.local/`` (never in
    a URL, an env var or a log). libpq reads the file only for host:port:db:user lines that
    match, and ignores a missing file, so passing it is harmless against any other server and
    against a cluster still on ``trust``. An explicit password, ``PGPASSWORD`` or ``PGPASSFILE``
    wins: this only fills the gap.
    """
    if not is_postgres(url):
        return None
    parts = urlsplit(url)
    if parts.password is not None:
        return None
    if os.environ.get("PGPASSWORD") or os.environ.get("PGPASSFILE") or "passfile" in parse_qs(parts.query):
        return None
    return str(local_passfile())


def connect_args(
    url: str, *, connect_timeout_s: int | None, statement_timeout_ms: int | None
) -> dict[str, Any]:
    """libpq keyword arguments for ``url`` (a PostgreSQL URL): what every service connection gets."""
    args: dict[str, Any] = dict(KEEPALIVES)
    if connect_timeout_s:
        args["connect_timeout"] = connect_timeout_s
    if statement_timeout_ms:
        args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    passfile = passfile_for(url)
    if passfile is not None:
        args["passfile"] = passfile
    return args


class PgConnection:
    """One lazily opened autocommit connection, reopened after it failed.

    Each :meth:`execute` is its own transaction (autocommit), which is what the single-statement
    callers need. A failed statement closes the connection and raises; the next call opens a new
    one, so a Postgres restart costs the caller one error (SQLAlchemy's ``pool_pre_ping`` would
    have spent a round trip per use to avoid it; these callers are best effort or retry anyway).

    :meth:`transaction` and :meth:`cursor` serve callers that run several statements per unit of
    work on a hot path (the meta consumer, ADR 0021): the connection is held between calls, and it
    is dropped only when it broke (a failed statement inside a transaction is rolled back and the
    connection kept). One thread at a time: a connection carries one transaction, so a service
    with two threads that write holds one of these per thread.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int | None = DEFAULT_CONNECT_TIMEOUT_S,
        statement_timeout_ms: int | None = None,
    ) -> None:
        dsn = libpq_url(url)
        if dsn is None:
            raise ValueError("PgConnection needs a PostgreSQL URL")
        self._dsn = dsn
        self._args = connect_args(
            url, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms
        )
        self._conn: Connection[Any] | None = None  # psycopg is imported on first use

    def _open(self) -> Connection[Any]:
        if self._conn is None or self._conn.closed:
            import psycopg

            self._conn = psycopg.connect(self._dsn, autocommit=True, **self._args)
        return self._conn

    def _drop_if_broken(self, conn: Connection[Any]) -> None:
        """Forget ``conn`` when it can no longer be used (lost, or stuck in a transaction)."""
        from psycopg.pq import TransactionStatus

        unusable = conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE
        if unusable and conn is self._conn:
            self.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement; returns (rowcount, rows; empty when it returns none)."""
        conn = self._open()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description is not None else []
                return max(0, cur.rowcount), rows
        except BaseException:
            self.close()
            raise

    @contextmanager
    def cursor(self) -> Iterator[Cursor[Any]]:
        """A cursor outside any transaction: each statement commits on its own (one round trip)."""
        conn = self._open()
        try:
            with conn.cursor() as cur:
                yield cur
        except BaseException:
            self._drop_if_broken(conn)
            raise

    @contextmanager
    def transaction(self) -> Iterator[Cursor[Any]]:
        """A cursor inside one transaction: committed when the block ends, rolled back if it raises.

        A connection the server dropped while idle (a restart, a failover) fails the block with
        ``psycopg.OperationalError`` and is closed; the next call opens a new one. Callers that
        must ride that out run the block under :func:`common.db.retry.with_db_retry`.
        """
        conn = self._open()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except BaseException:
            self._drop_if_broken(conn)
            raise

    def close(self) -> None:
        """Close the connection (if open); the next call opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
