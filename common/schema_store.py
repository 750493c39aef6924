"""The schema store: every writer schema in use, by fingerprint, in Postgres (``avro_schemas``).

Why: messages carry only the 8-byte fingerprint of their writer schema (single-object encoding).
A consumer finds it among the schemas its build ships; during a rolling deploy a NEWER producer
may write a fingerprint an older consumer has never seen. Every producer therefore registers the
schemas of its build here (idempotently, at start), and ``ops migrate`` does it for a release
before its pods roll; a consumer that meets an unknown fingerprint looks it up here and resolves
the newer writer schema to its own reader schema (Avro schema resolution). Only when the store
does not have it either does the consumer wait (docs/decisions/0014-unknown-schema-fingerprints.md).

Postgres rather than a registry service or a Kafka topic: every service already has it, it is
transactional, and an ``INSERT .. ON CONFLICT DO NOTHING`` keyed by fingerprint is idempotent
under any number of concurrent producers. Rows are immutable: a fingerprint names one schema.

Every producer runs :func:`register_in_background` and every consumer holds a store, so on
PostgreSQL the two statements are plain SQL over psycopg (``common.db.direct``) and this module
never imports SQLAlchemy: a strategy process has no other database use, and SQLAlchemy with the
models is ~24 MB of its memory (issue 17: "a strategy process < 150 MB"). A store given an
engine, or a URL of another database (SQLite on a laptop), uses SQLAlchemy, imported then.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from common import serde
from common.db.direct import PgConnection, libpq_url
from common.logging import get_logger
from config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = get_logger(__name__)

__all__ = ["SchemaStore", "register_in_background", "register_shipped"]

#: All rows in one statement (one array per column), so the row count is exactly the new ones.
REGISTER = (
    "INSERT INTO avro_schemas (fingerprint, name, schema_json, registered_by)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (fingerprint) DO NOTHING"
)
LOOKUP = "SELECT schema_json FROM avro_schemas WHERE fingerprint = %s"


class SchemaStore:
    """Lookup and registration of writer schemas; the connection is made on first use only.

    Consumers hold one from start but touch the database only when they meet an unknown
    fingerprint, which is rare (a rolling deploy), so an idle store costs nothing.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        if url is None and engine is None:
            raise ValueError("SchemaStore needs a database url or an engine")
        self._url = url
        self._engine = engine
        # Short timeouts: a consumer asking during an outage must come back and wait, not hang.
        self._pg = (
            PgConnection(url, connect_timeout_s=3, statement_timeout_ms=5_000)
            if engine is None and url is not None and libpq_url(url) is not None
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaStore:
        return cls(settings.database_url.get_secret_value())

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of a store that was given one or whose URL is not PostgreSQL."""
        if self._engine is None:
            from common.db.session import make_engine

            assert self._url is not None
            self._engine = make_engine(self._url, connect_timeout_s=3, statement_timeout_ms=5_000)
        return self._engine

    def close(self) -> None:
        """Release the connection (or the engine's pool); the store reconnects if used again."""
        if self._pg is not None:
            self._pg.close()
        elif self._engine is not None:
            self._engine.dispose()

    def register(self, schemas: Iterable[serde.SchemaVersion], registered_by: str) -> int:
        """Insert the schemas the store lacks; returns how many were new. Safe to run concurrently."""
        rows = [
            {
                "fingerprint": sv.fingerprint.hex(),
                "name": sv.name,
                "schema_json": serde_json(sv),
                "registered_by": registered_by,
            }
            for sv in schemas
        ]
        if not rows:
            return 0
        if self._pg is not None:
            columns = [
                [row[c] for row in rows] for c in ("fingerprint", "name", "schema_json", "registered_by")
            ]
            added, _ = self._pg.execute(REGISTER, columns)
            return added
        return self._register_sqlalchemy(rows)

    def _register_sqlalchemy(self, rows: list[dict[str, str]]) -> int:
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        from common.db.models import AvroSchema
        from common.db.session import session_scope

        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(AvroSchema).values(rows).on_conflict_do_nothing(index_elements=["fingerprint"])
        with session_scope(self.engine) as s:
            result = s.execute(stmt)
        return max(0, int(getattr(result, "rowcount", 0) or 0))

    def lookup(self, fingerprint: bytes) -> str | None:
        """The schema JSON registered for ``fingerprint``, or None. Database errors propagate."""
        if self._pg is not None:
            _, rows = self._pg.execute(LOOKUP, (fingerprint.hex(),))
            return str(rows[0][0]) if rows else None
        from sqlalchemy import select

        from common.db.models import AvroSchema
        from common.db.session import session_scope

        with session_scope(self.engine) as s:
            query = select(AvroSchema.schema_json).where(AvroSchema.fingerprint == fingerprint.hex())
            found = s.scalar(query)
        return found

    def resolve(self, fingerprint: bytes) -> serde.SchemaVersion | None:
        """Teach ``fingerprint``'s writer schema to this process' serde; None when the store lacks it.

        A row that does not hash to its key or names a type this build does not read raises
        SerdeError (it will not get better by waiting either; the caller decides what to do).
        """
        found = self.lookup(fingerprint)
        if found is None:
            return None
        sv = serde.learn_schema(found, fingerprint)
        log.info("schema_learned", fingerprint=fingerprint.hex(), schema=sv.name)
        return sv


def serde_json(sv: serde.SchemaVersion) -> str:
    """The schema exactly as its file has it (defaults and docs kept: resolution needs defaults)."""
    return json.dumps(sv.raw, sort_keys=True, separators=(",", ":"))


def register_shipped(settings: Settings, service: str) -> int:
    """Register every schema this build ships (current and history); returns how many were new."""
    store = SchemaStore.from_settings(settings)
    try:
        added = store.register(serde.shipped_schemas(), service)
    finally:
        store.close()
    if added:
        log.info("schemas_registered", service=service, added=added)
    return added


_REGISTERED: set[str] = set()
_REGISTERED_LOCK = threading.Lock()


def register_in_background(settings: Settings, service: str) -> None:
    """Best-effort registration once per process and database, off the caller's thread.

    Called when a producer starts: a producer must never fail or stall because the store is
    unreachable (``ops migrate`` has normally registered the release already); a consumer that
    meets the fingerprint before it is registered waits rather than losing the message.
    """
    url = settings.database_url.get_secret_value()
    with _REGISTERED_LOCK:
        if url in _REGISTERED:
            return
        _REGISTERED.add(url)

    def work() -> None:
        try:
            register_shipped(settings, service)
        except Exception as exc:
            with _REGISTERED_LOCK:
                _REGISTERED.discard(url)  # the next producer of this process tries again
            log.warning("schema_register_failed", service=service, error=f"{type(exc).__name__}: {exc}")

    threading.Thread(target=work, name="schema-register", daemon=True).start()
