"""Does the venue agree with our book? If not, do the venue's own fills explain the difference?

Venue and book drift apart in ways that are nobody's fault, and the venue's fill history explains
them (NautilusTrader's reconciliation works the same way: fills are facts, keyed by venue fill id):

* a crash after the venue filled but before our transaction committed: the venue is ahead by the
  fills of the intent Kafka re-delivers next (its client order ids are derived from it): ADOPTED
  by that intent;
* a fill reported after the order answer (delayed), the rest of a partial fill, or an answer lost
  on the wire: fills whose client order id is OURS (an order row we wrote, or a deterministic id
  of an intent in ``intents``, see ``common.order_ids``) but whose fill id the book lacks: REPAIRED,
  i.e. booked against that intent's order (``executor.repair``);
* one of our orders still working at the next decision (a partial fill's remainder, a delayed
  market order): its remainder is CANCELLED before anything is decided, so the next intent
  trades from a position that can no longer move under it (never placed twice, never raced).

Anything else means we do not know our exposure: fills with foreign client order ids, working
orders we did not place, a venue position that book + unbooked fills do not add up to (after
giving a lagging fill history a few chances to catch up). Then every intent is refused until an
operator books the venue's view as the truth: ``python -m executor adopt --reason ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db.models import Intent, Order
from common.logging import get_logger
from common.order_ids import client_order_ids
from executor import book
from executor.exchanges.base import Exchange, ExchangeFill, ExchangeOrder
from executor.risk import LOT_BTC

log = get_logger(__name__)
_TOL = LOT_BTC / 10
LOOKBACK = timedelta(days=1)
#: Intents this recent are searched for the owner of an unknown client order id (ids are derived,
#: not stored, for orders whose answer was lost): the fill lookback plus the lookback's slack.
OWNER_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Repair:
    """A venue fill of ours the book lacks, and the (already handled) intent it belongs to."""

    fill: ExchangeFill
    intent_id: str
    #: Whether the ``orders`` row exists (False: the order answer was lost, the row is created).
    has_order: bool


@dataclass(frozen=True, slots=True)
class Reconciliation:
    book_position: float
    venue_position: float
    problems: tuple[str, ...] = ()
    #: Venue fills missing from our book that belong to the intent at hand (to be adopted).
    adoptable: tuple[ExchangeFill, ...] = field(default_factory=tuple)
    #: Venue fills missing from our book that belong to intents handled before (to be booked).
    repairs: tuple[Repair, ...] = field(default_factory=tuple)
    #: Our orders whose working remainder was cancelled here (client order id -> intent id).
    cancelled: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: Venue fills nobody here can attribute (what ``adopt`` books on an operator's word).
    foreign: tuple[ExchangeFill, ...] = field(default_factory=tuple)
    #: Working orders on the venue that are not ours.
    foreign_orders: tuple[ExchangeOrder, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.ok:
            extra = f"; {len(self.repairs)} fill(s) to repair" if self.repairs else ""
            return f"in agreement: position {self.venue_position:g} BTC{extra}"
        return "; ".join(self.problems)


def max_legs(max_position_btc: float, max_order_btc: float) -> int:
    """Most legs one intent can produce (a full reversal), plus slack for changed limits."""
    return math.ceil(2 * max_position_btc / max_order_btc) + 4


class Owners:
    """Who placed a client order id: an order row, a recent intent's derived id, or the current intent."""

    def __init__(self, s: Session, namespace: str, legs: int, intent_id: str | None, now: datetime) -> None:
        self._s, self._ns, self._legs, self._now = s, namespace, legs, now
        self.current = set(client_order_ids(namespace, intent_id, legs)) if intent_id else set()
        self._derived: dict[str, str] | None = None

    def resolve(self, cids: Iterable[str]) -> dict[str, tuple[str, bool]]:
        """``{cid: (intent id, has order row)}`` for the cids of intents already handled."""
        wanted = {c for c in cids if c not in self.current}
        if not wanted:
            return {}
        rows = self._s.execute(
            select(Order.client_order_id, Order.intent_id).where(
                Order.namespace == self._ns, Order.client_order_id.in_(wanted)
            )
        ).all()
        out = {cid: (iid, True) for cid, iid in rows}
        rest = wanted - out.keys()
        if rest:
            derived = self._derive()
            out |= {cid: (derived[cid], False) for cid in rest if cid in derived}
        return out

    def _derive(self) -> dict[str, str]:
        """Every client order id our recent intents could have used (computed once, on demand)."""
        if self._derived is None:
            ids = self._s.scalars(
                select(Intent.intent_id).where(
                    Intent.namespace == self._ns, Intent.received_at >= self._now - OWNER_LOOKBACK
                )
            ).all()
            self._derived = {cid: iid for iid in ids for cid in client_order_ids(self._ns, iid, self._legs)}
        return self._derived


