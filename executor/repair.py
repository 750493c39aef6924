"""Book what reconciliation found: our late fills (automatic) and, on an operator's word, the rest.

``book_repairs`` is the self-healing half: fills of OUR client order ids that the book lacks
(a delayed fill, a partial fill's rest, an order whose answer was lost) are booked against the
intent's order, idempotently by venue fill id, moving holding and P&L exactly as if the order
answer had carried them. It runs inside the intent's transaction, before risk looks at the book.

``adopt`` is the operator's half, for what the venue's fills cannot explain as ours (somebody
traded by hand, history older than the venue serves): the venue's fills and position become the
book's truth, under a synthetic ``adopt|...`` intent, with an audit row naming who and why. It
never trades; it refuses while orders we did not place are working (they would move the
position right after), unless told to cancel them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db.models import AuditLog, Fill, Intent, Order
from common.events import ExecutionStatus, OrderSide
from common.ids import make_tick_id
from common.logging import get_logger
from executor import book
from executor.clock import Clock
from executor.exchanges.base import Exchange, ExchangeFill, NoPrice
from executor.ledger import Holding, apply_fill
from executor.reconcile import Reconciliation, reconcile

log = get_logger(__name__)
REPAIRED = Counter(
    "btcmeta_executor_reconcile_repaired_fills_total",
    "Venue fills of our own orders the book lacked, booked by reconciliation (delayed/partial/lost answers)",
)
HALTS = Counter(
    "btcmeta_executor_reconcile_halts_total",
    "Intents refused because the venue's fills do not explain its state (needs `executor adopt`)",
)
ADOPTIONS = Counter("btcmeta_executor_adoptions_total", "Operator adoptions of the venue's state")
_TOL = 1e-9

#: Values the holding at a mark for the P&L row (the service passes its mark-safe valuation).
Valuer = Callable[[Holding], float]


class AdoptRefused(Exception):
    """``adopt`` would not make the book true (orders we did not place are still working)."""


@dataclass(frozen=True, slots=True)
class Adoption:
    intent_id: str
    book_before: float
    venue_position: float
    fills_booked: int
    adjustment: float


def book_repairs(
    s: Session,
    namespace: str,
    symbol: str,
    exchange: str,
    rec: Reconciliation,
    now: datetime,
    value: Valuer,
) -> Holding:
    """Book ``rec.repairs`` and the status of cancelled remainders; return the new holding."""
    holding = book.load_holding(s, namespace, symbol)
    by_cid: dict[str, list[ExchangeFill]] = defaultdict(list)
    intent_of: dict[str, str] = {}
    for rep in rec.repairs:
        by_cid[rep.fill.client_order_id].append(rep.fill)
        intent_of[rep.fill.client_order_id] = rep.intent_id
    for cid, intent_id in rec.cancelled:
        if intent_id and s.get(Order, (namespace, cid)) is not None:
            intent_of.setdefault(cid, intent_id)
            by_cid.setdefault(cid, [])
    fills = sorted((f for fs in by_cid.values() for f in fs), key=lambda f: (f.filled_at, f.fill_id))
    booked = _book_fills(
        s, namespace, symbol, exchange, by_cid, intent_of, {c for c, _ in rec.cancelled}, now
    )
    holding = _apply_fills(
        s, namespace, symbol, holding, [f for f in fills if f.fill_id in booked], now, value
    )
    if booked:
        REPAIRED.inc(len(booked))
    cancelled_ids = {c for c, _ in rec.cancelled}
    for intent_id in sorted(set(intent_of.values())):
        cids = sorted(c for c, i in intent_of.items() if i == intent_id)
        n = sum(1 for c in cids for f in by_cid[c] if f.fill_id in booked)
        _restate_intent(s, namespace, intent_id, n, sum(1 for c in cids if c in cancelled_ids), now)
        log.warning(
            "reconcile_repaired",
            namespace=namespace,
            intent_id=intent_id,
            client_order_ids=cids,
            fills=n,
            quantity=round(sum(f.signed_quantity for c in cids for f in by_cid[c] if f.fill_id in booked), 8),
            cancelled=[c for c in cids if c in cancelled_ids],
            position=holding.quantity,
        )
    return holding


def _book_fills(
    s: Session,
    namespace: str,
    symbol: str,
    exchange: str,
    by_cid: dict[str, list[ExchangeFill]],
    intent_of: dict[str, str],
    cancelled: set[str],
    now: datetime,
) -> set[str]:
    """Insert order rows that are missing and the fills the book lacks; return fill ids booked."""
    booked: set[str] = set()
    for cid, fills in by_cid.items():
        order = s.get(Order, (namespace, cid))
        if order is None:
            if not fills:
                continue
            qty = round(sum(f.quantity for f in fills), 8)
            order = Order(
                namespace=namespace,
                client_order_id=cid,
                intent_id=intent_of[cid],
                exchange=exchange,
                exchange_order_id=None,
                symbol=symbol,
                side=fills[0].side.value.lower(),
                quantity=qty,
                price=None,
                status="closed",
                created_at=now,
            )
            s.add(order)
            s.flush()  # orders before fills (foreign key)
        for f in fills:
            if s.get(Fill, (namespace, f.fill_id)) is not None:
                continue  # idempotent by venue fill id
            s.add(
                Fill(
                    namespace=namespace,
                    fill_id=f.fill_id,
                    client_order_id=cid,
                    quantity=f.quantity,
                    price=f.price,
                    fee=f.fee,
                    liquidity=f.liquidity,
                    filled_at=f.filled_at,
                )
            )
            booked.add(f.fill_id)
        s.flush()
        filled, notional = s.execute(
            select(
                func.coalesce(func.sum(Fill.quantity), 0.0),
                func.coalesce(func.sum(Fill.quantity * Fill.price), 0.0),
            ).where(Fill.namespace == namespace, Fill.client_order_id == cid)
        ).one()
        if filled > 0:
            order.price = float(notional) / float(filled)
        if float(filled) + _TOL >= order.quantity:
            order.status = "closed"
        elif cid in cancelled:
            order.status = "canceled"
    return booked


def _restate_intent(
    s: Session, namespace: str, intent_id: str, fills: int, cancelled: int, now: datetime
) -> None:
    """The intent's status follows its orders now that their fills are known; the reason says why."""
    intent = s.get(Intent, (namespace, intent_id))
    if intent is None:
        return
    statuses = list(
        s.scalars(select(Order.status).where(Order.namespace == namespace, Order.intent_id == intent_id))
    )
    if statuses and all(st == "closed" for st in statuses):
        intent.status = ExecutionStatus.FILLED.value
    elif fills or intent.status == ExecutionStatus.FILLED.value:
        intent.status = ExecutionStatus.PARTIALLY_FILLED.value
    note = f"; reconciled {now.isoformat()}: {fills} late fill(s) booked"
    if cancelled:
        note += f", {cancelled} working remainder(s) cancelled"
    intent.reason = ((intent.reason or "") + note)[-2000:]


