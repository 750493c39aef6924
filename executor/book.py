"""The executor's own records in Postgres: position, P&L, switches, audit (one namespace).

Every function takes the caller's session, so the service can put a whole intent (dedup row,
orders, fills, position, P&L) into ONE transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from common import control
from common.db.models import Fill, FundingPayment, Order, PnlDaily, Position
from common.db.models import RiskState as RiskStateRow
from executor.exchanges.base import ExchangeFill, FundingEvent
from executor.ledger import Holding
from executor.risk import RiskState


def lock_namespace(s: Session, namespace: str) -> None:
    """Serialize executors on one namespace for the transaction (a second pod waits, never races)."""
    s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:ns))"), {"ns": f"executor:{namespace}"})


def _pin(s: Session, row: object) -> None:
    """Keep ``row`` referenced until the session closes (the end of its one transaction).

    The session's identity map holds rows weakly: a position read, turned into a ``Holding`` and
    dropped, is gone, and the next ``s.get`` reads it again. A batch of replayed intents reads the
    same position and P&L row several times per intent; pinned, those reads cost no query.
    """
    s.info.setdefault("pinned", {})[id(row)] = row


def forget_row_locks(s: Session) -> None:
    """After a rollback to a savepoint: the row locks taken inside it are gone, take them again."""
    s.info.pop("locked_pnl", None)


def load_holding(s: Session, namespace: str, symbol: str) -> Holding:
    pos = s.get(Position, (namespace, symbol))
    if pos is None:
        return Holding()
    _pin(s, pos)
    return Holding(pos.quantity, pos.avg_entry_price, pos.realized_pnl)


def save_holding(s: Session, namespace: str, symbol: str, h: Holding) -> None:
    pos = s.get(Position, (namespace, symbol))
    if pos is None:
        s.add(Position(namespace=namespace, symbol=symbol))
        s.flush()
        pos = s.get(Position, (namespace, symbol))
        assert pos is not None
    _pin(s, pos)
    pos.quantity, pos.avg_entry_price, pos.realized_pnl = h.quantity, h.avg_price, h.realized


def load_risk_state(s: Session, namespace: str) -> RiskState:
    row = s.get(RiskStateRow, namespace)
    if row is None:
        return RiskState()
    return RiskState(row.kill_switch, row.kill_reason, row.trading_paused, row.halted_until)


def set_risk_state(s: Session, namespace: str, actor: str, action: str, reason: str, **values: Any) -> None:
    """Change switches and append the audit row in the same transaction (common.control, the one path)."""
    control.set_switches(
        s,
        namespace,
        actor=actor,
        role="executor" if actor == "executor" else "operator",
        action=action,
        reason=reason,
        **values,
    )


def orders_since(s: Session, namespace: str, since: datetime) -> int:
    return int(
        s.scalar(select(func.count()).where(Order.namespace == namespace, Order.created_at > since)) or 0
    )


def known_fill_ids(s: Session, namespace: str, since: datetime | None) -> set[str]:
    q = select(Fill.fill_id).where(Fill.namespace == namespace)
    if since is not None:
        q = q.where(Fill.filled_at >= since)
    return set(s.scalars(q))


def last_fill_time(s: Session, namespace: str) -> datetime | None:
    return s.scalar(select(func.max(Fill.filled_at)).where(Fill.namespace == namespace))


def record_order(
    s: Session,
    namespace: str,
    *,
    intent_id: str,
    exchange: str,
    client_order_id: str,
    exchange_order_id: str | None,
    symbol: str,
    side: str,
    quantity: float,
    price: float | None,
    status: str,
    now: datetime,
    fills: tuple[ExchangeFill, ...],
) -> tuple[ExchangeFill, ...]:
    """Write the order and those of its fills the book lacks (idempotent by venue fill id); return those."""
    s.add(
        Order(
            namespace=namespace,
            client_order_id=client_order_id,
            intent_id=intent_id,
            exchange=exchange,
            exchange_order_id=exchange_order_id,
            symbol=symbol,
            side=side.lower(),
            quantity=quantity,
            price=price,
            status=status,
            created_at=now,
        )
    )
    s.flush()  # orders before fills (foreign key)
    new = tuple(f for f in fills if s.get(Fill, (namespace, f.fill_id)) is None)
    for f in new:
        s.add(
            Fill(
                namespace=namespace,
                fill_id=f.fill_id,
                client_order_id=client_order_id,
                quantity=f.quantity,
                price=f.price,
                fee=f.fee,
                liquidity=f.liquidity,
                filled_at=f.filled_at,
            )
        )
    return new


def last_funding_time(s: Session, namespace: str) -> datetime | None:
    return s.scalar(
        select(func.max(FundingPayment.funding_time)).where(FundingPayment.namespace == namespace)
    )


def record_funding(s: Session, namespace: str, events: list[FundingEvent]) -> float:
    """Store new settlements (idempotent by time); return the USD amount actually added."""
    added = 0.0
    for e in events:
        done = s.execute(
            pg_insert(FundingPayment)
            .values(
                namespace=namespace,
                symbol=e.symbol,
                funding_time=e.funding_time,
                rate=e.rate,
                position_quantity=e.position_quantity,
                amount=e.amount,
            )
            .on_conflict_do_nothing()
            .returning(FundingPayment.id)
        ).first()
        if done is not None:
            added += e.amount
    return added


def _today_row(s: Session, namespace: str, day: date) -> PnlDaily:
    """The day's row, locked FOR UPDATE once per transaction (a batch updates it once per intent)."""
    locked: set[tuple[str, date]] = s.info.setdefault("locked_pnl", set())
    key = (namespace, day)
    row = s.get(PnlDaily, key) if key in locked else s.get(PnlDaily, key, with_for_update=True)
    if row is None:
        row = PnlDaily(
            namespace=namespace, day=day, realized=0.0, unrealized=0.0, fees=0.0, funding=0.0, equity=0.0
        )
        s.add(row)
    else:
        locked.add(key)
    _pin(s, row)
    return row


