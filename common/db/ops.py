"""Operational bookkeeping: service liveness and replay runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Double, Index
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base, created_column, updated_column


class ServiceHeartbeat(Base):
    """Last sign of life per service instance; the bridge shows stale ones as down."""

    __tablename__ = "service_heartbeats"

    service: Mapped[str] = mapped_column(primary_key=True)
    instance: Mapped[str] = mapped_column(primary_key=True)
    last_seen: Mapped[datetime] = updated_column()
    lag: Mapped[float | None] = mapped_column(Double)  # seconds behind (consumer lag or tick delay)
    info: Mapped[dict[str, Any] | None] = mapped_column()


class ReplayRun(Base):
    """A backtest through the real pipeline; its rows elsewhere carry `namespace`."""

    __tablename__ = "replay_runs"
    __table_args__ = (
        Index("ix_replay_runs_namespace", "namespace"),
        Index("ix_replay_runs_started_at", "started_at"),
    )

    run_id: Mapped[str] = mapped_column(primary_key=True)
    namespace: Mapped[str]
    started_at: Mapped[datetime] = created_column()
    finished_at: Mapped[datetime | None]
    status: Mapped[str]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AvroSchema(Base):
    """A writer schema some service version produces with, by its single-object fingerprint.

    Filled idempotently by every producer at start (and by ``ops migrate`` before a deploy rolls),
    read by consumers that meet a fingerprint their build does not ship: a rolling deploy's newer
    writers stay readable by older readers. Rows are never updated: a fingerprint names one schema.
    """

    __tablename__ = "avro_schemas"

    fingerprint: Mapped[str] = mapped_column(primary_key=True)  # 16 hex chars, wire byte order
    name: Mapped[str]  # full record name, e.g. btcmeta.OrderIntent
    schema_json: Mapped[str]  # the full schema (with defaults: resolution needs them), as written
    registered_by: Mapped[str]
    registered_at: Mapped[datetime] = created_column()
