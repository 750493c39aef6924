"""Initial product schema: market data, signals, execution, risk, models, operations.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Hand-written and frozen: it does not import common.db.models, so later model edits cannot
silently change what this revision creates. Constraint and index names follow the naming
convention in common/db/base.py, which keeps `compare_metadata` clean.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# fmt: off
# (Compact layout, several columns a line: a reviewer sees each table on one screen.)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _namespace() -> sa.Column:
    """Leading key column of namespaced tables (the PrimaryKeyConstraint says which)."""
    return sa.Column("namespace", sa.Text(), nullable=False, server_default="live")


def _now(name: str) -> sa.Column:
    return sa.Column(name, TS, nullable=False, server_default=sa.func.now())


def _id() -> sa.Column:
    return sa.Column("id", BIGID, primary_key=True, autoincrement=True)


def _double(name: str, nullable: bool = False, zero_default: bool = False) -> sa.Column:
    default = sa.text("0") if zero_default else None
    return sa.Column(name, sa.Double(), nullable=nullable, server_default=default)


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _false(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())


def _market() -> None:
    op.create_table(
        "candles",
        _text("symbol"), _text("timeframe"), sa.Column("open_time", TS, nullable=False),
        _double("open"), _double("high"), _double("low"), _double("close"), _double("volume"),
        _text("source"), _now("ingested_at"),
        sa.PrimaryKeyConstraint("symbol", "timeframe", "open_time", name="pk_candles"),
        sa.CheckConstraint(
            "low <= open AND low <= close AND high >= open AND high >= close AND low > 0",
            name="ck_candles_ohlc_consistent",
        ),
        sa.CheckConstraint("volume >= 0", name="ck_candles_volume_non_negative"),
    )
    op.create_table(
        "candle_rejections",
        _id(), _text("symbol"), _text("timeframe"), sa.Column("open_time", TS, nullable=True),
        sa.Column("raw", JSONDOC, nullable=False), _text("reason"), _text("source", nullable=True),
        _now("rejected_at"),
        sa.PrimaryKeyConstraint("id", name="pk_candle_rejections"),
    )
    op.create_index(
        "ix_candle_rejections_symbol_timeframe_open_time",
        "candle_rejections", ["symbol", "timeframe", "open_time"],
    )
    op.create_index("ix_candle_rejections_rejected_at", "candle_rejections", ["rejected_at"])

    op.create_table(
        "ticks",
        _namespace(), _text("tick_id"), _text("symbol"),
        sa.Column("tick_time", TS, nullable=False),
        sa.Column("due_timeframes", JSONDOC, nullable=False),
        sa.Column("due_strategies", JSONDOC, nullable=False),
        _now("published_at"),
        sa.PrimaryKeyConstraint("namespace", "tick_id", name="pk_ticks"),
    )
    op.create_index("ix_ticks_namespace_symbol_tick_time", "ticks", ["namespace", "symbol", "tick_time"])

    op.create_table(
        "recommendations",
        _namespace(), _text("tick_id"), _text("strategy"), _text("strategy_version"),
        _text("symbol"), _text("timeframe"), sa.Column("bar_close_time", TS, nullable=False),
        _text("target"), _text("event"), _double("confidence"),
        sa.Column("horizon_bars", sa.Integer(), nullable=False),
        sa.Column("indicators", JSONDOC, nullable=False), _now("received_at"),
        sa.PrimaryKeyConstraint("namespace", "tick_id", "strategy", name="pk_recommendations"),
        sa.CheckConstraint("target IN ('LONG', 'SHORT', 'FLAT')", name="ck_recommendations_target_valid"),
        sa.CheckConstraint(
            "event IN ('ENTER_LONG', 'EXIT_LONG', 'ENTER_SHORT', 'EXIT_SHORT', 'NONE')",
            name="ck_recommendations_event_valid",
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name="ck_recommendations_confidence_range"
        ),
    )
    op.create_index(
        "ix_recommendations_namespace_strategy_bar_close_time",
        "recommendations", ["namespace", "strategy", "bar_close_time"],
    )
    op.create_index(
        "ix_recommendations_namespace_received_at", "recommendations", ["namespace", "received_at"]
    )

    op.create_table(
        "decisions",
        _id(), _namespace(), _text("tick_id"), _text("model_id"),
        sa.Column("observation", JSONDOC, nullable=False), _text("action"),
        _double("current_exposure"), _double("target_exposure"), _false("degraded"),
        sa.Column("late_strategies", JSONDOC, nullable=False), _now("decided_at"),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint("namespace", "tick_id", name="uq_decisions_namespace_tick_id"),
    )
    op.create_index("ix_decisions_namespace_decided_at", "decisions", ["namespace", "decided_at"])


def _trading() -> None:
    op.create_table(
        "intents",
        _namespace(), _text("intent_id"), _text("tick_id"), _text("model_id"),
        _text("action"), _double("target_exposure"), _text("status"), _text("reason", nullable=True),
        _now("received_at"), sa.Column("handled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("namespace", "intent_id", name="pk_intents"),
    )
    op.create_index("ix_intents_namespace_received_at", "intents", ["namespace", "received_at"])
    op.create_index("ix_intents_namespace_tick_id", "intents", ["namespace", "tick_id"])

    op.create_table(
        "orders",
        _namespace(), _text("client_order_id"), _text("intent_id"), _text("exchange"),
        _text("exchange_order_id", nullable=True), _text("symbol"), _text("side"),
        sa.Column("order_type", sa.Text(), nullable=False, server_default="market"),
        _double("quantity"), _double("price", nullable=True), _text("status"),
        _now("created_at"), _now("updated_at"),
        sa.PrimaryKeyConstraint("namespace", "client_order_id", name="pk_orders"),
        sa.ForeignKeyConstraint(
            ["namespace", "intent_id"], ["intents.namespace", "intents.intent_id"],
            name="fk_orders_intent_id_intents",
        ),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="ck_orders_side_valid"),
        sa.CheckConstraint("quantity > 0", name="ck_orders_quantity_positive"),
    )
    op.create_index("ix_orders_namespace_created_at", "orders", ["namespace", "created_at"])
    op.create_index("ix_orders_namespace_intent_id", "orders", ["namespace", "intent_id"])
    op.create_index("ix_orders_exchange_exchange_order_id", "orders", ["exchange", "exchange_order_id"])

    op.create_table(
        "fills",
        _namespace(), _text("fill_id"), _text("client_order_id"),
        _double("quantity"), _double("price"), _double("fee", zero_default=True),
        _text("liquidity", nullable=True), sa.Column("filled_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "fill_id", name="pk_fills"),
        sa.ForeignKeyConstraint(
            ["namespace", "client_order_id"], ["orders.namespace", "orders.client_order_id"],
            name="fk_fills_client_order_id_orders",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_fills_quantity_positive"),
    )
    op.create_index("ix_fills_namespace_filled_at", "fills", ["namespace", "filled_at"])
    op.create_index("ix_fills_namespace_client_order_id", "fills", ["namespace", "client_order_id"])

    op.create_table(
        "positions",
        _namespace(), _text("symbol"), _double("quantity", zero_default=True),
        _double("avg_entry_price", nullable=True), _double("realized_pnl", zero_default=True),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("namespace", "symbol", name="pk_positions"),
    )
    op.create_table(
        "pnl_daily",
        _namespace(), sa.Column("day", sa.Date(), nullable=False),
        _double("realized", zero_default=True), _double("unrealized", zero_default=True),
        _double("fees", zero_default=True), _double("funding", zero_default=True), _double("equity"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("namespace", "day", name="pk_pnl_daily"),
    )
    op.create_table(
        "funding_payments",
        _id(), _namespace(), _text("symbol"), sa.Column("funding_time", TS, nullable=False),
        _double("rate"), _double("position_quantity"), _double("amount"), _now("recorded_at"),
        sa.PrimaryKeyConstraint("id", name="pk_funding_payments"),
        sa.UniqueConstraint(
            "namespace", "symbol", "funding_time", name="uq_funding_payments_namespace_symbol_funding_time"
        ),
    )
    op.create_table(
        "risk_state",
        _namespace(), _false("kill_switch"), _text("kill_reason", nullable=True),
        _false("trading_paused"), sa.Column("halted_until", TS, nullable=True), _now("updated_at"),
        _text("updated_by", nullable=True),
        sa.PrimaryKeyConstraint("namespace", name="pk_risk_state"),
    )
    op.create_table(
        "audit_log",
        _id(), _namespace(), _text("actor"), _text("role"), _text("action"),
        sa.Column("payload", JSONDOC, nullable=False), _now("at"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])


def _ml_and_ops() -> None:
    op.create_table(
        "training_runs",
        _text("run_id"), _now("started_at"), sa.Column("finished_at", TS, nullable=True),
        _text("host", nullable=True), _text("username", nullable=True),
        sa.Column("config", JSONDOC, nullable=False), _text("status"),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_training_runs"),
    )
    op.create_index("ix_training_runs_started_at", "training_runs", ["started_at"])

    op.create_table(
        "models",
        _text("model_id"), _text("algo"), _now("created_at"),
        sa.Column("feature_spec", JSONDOC, nullable=False),
        sa.Column("strategy_set", JSONDOC, nullable=False),
        sa.Column("params", JSONDOC, nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        _false("selected"), sa.Column("selected_at", TS, nullable=True), _text("selected_by", nullable=True),
        sa.PrimaryKeyConstraint("model_id", name="pk_models"),
    )
    op.create_index(
        "uq_models_selected", "models", ["selected"], unique=True,
        postgresql_where=sa.text("selected"), sqlite_where=sa.text("selected"),
    )
    op.create_index("ix_models_created_at", "models", ["created_at"])

    op.create_table(
        "evaluations",
        _id(), _text("run_id"), _text("model_id", nullable=True), _text("name"), _text("window"),
        sa.Column("metrics", JSONDOC, nullable=False), _now("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["training_runs.run_id"], name="fk_evaluations_run_id_training_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_evaluations_run_id", "evaluations", ["run_id"])
    op.create_index("ix_evaluations_model_id", "evaluations", ["model_id"])

    op.create_table(
        "service_heartbeats",
        _text("service"), _text("instance"), _now("last_seen"), _double("lag", nullable=True),
        sa.Column("info", JSONDOC, nullable=True),
        sa.PrimaryKeyConstraint("service", "instance", name="pk_service_heartbeats"),
    )
    op.create_table(
        "replay_runs",
        _text("run_id"), _text("namespace"), _now("started_at"), sa.Column("finished_at", TS, nullable=True),
        _text("status"), sa.Column("params", JSONDOC, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_replay_runs"),
    )
    op.create_index("ix_replay_runs_namespace", "replay_runs", ["namespace"])
    op.create_index("ix_replay_runs_started_at", "replay_runs", ["started_at"])


def upgrade() -> None:
    """Create every table, constraint and index of the initial schema."""
    _market()
    _trading()
    _ml_and_ops()


# Children before parents, so foreign keys never block a drop.
_TABLES_DROP_ORDER = (
    "replay_runs", "service_heartbeats", "evaluations", "models", "training_runs",
    "audit_log", "risk_state", "funding_payments", "pnl_daily", "positions", "fills", "orders", "intents",
    "decisions", "recommendations", "ticks", "candle_rejections", "candles",
)


def downgrade() -> None:
    """Drop everything 0001 created (indexes and constraints go with their tables)."""
    for table in _TABLES_DROP_ORDER:
        op.drop_table(table)
