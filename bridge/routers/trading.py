"""What the system did: position, P&L, recommendations, decisions, intents, orders and fills."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from bridge.dependencies import DbSession, Namespace, State
from bridge.queries import latest_close
from bridge.schemas import (
    IDENT,
    DecisionOut,
    FillOut,
    IntentOut,
    OrderOut,
    PnlDay,
    PnlOut,
    PositionOut,
    RecommendationOut,
    StrategyRecommendations,
)
from common.db.models import Decision, Fill, Intent, Order, PnlDaily, Position, Recommendation

router = APIRouter(tags=["trading"])

Limit = Annotated[int, Query(ge=1, le=1000, description="Most rows returned (newest first).")]
Symbol = Annotated[
    str | None, Query(max_length=64, pattern=IDENT, description="Defaults to the configured symbol.")
]


def _position(session: DbSession, ns: str, symbol: str) -> PositionOut:
    row = session.get(Position, (ns, symbol))
    mark, mark_time = latest_close(session, symbol)
    qty = row.quantity if row else 0.0
    entry = row.avg_entry_price if row else None
    unrealized = qty * (mark - entry) if (mark is not None and entry is not None and qty) else 0.0
    return PositionOut(
        namespace=ns,
        symbol=symbol,
        quantity=qty,
        avg_entry_price=entry,
        mark_price=mark,
        mark_time=mark_time,
        unrealized_pnl=unrealized,
        realized_pnl=row.realized_pnl if row else 0.0,
        updated_at=row.updated_at if row else None,
    )


@router.get("/position", response_model=PositionOut, summary="Current position, marked to the last close")
def position(session: DbSession, ns: Namespace, state: State, symbol: Symbol = None) -> PositionOut:
    return _position(session, ns, symbol or state.settings.symbol)


@router.get("/pnl", response_model=PnlOut, summary="Realized, unrealized and daily P&L")
def pnl(
    session: DbSession,
    ns: Namespace,
    state: State,
    days: Annotated[int, Query(ge=1, le=3660)] = 30,
) -> PnlOut:
    pos = _position(session, ns, state.settings.symbol)
    realized = session.scalar(
        select(func.coalesce(func.sum(Position.realized_pnl), 0.0)).where(Position.namespace == ns)
    )
    rows = session.scalars(
        select(PnlDaily).where(PnlDaily.namespace == ns).order_by(PnlDaily.day.desc()).limit(days)
    ).all()
    daily = [PnlDay.model_validate(r) for r in reversed(rows)]
    return PnlOut(
        namespace=ns,
        realized=float(realized or 0.0),
        unrealized=pos.unrealized_pnl,
        total=float(realized or 0.0) + pos.unrealized_pnl,
        latest_day=daily[-1] if daily else None,
        daily=daily,
    )


@router.get(
    "/recommendations",
    response_model=list[StrategyRecommendations],
    summary="Recent recommendations, grouped per strategy",
)
def recommendations(
    session: DbSession,
    ns: Namespace,
    strategy: Annotated[str | None, Query(max_length=100, pattern=IDENT)] = None,
    per_strategy: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[StrategyRecommendations]:
    rank = (
        func.row_number()
        .over(partition_by=Recommendation.strategy, order_by=Recommendation.bar_close_time.desc())
        .label("rank")
    )
    inner = select(Recommendation, rank).where(Recommendation.namespace == ns)
    if strategy:
        inner = inner.where(Recommendation.strategy == strategy)
    sub = inner.subquery()
    rec = aliased(Recommendation, sub)
    rows = session.scalars(
        select(rec).where(sub.c.rank <= per_strategy).order_by(rec.strategy, rec.bar_close_time.desc())
    ).all()
    grouped: dict[str, list[RecommendationOut]] = defaultdict(list)
    for row in rows:
        grouped[row.strategy].append(RecommendationOut.model_validate(row))
    return [StrategyRecommendations(strategy=k, latest=v[0], recent=v) for k, v in sorted(grouped.items())]


@router.get("/decisions", response_model=list[DecisionOut], summary="Meta decisions with observations")
def decisions(
    session: DbSession,
    ns: Namespace,
    limit: Limit = 100,
    degraded: Annotated[bool | None, Query(description="Only degraded (true) or complete (false).")] = None,
) -> list[DecisionOut]:
    query = select(Decision).where(Decision.namespace == ns)
    if degraded is not None:
        query = query.where(Decision.degraded.is_(degraded))
    rows = session.scalars(query.order_by(Decision.decided_at.desc(), Decision.id.desc()).limit(limit))
    return [DecisionOut.model_validate(r) for r in rows]


@router.get("/intents", response_model=list[IntentOut], summary="Order intents as the executor received them")
def intents(session: DbSession, ns: Namespace, limit: Limit = 100) -> list[IntentOut]:
    rows = session.scalars(
        select(Intent).where(Intent.namespace == ns).order_by(Intent.received_at.desc()).limit(limit)
    )
    return [IntentOut.model_validate(r) for r in rows]


@router.get("/orders", response_model=list[OrderOut], summary="Orders with their fills")
def orders(session: DbSession, ns: Namespace, limit: Limit = 100) -> list[OrderOut]:
    order_rows = session.scalars(
        select(Order).where(Order.namespace == ns).order_by(Order.created_at.desc()).limit(limit)
    ).all()
    sides = {o.client_order_id: o.side for o in order_rows}
    fills: dict[str, list[FillOut]] = defaultdict(list)
    if sides:
        for f in session.scalars(
            select(Fill)
            .where(Fill.namespace == ns, Fill.client_order_id.in_(list(sides)))
            .order_by(Fill.filled_at)
        ):
            fills[f.client_order_id].append(_fill_out(f, sides[f.client_order_id]))
    columns = [k for k in OrderOut.model_fields if k != "fills"]
    return [
        OrderOut(**{k: getattr(o, k) for k in columns}, fills=fills[o.client_order_id]) for o in order_rows
    ]


def _fill_out(fill: Fill, side: str) -> FillOut:
    return FillOut(
        fill_id=fill.fill_id,
        client_order_id=fill.client_order_id,
        side=side,
        quantity=fill.quantity,
        price=fill.price,
        fee=fill.fee,
        liquidity=fill.liquidity,
        filled_at=fill.filled_at,
    )


@router.get("/fills", response_model=list[FillOut], summary="Fills (trades) in a time range, newest first")
def fills(
    session: DbSession,
    ns: Namespace,
    since: Annotated[datetime | None, Query(description="Inclusive lower bound on filled_at.")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive upper bound on filled_at.")] = None,
    limit: Limit = 500,
) -> list[FillOut]:
    query = (
        select(Fill, Order.side)
        .join(Order, (Order.namespace == Fill.namespace) & (Order.client_order_id == Fill.client_order_id))
        .where(Fill.namespace == ns)
    )
    if since is not None:
        query = query.where(Fill.filled_at >= since)
    if until is not None:
        query = query.where(Fill.filled_at < until)
    rows = session.execute(query.order_by(Fill.filled_at.desc()).limit(limit)).all()
    return [_fill_out(f, side) for f, side in rows]