def daily_pnl(s: Session, namespace: str, day: date, unrealized_now: float) -> float:
    """Today's P&L: realized - fees + funding + the change in unrealized since the last earlier day.

    The earlier day's unrealized is as of its last update (not exactly midnight): good enough for a
    loss cap, and it avoids counting gains made on earlier days as today's cushion.
    """
    row = s.get(PnlDaily, (namespace, day))
    if row is not None:
        _pin(s, row)
    prev = s.scalar(
        select(PnlDaily.unrealized)
        .where(PnlDaily.namespace == namespace, PnlDaily.day < day)
        .order_by(PnlDaily.day.desc())
        .limit(1)
    )
    base = (row.realized - row.fees + row.funding) if row is not None else 0.0
    return base + unrealized_now - float(prev or 0.0)


def last_unrealized(s: Session, namespace: str) -> float | None:
    """The unrealized P&L stored by the latest update (None: never valued)."""
    return s.scalar(
        select(PnlDaily.unrealized)
        .where(PnlDaily.namespace == namespace)
        .order_by(PnlDaily.day.desc())
        .limit(1)
    )


def update_pnl(
    s: Session,
    namespace: str,
    day: date,
    *,
    realized: float,
    fees: float,
    funding: float,
    unrealized: float,
    holding: Holding,
) -> PnlDaily:
    row = _today_row(s, namespace, day)
    row.realized += realized
    row.fees += fees
    row.funding += funding
    row.unrealized = unrealized
    s.flush()
    totals = s.execute(
        select(
            func.coalesce(func.sum(PnlDaily.fees), 0.0), func.coalesce(func.sum(PnlDaily.funding), 0.0)
        ).where(PnlDaily.namespace == namespace)
    ).one()
    row.equity = holding.realized - float(totals[0]) + float(totals[1]) + unrealized
    return row


def hour_ago(now: datetime) -> datetime:
    return now - timedelta(hours=1)
