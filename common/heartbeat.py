"""Service liveness in Postgres (``service_heartbeats``), which the bridge shows as service health.

Written by the shared consume loop every few seconds, so every Kafka service reports without
code of its own. A heartbeat is best effort: a database hiccup is logged and never stops the
service (the service's real work has its own error handling).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert

from common.db.models import ServiceHeartbeat
from common.db.session import make_engine, session_scope
from common.logging import get_logger
from config import Settings

log = get_logger(__name__)


class Heartbeat:
    def __init__(self, settings: Settings, service: str, *, every_s: float = 5.0) -> None:
        self._url = settings.database_url.get_secret_value()
        #: Replays and tests run the same services under a topic prefix: keep them apart.
        self.service = f"{settings.kafka.topic_prefix}{service}"
        self.instance = os.environ.get("HOSTNAME") or socket.gethostname()
        self._every = every_s
        self._last = 0.0
        self._engine: Engine | None = None
        self._warned = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last >= self._every

    def beat(self, lag_seconds: float | None, info: dict[str, Any]) -> None:
        self._last = time.monotonic()
        now = datetime.now(UTC)
        try:
            if self._engine is None:
                self._engine = make_engine(self._url, connect_timeout_s=3, statement_timeout_ms=5_000)
            values = {
                "service": self.service,
                "instance": self.instance,
                "last_seen": now,
                "lag": lag_seconds,
                "info": info,
            }
            stmt = pg_insert(ServiceHeartbeat).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["service", "instance"],
                set_={"last_seen": now, "lag": lag_seconds, "info": info},
            )
            with session_scope(self._engine) as s:
                s.execute(stmt)
        except Exception as exc:
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("heartbeat_failed", service=self.service, error=str(exc))