def adopt(
    s: Session,
    exchange: Exchange,
    namespace: str,
    symbol: str,
    *,
    actor: str,
    reason: str,
    clock: Clock,
    legs: int,
    cancel_foreign_orders: bool = False,
) -> Adoption:
    """Book the venue's fills and position as the truth (operator command); audit who and why.

    ``clock`` dates what is booked and paces the reconciliation's settle waits."""
    if not reason.strip():
        raise AdoptRefused("a reason is required: it is kept in audit_log")
    now = clock.now()
    book.lock_namespace(s, namespace)
    rec = reconcile(s, exchange, namespace, symbol, now=now, sleep=clock.sleep, legs=legs, act=True)
    if rec.foreign_orders:
        ids = [o.client_order_id for o in rec.foreign_orders]
        if not cancel_foreign_orders:
            raise AdoptRefused(
                f"{len(ids)} order(s) we did not place are working on {exchange.name} "
                f"({', '.join(ids[:5])}): cancel them on the venue first, or pass --cancel-foreign-orders"
            )
        for cid in ids:
            exchange.cancel_order(cid)
        rec = reconcile(s, exchange, namespace, symbol, now=now, sleep=clock.sleep, legs=legs, act=True)
    value = _valuer(exchange, now)
    holding = book_repairs(s, namespace, symbol, exchange.name, rec, now, value)
    tag = now.strftime("%Y%m%dT%H%M%S.%fZ")
    intent_id = f"adopt|{tag}"
    s.add(
        Intent(
            namespace=namespace,
            intent_id=intent_id,
            tick_id=make_tick_id(symbol, now),  # a well-formed tick id: readers parse them
            model_id="operator",
            action="ADOPT",
            target_exposure=0.0,
            status="ADOPTED",
            reason=f"adopted by {actor}: {reason}"[:2000],
            received_at=now,
            handled_at=now,
        )
    )
    s.flush()
    extra: list[ExchangeFill] = list(rec.foreign) + list(rec.adoptable)
    left = round(rec.venue_position - holding.quantity - sum(f.signed_quantity for f in extra), 8)
    if abs(left) > _TOL:
        # the venue's history does not reach back far enough: one synthetic fill at the mark
        price = _mark_or(exchange, now, holding.avg_price or 0.0)
        extra.append(
            ExchangeFill(
                fill_id=f"adopt:{tag}",
                client_order_id="position",
                side=OrderSide.BUY if left > 0 else OrderSide.SELL,
                quantity=abs(left),
                price=price,
                fee=0.0,
                filled_at=now,
                liquidity="adopted",
            )
        )
    before = holding.quantity
    by_cid: dict[str, list[ExchangeFill]] = defaultdict(list)
    for f in extra:
        by_cid[f"adopted:{tag}:{f.client_order_id}"].append(f)
    for cid, fills in by_cid.items():
        book.record_order(
            s,
            namespace,
            intent_id=intent_id,
            exchange=exchange.name,
            client_order_id=cid,
            exchange_order_id=None,
            symbol=symbol,
            side="buy" if sum(f.signed_quantity for f in fills) >= 0 else "sell",
            quantity=round(sum(f.quantity for f in fills), 8),
            price=None,
            status="adopted",
            now=now,
            fills=tuple(fills),
        )
    holding = _apply_fills(
        s, namespace, symbol, holding, sorted(extra, key=lambda f: (f.filled_at, f.fill_id)), now, value
    )
    result = Adoption(intent_id, rec.book_position, rec.venue_position, len(extra) + len(rec.repairs), left)
    s.add(
        AuditLog(
            namespace=namespace,
            actor=actor,
            role="operator",
            action="adopt",
            payload={
                "reason": reason,
                "intent_id": intent_id,
                "book_before": rec.book_position,
                "book_after_repairs": before,
                "venue_position": rec.venue_position,
                "book_after": holding.quantity,
                "repaired_fills": [r.fill.fill_id for r in rec.repairs][:100],
                "adopted_fills": [f.fill_id for f in extra][:100],
                "adjustment_btc": left,
                "problems": list(rec.problems),
                "cancelled_foreign_orders": [o.client_order_id for o in rec.foreign_orders]
                if cancel_foreign_orders
                else [],
            },
        )
    )
    ADOPTIONS.inc()
    log.warning(
        "reconcile_adopted",
        namespace=namespace,
        actor=actor,
        reason=reason,
        intent_id=intent_id,
        book_before=rec.book_position,
        venue_position=rec.venue_position,
        book_after=holding.quantity,
        fills=result.fills_booked,
        adjustment=left,
    )
    return result


