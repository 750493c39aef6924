"""The executor's own records in Postgres: position, P&L, switches, audit (one namespace).

Every function takes the caller's session, so the service can put a whole intent (dedup row,
orders, fills, position, P&L) into ONE transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from common import control
from common.db.models import Fill, FundingPayment, Order, PnlDaily, Position
from common.db.models import RiskState as RiskStateRow
from common.db.session import session_cursor
from executor.exchanges.base import ExchangeFill, FundingEvent
from executor.ledger import Holding
from executor.risk import RiskState

if TYPE_CHECKING:
    from psycopg import Cursor


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


def _reads(s: Session) -> dict[tuple[Any, ...], Any]:
    """Reads the transaction already made and may reuse (the namespace lock is held, see below).

    A replay batch handles hundreds of intents in one transaction under the namespace's advisory
    lock, and nothing else writes the namespace's funding, P&L or switch rows meanwhile, so these
    answers change only by this session's own writes; each writer below updates or drops its
    entry. Live, a transaction holds one intent and the cache lives no longer than that.
    """
    reads: dict[tuple[Any, ...], Any] = s.info.setdefault("tx_reads", {})
    return reads


def forget_row_locks(s: Session) -> None:
    """After a rollback to a savepoint: the row locks taken inside it are gone, take them again,
    and what was read or written inside it may be undone, so read it again too."""
    s.info.pop("locked_pnl", None)
    s.info.pop("tx_reads", None)


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
    """The switches, read once per transaction (a loaded row is never re-read in one anyway: the
    identity map returns it; a namespace without a row would otherwise cost a query per intent)."""
    reads = _reads(s)
    key = ("risk_state", namespace)
    if key not in reads:
        row = s.get(RiskStateRow, namespace)
        reads[key] = (
            RiskState()
            if row is None
            else RiskState(row.kill_switch, row.kill_reason, row.trading_paused, row.halted_until)
        )
    state: RiskState = reads[key]
    return state


def set_risk_state(s: Session, namespace: str, actor: str, action: str, reason: str, **values: Any) -> None:
    """Change switches and append the audit row in the same transaction (common.control, the one path)."""
    _reads(s).pop(("risk_state", namespace), None)
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
    """Orders created after ``since`` (the hourly order cap), plain SQL (ADR 0029)."""
    with session_cursor(s) as cur:
        row = cur.execute(_ORDERS_SINCE_SQL, {"ns": namespace, "since": since}).fetchone()
    return int(row[0]) if row is not None else 0


_ORDERS_SINCE_SQL = "SELECT count(*) FROM orders WHERE namespace = %(ns)s AND created_at > %(since)s"


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
    """The latest booked settlement; asked once per transaction, then kept by :func:`record_funding`."""
    reads = _reads(s)
    key = ("last_funding", namespace)
    if key not in reads:
        reads[key] = s.scalar(
            select(func.max(FundingPayment.funding_time)).where(FundingPayment.namespace == namespace)
        )
    last: datetime | None = reads[key]
    return last


def record_funding(s: Session, namespace: str, events: list[FundingEvent]) -> float:
    """Store new settlements (idempotent by time); return the USD amount actually added.

    One plain-SQL statement for all of them (ADR 0029: a replay books one every hour).
    """
    if not events:
        return 0.0
    reads = _reads(s)
    key = ("last_funding", namespace)
    if key in reads:
        reads[key] = max([e.funding_time for e in events] + ([reads[key]] if reads[key] is not None else []))
    with session_cursor(s) as cur:
        new = {(e.symbol, e.funding_time) for e in insert_funding(cur, namespace, events)}
    added = 0.0
    for e in events:  # in the events' order, each settlement once, as they were stored
        if (e.symbol, e.funding_time) in new:
            new.discard((e.symbol, e.funding_time))
            added += e.amount
    return added


def insert_funding(cur: Cursor[Any], namespace: str, events: Sequence[FundingEvent]) -> list[FundingEvent]:
    """Insert settlements into ``namespace`` in order (``ON CONFLICT DO NOTHING``); the ones inserted.

    The one statement that writes ``funding_payments``, for the executor's book and for the paper
    venue's own namespace alike (each in its own transaction).
    """
    params = {
        "ns": namespace,
        "symbols": [e.symbol for e in events],
        "times": [e.funding_time for e in events],
        "rates": [e.rate for e in events],
        "quantities": [e.position_quantity for e in events],
        "amounts": [e.amount for e in events],
    }
    return [FundingEvent(*row) for row in cur.execute(_INSERT_FUNDING_SQL, params)]


_INSERT_FUNDING_SQL = """
INSERT INTO funding_payments (namespace, symbol, funding_time, rate, position_quantity, amount)
SELECT %(ns)s, u.s, u.t, u.r, u.q, u.a
FROM unnest(%(symbols)s::text[], %(times)s::timestamptz[], %(rates)s::float8[],
            %(quantities)s::float8[], %(amounts)s::float8[]) WITH ORDINALITY AS u(s, t, r, q, a, n)
ORDER BY u.n
ON CONFLICT DO NOTHING
RETURNING symbol, funding_time, rate, position_quantity, amount
"""


def _today_row(s: Session, namespace: str, day: date) -> PnlDaily:
    """The day's row, locked FOR UPDATE once per transaction (a batch updates it once per intent)."""
    locked: set[tuple[str, date]] = s.info.setdefault("locked_pnl", set())
    key = (namespace, day)
    # Writing ``day`` changes what was kept about the days before any later day (time that goes
    # backwards inside one transaction: a clock step, an out-of-order repair): read those again.
    reads = _reads(s)
    for k in [k for k in reads if k[0] == "earlier_days" and k[1] == namespace and k[2] > day]:
        del reads[k]
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
    prev = _earlier_days(s, namespace, day)[2]
    base = (row.realized - row.fees + row.funding) if row is not None else 0.0
    return base + unrealized_now - float(prev or 0.0)


def _earlier_days(s: Session, namespace: str, day: date) -> tuple[float, float, float | None]:
    """Fees and funding summed over the days before ``day``, and the latest of those days' unrealized.

    One query per day and transaction: an intent only writes its own day's row, so what lies
    before it stays put while a replay batch walks through the day (:func:`_today_row` drops
    the entry when an earlier day is written after all).
    """
    reads = _reads(s)
    key = ("earlier_days", namespace, day)
    if key not in reads:
        latest = (
            select(PnlDaily.unrealized)
            .where(PnlDaily.namespace == namespace, PnlDaily.day < day)
            .order_by(PnlDaily.day.desc())
            .limit(1)
            .scalar_subquery()
        )
        fees, funding, prev = s.execute(
            select(
                func.coalesce(func.sum(PnlDaily.fees), 0.0),
                func.coalesce(func.sum(PnlDaily.funding), 0.0),
                latest,
            ).where(PnlDaily.namespace == namespace, PnlDaily.day < day)
        ).one()
        reads[key] = (float(fees), float(funding), None if prev is None else float(prev))
    earlier: tuple[float, float, float | None] = reads[key]
    return earlier


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
    fees_before, funding_before, _ = _earlier_days(s, namespace, day)
    # all-time fees and funding = the earlier days' (kept per transaction) + today's row
    row.equity = holding.realized - (fees_before + row.fees) + (funding_before + row.funding) + unrealized
    return row


def hour_ago(now: datetime) -> datetime:
    return now - timedelta(hours=1)
