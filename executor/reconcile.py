"""Does the venue agree with our book? If not, is the difference exactly one crashed intent's orders?

A crash after the venue filled an order but before our transaction committed leaves the venue
ahead of the book by exactly that intent's fills. Those are recognisable: their client order ids
are derived from the intent, which Kafka re-delivers next (its offset was never committed). Any
other difference (fills we cannot attribute, working orders, a position that does not add up)
means we do not know our exposure, and the executor refuses to trade until it does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from executor import book
from executor.exchanges.base import Exchange, ExchangeFill
from executor.ids import client_order_ids
from executor.risk import LOT_BTC

_TOL = LOT_BTC / 10
LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    book_position: float
    venue_position: float
    problems: tuple[str, ...] = ()
    #: Venue fills missing from our book that belong to the intent at hand (to be adopted).
    adoptable: tuple[ExchangeFill, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.ok:
            return f"in agreement: position {self.venue_position:g} BTC"
        return "; ".join(self.problems)


def max_legs(max_position_btc: float, max_order_btc: float) -> int:
    """Most legs one intent can produce (a full reversal), plus slack for changed limits."""
    return math.ceil(2 * max_position_btc / max_order_btc) + 4


def reconcile(
    s: Session,
    exchange: Exchange,
    namespace: str,
    symbol: str,
    *,
    intent_id: str | None = None,
    legs: int = 0,
) -> Reconciliation:
    """Compare open orders, fills and position; ``intent_id`` names the intent allowed to be ahead."""
    held = book.load_holding(s, namespace, symbol).quantity
    venue = exchange.fetch_position()
    problems: list[str] = []
    working = exchange.fetch_open_orders()
    if working:
        ids = ", ".join(o.client_order_id for o in working[:5])
        problems.append(f"reconcile: {len(working)} open order(s) on {exchange.name}: {ids}")
    if abs(venue - held) <= _TOL:
        return Reconciliation(held, venue, tuple(problems))
    last = book.last_fill_time(s, namespace)
    # a day of slack: fill times are venue/tick times, not guaranteed to arrive in order
    since = last - LOOKBACK if last is not None else None
    known = book.known_fill_ids(s, namespace, since)
    unknown = [f for f in exchange.fetch_fills(since) if f.fill_id not in known]
    mine = set(client_order_ids(namespace, intent_id, legs)) if intent_id else set()
    foreign = [f for f in unknown if f.client_order_id not in mine]
    explained = held + sum(f.signed_quantity for f in unknown)
    if foreign:
        ids = ", ".join(sorted({f.client_order_id for f in foreign})[:5])
        problems.append(f"reconcile: {len(foreign)} fill(s) on {exchange.name} missing from the book: {ids}")
    if abs(explained - venue) > _TOL or foreign:
        problems.append(
            f"reconcile: {exchange.name} position {venue:g} BTC != book {held:g} BTC "
            f"(+{len(unknown)} unbooked fill(s) -> {explained:g})"
        )
        return Reconciliation(held, venue, tuple(problems))
    return Reconciliation(held, venue, tuple(problems), tuple(unknown))
