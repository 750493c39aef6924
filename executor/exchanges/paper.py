"""Paper exchange: a simulated venue whose book lives in Postgres, in a namespace of its own.

Why a separate namespace and separate transactions: the paper venue must behave like a real one,
i.e. be a system the executor does not control. Its state commits on its own, before the
executor's transaction; a crash between the two leaves exactly what a real venue would leave (an
order the executor's book does not know yet), which is the case the exactly-once logic must handle
and the chaos test exercises. A restart continues from the stored state.

Models (documented so tests can recompute them independently):

* Price: ``PriceFeed.price_at(ref_time)`` (from candles under the fill-price model,
  ``config.ExchangeSettings.fill_price``: by default the next candle's open, the first price after
  the decision; or a price the caller supplies), used for fills, marks and funding alike,
  checked by ``executor.prices.checked_price``: missing, NaN/inf or <= 0 raises ``NoPrice`` and
  nothing is filled or booked.
* Slippage: a fixed adverse move of ``slippage_bps``: buys fill at ``p * (1 + bps/1e4)``, sells at
  ``p * (1 - bps/1e4)``. Fixed rather than size-dependent because our orders (< 1 BTC) are far
  below top-of-book depth on BTC perpetuals; the knob exists to keep backtests honest, not exact.
* Fee: taker on every fill (market orders): ``quantity * fill_price * taker_fee``.
* Funding: every full UTC hour ``h`` the position held at ``h`` pays ``position * price_at(h) *
  rate`` (longs pay when the rate is positive), with a constant hourly rate (default 0.00125 %/h,
  i.e. 0.01 % per 8 h, Kraken's typical quiet-market level). A candle-derived rate would need the
  index/mark spread, which candles do not carry; the constant is explicit and configurable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from common.db.models import Fill, Intent, Order, Position
from common.db.session import engine_cursor, session_scope
from common.events import OrderSide
from config import DEFAULT_FUNDING_RATE_HOURLY
from executor.book import insert_funding
from executor.clock import PriceFeed
from executor.costs import funding_amount, slipped_price, taker_fee
from executor.exchanges.base import (
    ExchangeFill,
    ExchangeOrder,
    FundingEvent,
    NoPrice,
    OrderRefused,
    OrderRequest,
)
from executor.prices import checked_price

if TYPE_CHECKING:
    from psycopg import Cursor as _Cursor

    Cursor = _Cursor[Any]

#: A replay can jump months between intents; funding is settled at most this far back per call.
MAX_FUNDING_CATCHUP = timedelta(days=31)


def venue_namespace(namespace: str) -> str:
    """Rows of the simulated venue sit beside the executor's own, never mixed with them."""
    return f"paper:{namespace}"


