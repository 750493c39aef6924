"""Request and response bodies of the bridge API.

They are the published contract of the desktop client (and of /openapi.json), so they are kept
apart from the database models: a column rename must not silently change what the client sees.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Free text: anything but NUL, which PostgreSQL text columns refuse.
FREE_TEXT = r"^[^\x00]*$"
#: Identifiers in query strings and paths (strategy, metric, symbol, model id).
IDENT = r"^[A-Za-z0-9_./:|#+-]+$"


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ----------------------------------------------------------------------------- status


class ServiceStatus(_Out):
    service: str
    instance: str
    last_seen: datetime
    age_s: float = Field(description="Seconds since the last heartbeat, by the database clock.")
    lag_s: float | None = Field(description="Seconds behind, as the service reported it.")
    stale: bool = Field(description="True when the heartbeat is older than the bridge's stale limit.")
    info: dict[str, Any] | None = None


class RiskStateOut(_Out):
    namespace: str
    kill_switch: bool = False
    kill_reason: str | None = None
    trading_paused: bool = False
    halted_until: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class StreamStatus(BaseModel):
    enabled: bool
    connected: bool
    instance: str = Field(description="Prefix of this bridge's event ids (<instance>-<counter>).")
    last_event_id: int = Field(description="Counter of the newest buffered event.")
    buffered: int
    error: str | None = None


class StatusOut(BaseModel):
    namespace: str
    server_time: datetime
    services: list[ServiceStatus]
    decisions_total: int
    degraded_ticks: int = Field(description="Decisions taken without every due strategy.")
    last_decision_at: datetime | None
    selected_model_id: str | None
    risk: RiskStateOut
    stream: StreamStatus
    run_clock: datetime | None = Field(
        default=None,
        description="The run's own clock: the newest tick time (data time) the namespace decided or "
        "recommended on. A replay lives in the past, so clients window their views on this, "
        "not on the wall clock; null before the first tick.",
    )


class WhoAmI(BaseModel):
    name: str
    role: str


class AuditEntry(_Out):
    id: int
    namespace: str
    actor: str
    role: str
    action: str
    payload: dict[str, Any]
    at: datetime


# ----------------------------------------------------------------------------- trading


class PositionOut(BaseModel):
    namespace: str
    symbol: str
    quantity: float = Field(description="Signed BTC: long > 0, short < 0.")
    avg_entry_price: float | None
    mark_price: float | None = Field(description="Close of the latest stored candle.")
    mark_time: datetime | None
    unrealized_pnl: float
    realized_pnl: float
    updated_at: datetime | None


class PnlDay(_Out):
    day: date
    realized: float
    unrealized: float
    fees: float
    funding: float
    equity: float


class PnlOut(BaseModel):
    namespace: str
    realized: float
    unrealized: float
    total: float
    latest_day: PnlDay | None = Field(description="The most recent daily snapshot.")
    daily: list[PnlDay]


class RecommendationOut(_Out):
    tick_id: str
    strategy: str
    strategy_version: str
    symbol: str
    timeframe: str
    bar_close_time: datetime
    target: str
    event: str
    confidence: float
    horizon_bars: int
    indicators: dict[str, Any]
    reason: str | None = Field(
        default=None,
        description="Why the strategy has no opinion on this bar (e.g. stale:funding_binance_8h); "
        "null when it has one or does not say (answers before Recommendation v3).",
    )
    attention: bool | None = Field(
        default=None,
        description="True on a news-related high-attention bar, false when the strategy says it is "
        "not one; null when the strategy does not say.",
    )
    received_at: datetime


class StrategyRecommendations(BaseModel):
    strategy: str
    latest: RecommendationOut
    recent: list[RecommendationOut]


class DecisionOut(_Out):
    id: int
    tick_id: str
    model_id: str
    action: str
    current_exposure: float
    target_exposure: float
    degraded: bool
    late_strategies: list[str]
    observation: dict[str, Any]
    decided_at: datetime


class IntentOut(_Out):
    intent_id: str
    tick_id: str
    model_id: str
    action: str
    target_exposure: float
    status: str
    reason: str | None
    received_at: datetime
    handled_at: datetime | None


class FillOut(_Out):
    fill_id: str
    client_order_id: str
    side: str
    quantity: float
    price: float
    fee: float
    liquidity: str | None
    filled_at: datetime


class OrderOut(_Out):
    client_order_id: str
    intent_id: str
    exchange: str
    exchange_order_id: str | None
    symbol: str
    side: str
    order_type: str
    quantity: float
    price: float | None
    status: str
    created_at: datetime
    updated_at: datetime
    fills: list[FillOut]


# ----------------------------------------------------------------------------- market


class CandleOut(BaseModel):
    open_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    complete: bool = Field(description="False when the bar lacks some base candles (gap or still forming).")


class CandlesOut(BaseModel):
    symbol: str
    timeframe: str
    source_timeframe: str | None = Field(description="Stored timeframe the bars were resampled from.")
    candles: list[CandleOut]


# ----------------------------------------------------------------------------- models


class EvaluationOut(_Out):
    run_id: str
    name: str
    window: str
    metrics: dict[str, Any]
    created_at: datetime


class ModelEntry(BaseModel):
    rank: int | None = Field(description="1 = best by the ranking metric; null when unscored.")
    model_id: str
    algo: str
    created_at: datetime
    strategy_set: list[str]
    selected: bool
    selected_at: datetime | None
    selected_by: str | None
    score: float | None
    metrics: dict[str, Any] = Field(description="Metrics of the ranking window's latest evaluation.")
    evaluations: list[EvaluationOut]


class ResearchEntry(BaseModel):
    """One pooled out-of-sample row of a research run (issue 16): a baseline, a candidate rule, or
    the hindsight bound. Not a stored model, so never tradable from the leaderboard."""

    rank: int | None = Field(
        description="1 = best by the ranking metric among baselines and candidates; "
        "null for the upper bound and unscored rows."
    )
    name: str
    kind: str = Field(description="baseline, candidate or bound (the hindsight DP oracle, never ranked).")
    status: str = Field(
        description="baseline, candidate, upper bound, or for `selected`: proposed (passed every gate) "
        "or not proposed."
    )
    proposed: bool
    window: str
    score: float | None
    metrics: dict[str, Any]


class ResearchBoard(BaseModel):
    """A research run published to the live database (``training publish-research``): the newest
    unless the leaderboard was asked for another with ``research_run``."""

    run_id: str
    published_at: datetime
    trials: int | None = Field(description="Trials logged (configurations x seeds x splits).")
    selected_passes: bool
    verdict: str = Field(description="One line: whether `selected` is proposed, and what live keeps.")
    entries: list[ResearchEntry] = Field(
        description="Ranking window's baselines and candidates, best first, then the upper bound."
    )


class ResearchRunOut(BaseModel):
    """One published research run, as ``GET /api/research/runs`` lists them: enough to tell runs
    apart (the grid-only run vs the one with the RL recast) before loading one's board."""

    run_id: str
    published_at: datetime = Field(description="When its rows were last written to the live database.")
    trials: int | None = Field(description="Trials logged (configurations x seeds x splits).")
    selected_passes: bool
    verdict: str = Field(description="One line: whether `selected` is proposed, and what live keeps.")
    ranking_window: str = Field(
        description="The evaluation window its baselines and candidates are ranked in "
        "(their pooled out-of-sample rows: test)."
    )
    evaluated_from: datetime | None = Field(
        description="First bar of the pooled out-of-sample period (null: not recorded by the run)."
    )
    evaluated_to: datetime | None = Field(
        description="Last bar of the pooled out-of-sample period (null: not recorded by the run)."
    )


