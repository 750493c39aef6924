"""Engine and session helpers shared by every service, the training CLI and the tests.

JSON is serialized by our own function because strategy indicators and rejected candles routinely
contain NaN/inf, which PostgreSQL's json parser refuses: one warm-up NaN would otherwise make a
whole recommendation (or the audit row of a bad candle) fail to insert.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from psycopg import Cursor

# The URL, passfile and JSON rules live in common.db.direct (no SQLAlchemy there: background
# writers use them without loading it); re-exported here for the code that imports them from here.
from common.db.direct import (
    DEFAULT_CONNECT_TIMEOUT_S,
    connect_args,
    json_dumps,
    local_passfile,
    passfile_for,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "engine_cursor",
    "json_dumps",
    "local_passfile",
    "make_engine",
    "normalize_url",
    "passfile_for",
    "session_cursor",
    "session_scope",
    "with_local_passfile",
]

_PG_DRIVERLESS = {"postgres", "postgresql"}


def normalize_url(url: str) -> str:
    """Point driverless PostgreSQL URLs at psycopg 3, the only PostgreSQL driver installed."""
    parsed = make_url(url)
    if parsed.drivername in _PG_DRIVERLESS:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite ignores FOREIGN KEY clauses unless asked per connection; the laptop path should not."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def with_local_passfile(dsn: str) -> str:
    """A libpq/SQLAlchemy URL with ``?passfile=`` added when :func:`passfile_for` says so.

    For code that connects with psycopg directly (test fixtures, benchmarks) or hands a URL to
    a subprocess: the URL then works against the local scram cluster on its own.
    """
    passfile = passfile_for(dsn)
    if passfile is None:
        return dsn
    return f"{dsn}{'&' if '?' in dsn else '?'}passfile={quote(passfile, safe='/')}"


def make_engine(
    url: str,
    *,
    connect_timeout_s: int | None = DEFAULT_CONNECT_TIMEOUT_S,
    statement_timeout_ms: int | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine whose pooled connections are checked before use.

    pool_pre_ping because services hold connections across Postgres restarts and failovers;
    a stale connection would otherwise surface as an error in the middle of a tick.
    PostgreSQL connections get a connect timeout and TCP keepalives (a dead peer is noticed in
    about a minute, not hours) and, when asked, a server-side ``statement_timeout``: long-running
    services pass one so a query stuck behind a lock fails instead of wedging the loop; migrations
    and bulk jobs do not, since their statements may legitimately run long.
    """
    url = normalize_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("json_serializer", json_dumps)
    if make_url(url).get_backend_name() == "postgresql":
        args = connect_args(
            url, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms
        )
        kwargs["connect_args"] = args | kwargs.get("connect_args", {})
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises.

    expire_on_commit=False so objects read inside the block stay usable after it (services pass
    them to Kafka producers and API responses once the transaction is closed).
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def session_cursor(s: Session) -> Cursor[Any]:
    """A psycopg cursor on ``s``'s connection, inside its transaction (PostgreSQL only).

    For the executor's per-intent statements (ADR 0029): through the ORM each one cost ~0.5-1 ms
    of CPU in statement construction, cache-key generation and result processing, several times
    the database's own time. Pending ORM changes are flushed first, so plain SQL sees everything
    the session wrote; the ORM does not see what plain SQL writes, so callers use it for rows
    the session does not hold. A savepoint rollback undoes both alike (same connection).
    """
    s.flush()
    import psycopg  # here: most importers of this module never run plain SQL

    raw = s.connection().connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise ValueError(f"plain SQL needs a psycopg (PostgreSQL) connection, not {type(raw).__name__}")
    cur: Cursor[Any] = raw.cursor()
    return cur


@contextmanager
def engine_cursor(engine: Engine) -> Iterator[Cursor[Any]]:
    """A psycopg cursor in a transaction of its own on one of ``engine``'s pooled connections.

    Committed when the block succeeds, rolled back when it raises (as :func:`session_scope`).
    """
    if engine.dialect.name != "postgresql":
        raise ValueError(f"plain SQL needs PostgreSQL, not {engine.dialect.name}")
    import psycopg

    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        with raw.cursor() as cur:
            yield cur
