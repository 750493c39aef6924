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

from sqlalchemy import Engine, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from common.db.models import Fill, FundingPayment, Intent, Order, Position
from common.db.session import session_scope
from common.events import OrderSide
from config import DEFAULT_FUNDING_RATE_HOURLY
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
        with session_scope(self._engine) as s:
            pos = s.get(Position, (self.namespace, self._symbol))
            return pos.quantity if pos is not None else 0.0

    def fetch_open_orders(self) -> list[ExchangeOrder]:
        return []  # market orders fill at once on the paper venue

    def cancel_order(self, client_order_id: str) -> None:
        return None  # nothing ever rests on the paper venue

    def mark_price(self, at: datetime) -> float:
        return checked_price(self._prices.price_at(at), f"paper: {self._symbol} at {at.isoformat()}")

    # ------------------------------------------------------------------ funding

    def fetch_funding(self, since: datetime | None, now: datetime) -> list[FundingEvent]:
        """Settle every full hour up to ``now`` (idempotent), then report those after ``since``."""
        self._settle(now)
        with session_scope(self._engine) as s:
            q = select(FundingPayment).where(
                FundingPayment.namespace == self.namespace, FundingPayment.funding_time <= now
            )
            if since is not None:
                q = q.where(FundingPayment.funding_time > since)
            rows = s.scalars(q.order_by(FundingPayment.funding_time)).all()
        return [FundingEvent(r.symbol, r.funding_time, r.rate, r.position_quantity, r.amount) for r in rows]

    def _settle(self, now: datetime) -> None:
        ns = self.namespace
        last_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        with session_scope(self._engine) as s:
            last = s.scalar(
                select(func.max(FundingPayment.funding_time)).where(FundingPayment.namespace == ns)
            )
            if last is None:
                first_fill = s.scalar(select(func.min(Fill.filled_at)).where(Fill.namespace == ns))
                if first_fill is None:
                    return
                last = first_fill.replace(minute=0, second=0, microsecond=0)
            hour = max(last + timedelta(hours=1), last_hour - MAX_FUNDING_CATCHUP)
            if hour > last_hour:
                return
            # The position at each hour: fills up to the first hour summed in the database, then
            # the few fills inside the settled span applied hour by hour (two queries, not two per hour).
            position = self._position_at(s, hour)
            later = (
                []
                if hour == last_hour
                else list(
                    s.execute(
                        select(Fill.filled_at, Order.side, Fill.quantity)
                        .join(
                            Order,
                            (Order.namespace == Fill.namespace)
                            & (Order.client_order_id == Fill.client_order_id),
                        )
                        .where(Fill.namespace == ns, Fill.filled_at > hour, Fill.filled_at <= last_hour)
                        .order_by(Fill.filled_at)
                    ).all()
                )
            )
            rows = []
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
                rows.append(
                    {
                        "namespace": ns,
                        "symbol": self._symbol,
                        "funding_time": hour,
                        "rate": self._funding_rate,
                        "position_quantity": position,
                        "amount": funding_amount(position, price, self._funding_rate),
                    }
                )
                hour += timedelta(hours=1)
            if rows:
                s.execute(pg_insert(FundingPayment).values(rows).on_conflict_do_nothing())

    def _position_at(self, s: Session, when: datetime) -> float:
        signed = case((Order.side == "buy", Fill.quantity), else_=-Fill.quantity)
        total = s.scalar(
            select(func.coalesce(func.sum(signed), 0.0))
            .join(
                Order, (Order.namespace == Fill.namespace) & (Order.client_order_id == Fill.client_order_id)
            )
            .where(Fill.namespace == self.namespace, Fill.filled_at <= when)
        )
        return round(float(total or 0.0), 8)
