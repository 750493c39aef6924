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