def reconcile(
    s: Session,
    exchange: Exchange,
    namespace: str,
    symbol: str,
    *,
    now: datetime,
    sleep: Callable[[float], None],
    intent_id: str | None = None,
    legs: int = 0,
    act: bool = False,
    settle_attempts: int = 3,
    settle_wait_s: float = 0.5,
) -> Reconciliation:
    """Compare open orders, fills and position; ``intent_id`` names the intent allowed to be ahead.

    With ``act`` the remainders of OUR working orders are cancelled first (nothing else on the
    venue is touched); without it this only reads. A position that book + unbooked fills do not
    explain is asked again up to ``settle_attempts`` times, ``settle_wait_s`` apart: Kraken's fill
    history may lag its position by a moment, and halting on that would be a false alarm.
    ``sleep`` is the executor clock's (``Clock.sleep``): tests on a manual clock wait in no time.
    """
    held = book.load_holding(s, namespace, symbol).quantity
    owners = Owners(s, namespace, legs, intent_id, now)
    cancelled: list[tuple[str, str]] = []
    compared = cancel_rounds = 0
    while True:
        working = exchange.fetch_open_orders()
        working_owners = owners.resolve(o.client_order_id for o in working)
        ours = [
            o for o in working if o.client_order_id in working_owners or o.client_order_id in owners.current
        ]
        if act and ours and cancel_rounds < 2:
            cancel_rounds += 1
            for o in ours:
                # A market order still working at the next decision is stale: its remainder was
                # sized for an old tick. Cancel it; what did fill is booked from the fills.
                exchange.cancel_order(o.client_order_id)
                owner = working_owners.get(o.client_order_id, (intent_id or "", False))[0]
                cancelled.append((o.client_order_id, owner))
                log.warning(
                    "reconcile_cancel_remainder",
                    namespace=namespace,
                    client_order_id=o.client_order_id,
                    intent_id=owner,
                    quantity=o.quantity,
                )
            continue  # read the venue again: a cancel may have raced a fill
        rec, unexplained = _compare(s, exchange, namespace, held, owners, working, ours, tuple(cancelled))
        compared += 1
        if not unexplained or rec.foreign or compared >= max(1, settle_attempts):
            return rec
        log.info("reconcile_settle_wait", namespace=namespace, attempt=compared, problems=list(rec.problems))
        sleep(settle_wait_s)


def _compare(
    s: Session,
    exchange: Exchange,
    namespace: str,
    held: float,
    owners: Owners,
    working: list[ExchangeOrder],
    ours_working: list[ExchangeOrder],
    cancelled: tuple[tuple[str, str], ...],
) -> tuple[Reconciliation, bool]:
    """One look at the venue; the flag says the position is not explained by book + fills."""
    problems: list[str] = []
    mine_ids = {o.client_order_id for o in ours_working}
    foreign_orders = tuple(o for o in working if o.client_order_id not in mine_ids)
    if foreign_orders:
        ids = ", ".join(o.client_order_id for o in foreign_orders[:5])
        problems.append(
            f"reconcile: {len(foreign_orders)} open order(s) on {exchange.name} we did not place: {ids}"
        )
    if ours_working:
        ids = ", ".join(o.client_order_id for o in ours_working[:5])
        problems.append(
            f"reconcile: {len(ours_working)} of our order(s) still working on {exchange.name}: {ids}"
        )
    venue = exchange.fetch_position()
    if abs(venue - held) <= _TOL:
        # agreement: the fill history is not read (one venue call less per intent); a late fill
        # changes the position, so the intent after it sees a difference and repairs it
        agreed = Reconciliation(
            held, venue, tuple(problems), cancelled=cancelled, foreign_orders=foreign_orders
        )
        return agreed, False
    last = book.last_fill_time(s, namespace)
    # a day of slack: fill times are venue/tick times, not guaranteed to arrive in order
    since = last - LOOKBACK if last is not None else None
    known = book.known_fill_ids(s, namespace, since)
    unknown = [f for f in exchange.fetch_fills(since) if f.fill_id not in known]
    owner = owners.resolve(f.client_order_id for f in unknown)
    adoptable = tuple(f for f in unknown if f.client_order_id in owners.current)
    repairs = tuple(Repair(f, *owner[f.client_order_id]) for f in unknown if f.client_order_id in owner)
    foreign = tuple(
        f for f in unknown if f.client_order_id not in owners.current and f.client_order_id not in owner
    )
    explained = round(held + sum(f.signed_quantity for f in unknown), 8)
    if foreign:
        ids = ", ".join(sorted({f.client_order_id for f in foreign})[:5])
        problems.append(
            f"reconcile: {len(foreign)} fill(s) on {exchange.name} missing from the book, not ours: {ids}"
        )
    unexplained = abs(explained - venue) > _TOL
    if unexplained:
        problems.append(
            f"reconcile: {exchange.name} position {venue:g} BTC != book {held:g} BTC "
            f"+ {len(unknown)} unbooked fill(s) = {explained:g} BTC"
        )
    rec = Reconciliation(held, venue, tuple(problems), adoptable, repairs, cancelled, foreign, foreign_orders)
    return rec, unexplained
