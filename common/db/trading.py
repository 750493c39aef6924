"""Execution and risk: intents, orders, fills, positions, P&L, funding, risk switches, audit.

Every key leads with `namespace`. Intent and client order ids are deterministic (tick + model), so
a replay over a period the live system also traded would otherwise collide with live rows, and
the executor's dedup would wrongly refuse (or accept) intents across the two.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    Double,
    ForeignKeyConstraint,
    Index,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base, BigId, JSONDoc, created_column, namespace_column, updated_column


class Intent(Base):
    """An OrderIntent as received by the executor; the primary key is its dedup guard."""

    __tablename__ = "intents"
    __table_args__ = (
        Index("ix_intents_namespace_received_at", "namespace", "received_at"),
        Index("ix_intents_namespace_tick_id", "namespace", "tick_id"),
    )

    namespace: Mapped[str] = namespace_column(primary_key=True)
    intent_id: Mapped[str] = mapped_column(primary_key=True)
    tick_id: Mapped[str]
    model_id: Mapped[str]
    action: Mapped[str]
    target_exposure: Mapped[float] = mapped_column(Double)
    status: Mapped[str]
    reason: Mapped[str | None]
    received_at: Mapped[datetime] = created_column()
    handled_at: Mapped[datetime | None]


class Order(Base):
    """An order the executor sent (or would send, on the paper exchange)."""

    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(
            ["namespace", "intent_id"],
            ["intents.namespace", "intents.intent_id"],
            name="fk_orders_intent_id_intents",
        ),
        CheckConstraint("side IN ('buy', 'sell')", name="side_valid"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_orders_namespace_created_at", "namespace", "created_at"),
        Index("ix_orders_namespace_intent_id", "namespace", "intent_id"),
        Index("ix_orders_exchange_exchange_order_id", "exchange", "exchange_order_id"),
    )

    namespace: Mapped[str] = namespace_column(primary_key=True)
    client_order_id: Mapped[str] = mapped_column(primary_key=True)
    intent_id: Mapped[str]
    exchange: Mapped[str]
    exchange_order_id: Mapped[str | None]
    symbol: Mapped[str]
    side: Mapped[str]
    order_type: Mapped[str] = mapped_column(default="market", server_default="market")
    quantity: Mapped[float] = mapped_column(Double)
    price: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str]
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class Fill(Base):
    """One execution against an order; fees in quote currency (USD)."""

    __tablename__ = "fills"
    __table_args__ = (
        ForeignKeyConstraint(
            ["namespace", "client_order_id"],
            ["orders.namespace", "orders.client_order_id"],
            name="fk_fills_client_order_id_orders",
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_fills_namespace_filled_at", "namespace", "filled_at"),
        Index("ix_fills_namespace_client_order_id", "namespace", "client_order_id"),
    )

    namespace: Mapped[str] = namespace_column(primary_key=True)
    fill_id: Mapped[str] = mapped_column(primary_key=True)
    client_order_id: Mapped[str]
    quantity: Mapped[float] = mapped_column(Double)
    price: Mapped[float] = mapped_column(Double)
    fee: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    liquidity: Mapped[str | None]  # 'maker' / 'taker' as CCXT reports it
    filled_at: Mapped[datetime]


class Position(Base):
    """Current position per symbol: signed BTC quantity (long > 0, short < 0)."""

    __tablename__ = "positions"

    namespace: Mapped[str] = namespace_column(primary_key=True)
    symbol: Mapped[str] = mapped_column(primary_key=True)
    quantity: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    avg_entry_price: Mapped[float | None] = mapped_column(Double)
    realized_pnl: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    updated_at: Mapped[datetime] = updated_column()


class PnlDaily(Base):
    """End-of-day P&L snapshot (UTC days); the primary key is also the time-ordered index."""

    __tablename__ = "pnl_daily"

    namespace: Mapped[str] = namespace_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    realized: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    unrealized: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    fees: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    funding: Mapped[float] = mapped_column(Double, default=0.0, server_default=text("0"))
    equity: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime] = updated_column()


class FundingPayment(Base):
    """A perpetual funding settlement; unique per (namespace, symbol, time) so re-syncs are idempotent."""

    __tablename__ = "funding_payments"
    __table_args__ = (
        UniqueConstraint(
            "namespace", "symbol", "funding_time", name="uq_funding_payments_namespace_symbol_funding_time"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = namespace_column()
    symbol: Mapped[str]
    funding_time: Mapped[datetime]
    rate: Mapped[float] = mapped_column(Double)
    position_quantity: Mapped[float] = mapped_column(Double)
    # Signed, quote currency: negative when the account paid.
    amount: Mapped[float] = mapped_column(Double)
    recorded_at: Mapped[datetime] = created_column()


class RiskState(Base):
    """Operator switches the executor checks before every order."""

    __tablename__ = "risk_state"

    namespace: Mapped[str] = namespace_column(primary_key=True)
    kill_switch: Mapped[bool] = mapped_column(default=False, server_default=false())
    kill_reason: Mapped[str | None]
    trading_paused: Mapped[bool] = mapped_column(default=False, server_default=false())
    halted_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = updated_column()
    updated_by: Mapped[str | None]


class AuditLog(Base):
    """Append-only record of who changed what (risk switches, model selection, ...)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = namespace_column()
    actor: Mapped[str]
    role: Mapped[str]
    action: Mapped[str]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    at: Mapped[datetime] = created_column()
