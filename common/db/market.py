"""Market data and the signal path: candles, ticks, strategy recommendations, meta decisions.

Candles carry no namespace: they are the shared record of what the market did, read alike by the
live tick emitter and by replays. Everything derived from a tick is namespaced, because a replay
re-derives the same deterministic tick ids and must not collide with (or be deduplicated against)
the live run's rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Double, Index, Integer, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base, BigId, JSONDoc, created_column, namespace_column

RECOMMENDATION_TARGETS = ("LONG", "SHORT", "FLAT")
RECOMMENDATION_EVENTS = ("ENTER_LONG", "EXIT_LONG", "ENTER_SHORT", "EXIT_SHORT", "NONE")


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL membership test used by CHECK constraints on closed vocabularies of the Avro contract."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Candle(Base):
    """One OHLCV bar. The primary key doubles as the time-ordered index of a series."""

    __tablename__ = "candles"
    __table_args__ = (
        # A bar that breaks these is rejected upstream into candle_rejections; the CHECK is the
        # last line of defence so a bug there cannot poison every strategy's input.
        CheckConstraint(
            "low <= open AND low <= close AND high >= open AND high >= close AND low > 0",
            name="ohlc_consistent",
        ),
        CheckConstraint("volume >= 0", name="volume_non_negative"),
    )

    symbol: Mapped[str] = mapped_column(primary_key=True)
    timeframe: Mapped[str] = mapped_column(primary_key=True)
    open_time: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float] = mapped_column(Double)
    source: Mapped[str]
    ingested_at: Mapped[datetime] = created_column()


class CandleRejection(Base):
    """A candle refused by validation, kept verbatim with the reason for later audit."""

    __tablename__ = "candle_rejections"
    __table_args__ = (
        Index("ix_candle_rejections_symbol_timeframe_open_time", "symbol", "timeframe", "open_time"),
        Index("ix_candle_rejections_rejected_at", "rejected_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    symbol: Mapped[str]
    timeframe: Mapped[str]
    # Nullable: the timestamp itself may be what was unparseable.
    open_time: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    reason: Mapped[str]
    source: Mapped[str | None]
    rejected_at: Mapped[datetime] = created_column()


class Tick(Base):
    """What the tick emitter published; read back on restart so a tick is never published twice."""

    __tablename__ = "ticks"
    __table_args__ = (Index("ix_ticks_namespace_symbol_tick_time", "namespace", "symbol", "tick_time"),)

    namespace: Mapped[str] = namespace_column(primary_key=True)
    tick_id: Mapped[str] = mapped_column(primary_key=True)
    symbol: Mapped[str]
    tick_time: Mapped[datetime]
    due_timeframes: Mapped[list[str]] = mapped_column(JSONDoc)
    due_strategies: Mapped[list[str]] = mapped_column(JSONDoc)
    published_at: Mapped[datetime] = created_column()


class Recommendation(Base):
    """One strategy's output for one tick (the unified Recommendation contract)."""

    __tablename__ = "recommendations"
    __table_args__ = (
        CheckConstraint(_in("target", RECOMMENDATION_TARGETS), name="target_valid"),
        CheckConstraint(_in("event", RECOMMENDATION_EVENTS), name="event_valid"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        Index(
            "ix_recommendations_namespace_strategy_bar_close_time", "namespace", "strategy", "bar_close_time"
        ),
        Index("ix_recommendations_namespace_received_at", "namespace", "received_at"),
    )

    namespace: Mapped[str] = namespace_column(primary_key=True)
    tick_id: Mapped[str] = mapped_column(primary_key=True)
    strategy: Mapped[str] = mapped_column(primary_key=True)
    strategy_version: Mapped[str]
    symbol: Mapped[str]
    timeframe: Mapped[str]
    bar_close_time: Mapped[datetime]
    target: Mapped[str]
    event: Mapped[str]
    confidence: Mapped[float] = mapped_column(Double)
    horizon_bars: Mapped[int] = mapped_column(Integer)
    indicators: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # Recommendation v3 (revision 0006). NULL when there is nothing to say: a v1/v2 message, a
    # strategy that does not set the field (the wire's empty reason is stored as NULL, so "no
    # reason" has one spelling), or a row stored before the columns existed.
    #: Why the strategy has no opinion on this bar, e.g. "stale:funding_binance_8h".
    reason: Mapped[str | None] = mapped_column(Text)
    #: True on a news-related high-attention bar, False when the strategy says it is not one.
    attention: Mapped[bool | None] = mapped_column(Boolean)
    received_at: Mapped[datetime] = created_column()


class Decision(Base):
    """The meta policy's choice at one tick, with the exact observation it saw (for replay parity)."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("namespace", "tick_id", name="uq_decisions_namespace_tick_id"),
        Index("ix_decisions_namespace_decided_at", "namespace", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = namespace_column()
    tick_id: Mapped[str]
    model_id: Mapped[str]
    observation: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    action: Mapped[str]
    current_exposure: Mapped[float] = mapped_column(Double)
    target_exposure: Mapped[float] = mapped_column(Double)
    # True when the decision went ahead without every due strategy (deadline passed).
    degraded: Mapped[bool] = mapped_column(default=False, server_default=false())
    late_strategies: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    decided_at: Mapped[datetime] = created_column()