class LeaderboardOut(BaseModel):
    metric: str
    window: str
    best_model_id: str | None
    selected_model_id: str | None
    models: list[ModelEntry]
    baselines: list[EvaluationOut]
    research: ResearchBoard | None = Field(
        default=None,
        description="The chosen (default: newest) published research run's baselines and candidates "
        "(null: none published).",
    )


# ----------------------------------------------------------------------------- control


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        default="", max_length=500, pattern=FREE_TEXT, description="Free text kept in the audit log."
    )


class TripIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=500, pattern=FREE_TEXT, description="Why trading is being stopped."
    )
    flatten: bool = Field(
        default=True,
        description="Also publish a FLAT intent: a request the executor acts on (see flatten_status).",
    )


class FlattenStatus(StrEnum):
    """What a kill-switch trip did about flattening: at most publish a request, never a fill."""

    PUBLISHED = "published"
    NOT_PUBLISHED = "not_published"
    NOT_REQUESTED = "not_requested"


class ControlResult(BaseModel):
    action: str
    actor: str
    audit_id: int
    risk: RiskStateOut | None = None
    selected_model_id: str | None = None
    flatten_status: FlattenStatus | None = Field(
        default=None,
        description=(
            "Kill-switch trips only. 'published': a FLAT intent is on orders.intents; NOTHING has been "
            "flattened yet, the executor decides (its outcome is the intent's row in /api/intents and "
            "its report on orders.executions). 'not_published': no FLAT intent (see flatten_error); the "
            "switch still refuses new risk and the executor flattens on the next intent it handles. "
            "'not_requested': the trip asked for no flatten."
        ),
    )
    flatten_intent_id: str | None = Field(
        default=None,
        description=(
            "The FLAT intent published on trip (an order REQUEST, not a fill): look its outcome up by "
            "this id; the executor flattens even while trading is paused."
        ),
    )
    flatten_error: str | None = Field(default=None, description="Why no FLAT intent was published.")


class ErrorOut(BaseModel):
    detail: str
