"""Engine and session helpers shared by every service, the training CLI and the tests.

JSON is serialized by our own function because strategy indicators and rejected candles routinely
contain NaN/inf, which PostgreSQL's json parser refuses: one warm-up NaN would otherwise make a
whole recommendation (or the audit row of a bad candle) fail to insert.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

_PG_DRIVERLESS = {"postgres", "postgresql"}
_REPO = Path(__file__).resolve().parents[2]


def normalize_url(url: str) -> str:
    """Point driverless PostgreSQL URLs at psycopg 3, the only PostgreSQL driver installed."""
    parsed = make_url(url)
    if parsed.drivername in _PG_DRIVERLESS:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _finite(value: Any) -> Any:
    """Replace non-finite floats by their names, recursively, so the document stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """JSON serializer for engines: NaN-safe, and tolerant of datetimes/Decimals via str()."""
    return json.dumps(_finite(value), default=str, allow_nan=False)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite ignores FOREIGN KEY clauses unless asked per connection; the laptop path should not."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.password is not None:
        return None
    if os.environ.get("PGPASSWORD") or os.environ.get("PGPASSFILE") or "passfile" in parsed.query:
        return None
    return str(local_passfile())


def with_local_passfile(dsn: str) -> str:
    """A libpq/SQLAlchemy URL with ``?passfile=`` added when :func:`passfile_for` says so.

    For code that connects with psycopg directly (test fixtures, benchmarks) or hands a URL to
    a subprocess: the URL then works against the local scram cluster on its own.
    """
    passfile = passfile_for(dsn)
    if passfile is None:
        return dsn
    return f"{dsn}{'&' if '?' in dsn else '?'}passfile={quote(passfile, safe='/')}"


#: Seconds libpq waits for a new connection; without it a frozen or unreachable server blocks a
#: service's start (or a pool refill after an outage) for the kernel's TCP timeout, minutes.
DEFAULT_CONNECT_TIMEOUT_S = 10


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
        connect_args: dict[str, Any] = {
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        if connect_timeout_s:
            connect_args["connect_timeout"] = connect_timeout_s
        if statement_timeout_ms:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
        passfile = passfile_for(url)
        if passfile is not None:
            connect_args["passfile"] = passfile
        kwargs["connect_args"] = connect_args | kwargs.get("connect_args", {})
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
