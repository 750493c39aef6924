"""Engine and session helpers shared by every service, the training CLI and the tests.

JSON is serialized by our own function because strategy indicators and rejected candles routinely
contain NaN/inf, which PostgreSQL's json parser refuses: one warm-up NaN would otherwise make a
whole recommendation (or the audit row of a bad candle) fail to insert.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

_PG_DRIVERLESS = {"postgres", "postgresql"}


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


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine whose pooled connections are checked before use.

    pool_pre_ping because services hold connections across Postgres restarts and failovers;
    a stale connection would otherwise surface as an error in the middle of a tick.
    """
    url = normalize_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("json_serializer", json_dumps)
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