class PaperExchange:
    """Simulated BTC perpetual venue (see the module doc for the fill/fee/funding models)."""

    name = "paper"

    def __init__(
        self,
        engine: Engine,
        namespace: str,
        prices: PriceFeed,
        *,
        symbol: str,
        taker_fee_rate: float,
        slippage_bps: float,
        funding_rate_hourly: float = DEFAULT_FUNDING_RATE_HOURLY,
    ) -> None:
        self._engine = engine
        self.namespace = venue_namespace(namespace)
        self._prices = prices
        self._symbol = symbol
        self._fee = taker_fee_rate
        self._slippage = slippage_bps
        self._funding_rate = funding_rate_hourly

    # ------------------------------------------------------------------ orders

    def place_order(self, request: OrderRequest) -> ExchangeOrder:
        if request.quantity <= 0:
            raise OrderRefused(f"invalid order: quantity {request.quantity} must be positive")
        # Validated BEFORE anything is booked: a NaN or negative price must never become a fill
        # (the venue would hold a fill the executor's book cannot value, and the two drift apart).
        price = checked_price(
            self._prices.price_at(request.ref_time),
            f"paper: {request.symbol} at {request.ref_time.isoformat()}",
        )
        fill_price = checked_price(
            slipped_price(price, request.side, self._slippage), f"paper: fill price of {request.symbol}"
        )
        fee = taker_fee(request.quantity, fill_price, self._fee)
        ns = self.namespace
        with session_scope(self._engine) as s:
            if s.get(Order, (ns, request.client_order_id)) is not None:
                # A real venue would accept the duplicate; refusing loudly makes a double place visible.
                raise OrderRefused(f"duplicate client order id {request.client_order_id}")
            s.execute(
                pg_insert(Intent)
                .values(
                    namespace=ns,
                    intent_id=request.intent_id,
                    tick_id=request.tick_id,
                    model_id="paper-venue",
                    action="ORDER",
                    target_exposure=0.0,
                    status="VENUE",
                )
                .on_conflict_do_nothing()
            )
            s.add(
                Order(
                    namespace=ns,
                    client_order_id=request.client_order_id,
                    intent_id=request.intent_id,
                    exchange=self.name,
                    exchange_order_id=request.client_order_id,
                    symbol=request.symbol,
                    side=request.side.value.lower(),
                    quantity=request.quantity,
                    price=fill_price,
                    status="closed",
                )
            )
            s.flush()
            fill = ExchangeFill(
                fill_id=f"{request.client_order_id}.f0",
                client_order_id=request.client_order_id,
                side=request.side,
                quantity=request.quantity,
                price=fill_price,
                fee=fee,
                filled_at=request.ref_time,
            )
            s.add(
                Fill(
                    namespace=ns,
                    fill_id=fill.fill_id,
                    client_order_id=fill.client_order_id,
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    liquidity="taker",
                    filled_at=fill.filled_at,
                )
            )
            self._move_position(s, fill.signed_quantity)
        return ExchangeOrder(
            request.client_order_id,
            request.client_order_id,
            request.side,
            request.quantity,
            "closed",
            (fill,),
        )

    def _move_position(self, s: Session, delta: float) -> None:
        pos = s.get(Position, (self.namespace, self._symbol), with_for_update=True)
        if pos is None:
            s.add(Position(namespace=self.namespace, symbol=self._symbol, quantity=round(delta, 8)))
        else:
            pos.quantity = round(pos.quantity + delta, 8)

    def fetch_order(self, client_order_id: str) -> ExchangeOrder | None:
        with session_scope(self._engine) as s:
            order = s.get(Order, (self.namespace, client_order_id))
            if order is None:
                return None
            fills = self._fills(s, Fill.client_order_id == client_order_id)
        side = OrderSide(order.side.upper())
        return ExchangeOrder(
            client_order_id, order.exchange_order_id, side, order.quantity, order.status, fills
        )

    def _fills(self, s: Session, *where: object) -> tuple[ExchangeFill, ...]:
        rows = s.execute(
            select(Fill, Order.side)
            .join(
                Order, (Order.namespace == Fill.namespace) & (Order.client_order_id == Fill.client_order_id)
            )
            .where(Fill.namespace == self.namespace, *where)  # type: ignore[arg-type]
            .order_by(Fill.filled_at, Fill.fill_id)
        ).all()
        return tuple(
            ExchangeFill(
                f.fill_id,
                f.client_order_id,
                OrderSide(side.upper()),
                f.quantity,
                f.price,
                f.fee,
                f.filled_at,
                f.liquidity or "taker",
            )
            for f, side in rows
        )

    def fetch_fills(self, since: datetime | None = None) -> list[ExchangeFill]:
        with session_scope(self._engine) as s:
            return list(self._fills(s, *([Fill.filled_at >= since] if since is not None else [])))

    def fetch_position(self) -> float:
        # plain SQL (ADR 0029): asked before every intent, by the reconciliation
        with engine_cursor(self._engine) as cur:
            row = cur.execute(_POSITION_SQL, {"ns": self.namespace, "symbol": self._symbol}).fetchone()
        return float(row[0]) if row is not None else 0.0

    def fetch_open_orders(self) -> list[ExchangeOrder]:
        return []  # market orders fill at once on the paper venue

    def cancel_order(self, client_order_id: str) -> None:
        return None  # nothing ever rests on the paper venue

    def mark_price(self, at: datetime) -> float:
        return checked_price(self._prices.price_at(at), f"paper: {self._symbol} at {at.isoformat()}")

    # ------------------------------------------------------------------ funding

    def fetch_funding(self, since: datetime | None, now: datetime) -> list[FundingEvent]:
        """Settle every full hour up to ``now`` (idempotent), then report those after ``since``.

        One venue transaction, in plain SQL (ADR 0029: a replay asks every hour). When the
        caller has booked everything the venue had settled before (``since`` is the venue's last
        settlement, the usual case), the answer is exactly the rows this call inserted, and the
        read-back query is skipped.
        """
        with engine_cursor(self._engine) as cur:
            settled_before, added = self._settle(cur, now)
            if since == settled_before and added is not None:
                return [e for e in added if e.funding_time <= now]
            params: dict[str, Any] = {"ns": self.namespace, "now": now, "since": since}
            rows = cur.execute(_FUNDING_SINCE_SQL, params).fetchall()
        return [FundingEvent(*r) for r in rows]

    def _settle(self, cur: Cursor, now: datetime) -> tuple[datetime | None, list[FundingEvent] | None]:
        """Insert the settlements due up to ``now``; return the last one before, and the new ones.

        The new ones are None when a row was already there (another writer got in between):
        the caller then reads back instead of trusting what this call computed.
        """
        ns = self.namespace
        last_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        row = cur.execute(_SETTLED_SQL, {"ns": ns}).fetchone()
        settled, first_fill = row if row is not None else (None, None)
        if settled is not None:
            last = settled
        elif first_fill is not None:
            last = first_fill.replace(minute=0, second=0, microsecond=0)
        else:
            return None, []  # never traded: nothing to settle
        hour = max(last + timedelta(hours=1), last_hour - MAX_FUNDING_CATCHUP)
        if hour > last_hour:
            return settled, []
        # The position at each hour: fills up to the first hour summed in the database, then
        # the few fills inside the settled span applied hour by hour (two queries, not two per hour).
        position = self._position_at(cur, hour)
        later = (
            []
            if hour == last_hour
            else cur.execute(_FILLS_BETWEEN_SQL, {"ns": ns, "after": hour, "until": last_hour}).fetchall()
        )
        times: list[datetime] = []
        quantities: list[float] = []
        amounts: list[float] = []
        k = 0
        while hour <= last_hour:
            while k < len(later) and later[k][0] <= hour:
                qty = later[k][2]
                position = round(position + (qty if later[k][1] == "buy" else -qty), 8)
                k += 1
            price = 0.0
            if position:
                try:
                    price = checked_price(self._prices.price_at(hour), f"paper funding at {hour}")
                except NoPrice:
                    break  # no usable price: settle later rather than invent one
            times.append(hour)
            quantities.append(position)
            amounts.append(funding_amount(position, price, self._funding_rate))
            hour += timedelta(hours=1)
        if not times:
            return settled, []
        due = [
            FundingEvent(self._symbol, at, self._funding_rate, qty, amount)
            for at, qty, amount in zip(times, quantities, amounts, strict=True)
        ]
        inserted = insert_funding(cur, ns, due)
        if len(inserted) != len(due):
            return settled, None
        return settled, sorted(inserted, key=lambda e: e.funding_time)

    def _position_at(self, cur: Cursor, when: datetime) -> float:
        row = cur.execute(_POSITION_AT_SQL, {"ns": self.namespace, "at": when}).fetchone()
        return round(float(row[0] if row is not None else 0.0), 8)