def _apply_fills(
    s: Session,
    namespace: str,
    symbol: str,
    holding: Holding,
    fills: list[ExchangeFill],
    now: datetime,
    value: Valuer,
) -> Holding:
    """Move the holding through newly booked fills (in order) and persist it with today's P&L."""
    if not fills:
        return holding
    realized = fees = 0.0
    for f in fills:
        holding, r = apply_fill(holding, f.signed_quantity, f.price)
        realized += r
        fees += f.fee
    book.save_holding(s, namespace, symbol, holding)
    book.update_pnl(
        s,
        namespace,
        now.date(),
        realized=realized,
        fees=fees,
        funding=0.0,
        unrealized=value(holding),
        holding=holding,
    )
    return holding


def _mark_or(exchange: Exchange, now: datetime, fallback: float) -> float:
    try:
        return exchange.mark_price(now)
    except NoPrice:
        return fallback


def _valuer(exchange: Exchange, now: datetime) -> Valuer:
    """Unrealized P&L at the venue's mark, or 0 when there is none (never an invented gain)."""

    def value(h: Holding) -> float:
        if not h.quantity:
            return 0.0
        try:
            return h.unrealized(exchange.mark_price(now))
        except NoPrice:
            return min(0.0, h.unrealized(h.avg_price or 0.0))

    return value
