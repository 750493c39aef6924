"""Service liveness in Postgres (``service_heartbeats``), which the bridge shows as service health.

Written by the shared consume loop every few seconds, so every Kafka service reports without
code of its own. A heartbeat is best effort: a database hiccup is logged and never stops the
service (the service's real work has its own error handling).

On PostgreSQL the upsert is plain SQL over one psycopg connection (``common.db.direct``), not
SQLAlchemy: every Kafka service runs this loop, and a strategy process has no other database use,
so SQLAlchemy and the models would be ~24 MB of its memory for one statement (issue 17's
"a strategy process < 150 MB"). Other URLs (SQLite on a laptop) keep the SQLAlchemy upsert,
imported only then.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from common.db.direct import PgConnection, json_dumps, libpq_url
from common.logging import get_logger
from config import Settings

log = get_logger(__name__)

#: One row per (service, instance), refreshed in place: the bridge shows ``last_seen`` and ``lag``.
UPSERT = (
    "INSERT INTO service_heartbeats (service, instance, last_seen, lag, info)"
    " VALUES (%s, %s, %s, %s, %s::jsonb)"
    " ON CONFLICT (service, instance) DO UPDATE"
    " SET last_seen = EXCLUDED.last_seen, lag = EXCLUDED.lag, info = EXCLUDED.info"
)


class Heartbeat:
    def __init__(self, settings: Settings, service: str, *, every_s: float = 5.0) -> None:
        self._url = settings.database_url.get_secret_value()
        #: Replays and tests run the same services under a topic prefix: keep them apart.
        self.service = f"{settings.kafka.topic_prefix}{service}"
        self.instance = os.environ.get("HOSTNAME") or socket.gethostname()
        self._every = every_s
        self._last = 0.0
        self._pg = (
            PgConnection(self._url, connect_timeout_s=3, statement_timeout_ms=5_000)
            if libpq_url(self._url) is not None
            else None
        )
        self._engine: Any = None  # SQLAlchemy Engine, only for a non-PostgreSQL URL
        self._warned = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last >= self._every

    def beat(self, lag_seconds: float | None, info: dict[str, Any]) -> None:
        self._last = time.monotonic()
        now = datetime.now(UTC)
        try:
            if self._pg is not None:
                self._pg.execute(UPSERT, (self.service, self.instance, now, lag_seconds, json_dumps(info)))
            else:
                self._beat_sqlalchemy(now, lag_seconds, info)
        except Exception as exc:
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("heartbeat_failed", service=self.service, error=str(exc))

    def _beat_sqlalchemy(self, now: datetime, lag_seconds: float | None, info: dict[str, Any]) -> None:
        """The same upsert through SQLAlchemy, for a database other than PostgreSQL (SQLite)."""
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        from common.db.models import ServiceHeartbeat
        from common.db.session import make_engine, session_scope

        if self._engine is None:
            self._engine = make_engine(self._url, connect_timeout_s=3, statement_timeout_ms=5_000)
        values = {"service": self.service, "instance": self.instance, "last_seen": now, "lag": lag_seconds}
        stmt = sqlite_insert(ServiceHeartbeat).values(**values, info=info)
        stmt = stmt.on_conflict_do_update(
            index_elements=["service", "instance"], set_={"last_seen": now, "lag": lag_seconds, "info": info}
        )
        with session_scope(self._engine) as s:
            s.execute(stmt)