# The venue's per-intent statements in plain SQL (ADR 0029); the tables are common.db.trading's.
_POSITION_SQL = "SELECT quantity FROM positions WHERE namespace = %(ns)s AND symbol = %(symbol)s"
_SETTLED_SQL = """
SELECT (SELECT max(funding_time) FROM funding_payments WHERE namespace = %(ns)s),
       (SELECT min(filled_at) FROM fills WHERE namespace = %(ns)s)
"""
_SIGNED_FILLS = """
FROM fills f JOIN orders o ON o.namespace = f.namespace AND o.client_order_id = f.client_order_id
WHERE f.namespace = %(ns)s
"""
_POSITION_AT_SQL = (
    "SELECT coalesce(sum(CASE WHEN o.side = 'buy' THEN f.quantity ELSE -f.quantity END), 0.0)"
    + _SIGNED_FILLS
    + "AND f.filled_at <= %(at)s"
)
_FILLS_BETWEEN_SQL = (
    "SELECT f.filled_at, o.side, f.quantity"
    + _SIGNED_FILLS
    + "AND f.filled_at > %(after)s AND f.filled_at <= %(until)s ORDER BY f.filled_at"
)
_FUNDING_SINCE_SQL = """
SELECT symbol, funding_time, rate, position_quantity, amount FROM funding_payments
WHERE namespace = %(ns)s AND funding_time <= %(now)s
  AND (%(since)s::timestamptz IS NULL OR funding_time > %(since)s)
ORDER BY funding_time
"""
