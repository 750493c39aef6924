"""The executor: one intent at a time, from dedup to report, in one database transaction.

Per intent (see docs/decisions/0007-executor-exactly-once.md for why this order):

1. take the namespace's advisory lock; refuse an intent id already in ``intents``;
2. reconcile with the venue (adopting fills a crashed run left for THIS intent);
3. risk -> legs; for each leg: look its deterministic client order id up on the venue, and only
   when the venue does not know it, place it;
4. write intent, orders, fills, position, P&L; publish the report AND flush it; then commit.

The ConsumerLoop commits the Kafka offset after that. A crash anywhere re-delivers the intent; the
lookup-before-place turns the re-run into adoption of what the venue already did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from common.db.models import Intent
from common.db.session import session_scope
from common.events import ExecutionReport, ExecutionStatus, Order, OrderIntent, OrderSide
from common.ids import parse_tick_id
from common.logging import get_logger
from config import Settings
from executor import book
from executor.clock import Clock
from executor.exchanges.base import Exchange, ExchangeOrder, NoPrice, OrderRefused, OrderRequest
from executor.ids import client_order_id
from executor.ledger import Holding, apply_fill
from executor.reconcile import max_legs, reconcile
from executor.risk import Book, Plan, RiskEngine, Verdict

log = get_logger(__name__)
EXECUTIONS = Counter("btcmeta_executor_intents_total", "Intents handled by outcome", ["status"])
REFUSALS = Counter("btcmeta_executor_refusals_total", "Refusals by limit", ["limit"])

Publish = Callable[[ExecutionReport], None]


@dataclass
class _Outcome:
    status: ExecutionStatus
    reason: str
    orders: list[ExchangeOrder]


class Executor:
    """Turns intents into orders on one venue for one namespace (live or a replay)."""

    def __init__(
        self, settings: Settings, engine: Engine, exchange: Exchange, clock: Clock, namespace: str
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.exchange = exchange
        self.clock = clock
        self.namespace = namespace
        self.symbol = settings.symbol
        self.risk = RiskEngine(settings.risk, symbol=settings.symbol, max_exposure=settings.max_exposure)
        self._legs = max_legs(settings.risk.max_position_btc, settings.risk.max_order_btc)
        self._funding_hour: datetime | None = None

    def handle(self, intent: OrderIntent, publish: Publish) -> ExecutionReport:
        """Handle one intent; ``publish`` must deliver (flush) the report before we commit."""
        advance = getattr(self.clock, "advance_to", None)
        if advance is not None:
            # Replayed time is the tick's time: the intent's created_at is the wall clock of the
            # meta consumer that decided it, which in a replay is years after the bar it trades.
            advance(parse_tick_id(intent.tick_id)[1])
        now = self.clock.now()
        with session_scope(self.engine) as s:
            book.lock_namespace(s, self.namespace)
            seen = s.get(Intent, (self.namespace, intent.intent_id))
            if seen is not None:
                why = f"duplicate_intent: {intent.intent_id} already handled ({seen.status})"
                report = self._report(intent, ExecutionStatus.REFUSED, why, [], self._position(s), now)
                log.warning("intent_duplicate", intent_id=intent.intent_id, first_status=seen.status)
                REFUSALS.labels("duplicate_intent").inc()
                publish(report)
                return report
            holding = book.load_holding(s, self.namespace, self.symbol)
            funding = self._funding(s, now)
            outcome = self._decide_and_place(s, intent, holding, now)
            report = self._book(s, intent, outcome, holding, funding, now)
            EXECUTIONS.labels(report.status.value).inc()
            log.info(
                "intent_handled",
                intent_id=intent.intent_id,
                status=report.status.value,
                reason=report.reason,
                orders=len(report.orders),
                position=report.position_after,
            )
            publish(report)
        return report

    def _funding(self, s: Session, now: datetime) -> float:
        """Book new funding settlements; they only happen on the hour, so ask once per hour."""
        hour = now.replace(minute=0, second=0, microsecond=0)
        if self._funding_hour == hour:
            return 0.0
        since = book.last_funding_time(s, self.namespace)
        added = book.record_funding(s, self.namespace, self.exchange.fetch_funding(since, now))
        self._funding_hour = hour
        return added

    # ------------------------------------------------------------------ decision and placement

    def _decide_and_place(self, s: Session, intent: OrderIntent, holding: Holding, now: datetime) -> _Outcome:
        rec = reconcile(
            s, self.exchange, self.namespace, self.symbol, intent_id=intent.intent_id, legs=self._legs
        )
        if not rec.ok:
            REFUSALS.labels("reconcile").inc()
            return _Outcome(ExecutionStatus.REFUSED, rec.describe(), [])
        adopted = {f.client_order_id for f in rec.adoptable}
        if adopted:
            log.warning("adopting_orders", intent_id=intent.intent_id, client_order_ids=sorted(adopted))
        try:
            mark = self.exchange.mark_price(now) if holding.quantity else 0.0
        except NoPrice as exc:
            return self._with_adopted(_Outcome(ExecutionStatus.REFUSED, f"no_price: {exc}", []), adopted)
        daily = book.daily_pnl(s, self.namespace, now.date(), holding.unrealized(mark))
        state = book.load_risk_state(s, self.namespace)
        orders_hour = book.orders_since(s, self.namespace, book.hour_ago(now))
        plan = self.risk.evaluate(intent, Book(holding.quantity, daily, orders_hour), state, now)
        if plan.halt_until is not None:
            book.set_risk_state(
                s, self.namespace, "executor", "daily_loss_halt", plan.reason, halted_until=plan.halt_until
            )
        if plan.verdict is not Verdict.TRADE:
            REFUSALS.labels(plan.reason.split(":", 1)[0]).inc()
            status = {Verdict.NOOP: ExecutionStatus.NOOP, Verdict.REJECTED: ExecutionStatus.REJECTED}.get(
                plan.verdict, ExecutionStatus.REFUSED
            )
            return self._with_adopted(_Outcome(status, plan.reason, []), adopted)
        return self._with_adopted(self._place_legs(intent, plan), adopted)

    def _place_legs(self, intent: OrderIntent, plan: Plan) -> _Outcome:
        _, tick_time = parse_tick_id(intent.tick_id)
        orders: list[ExchangeOrder] = []
        for leg, qty in enumerate(plan.legs):
            cid = client_order_id(self.namespace, intent.intent_id, leg)
            side = OrderSide.BUY if qty > 0 else OrderSide.SELL
            req = OrderRequest(cid, intent.intent_id, intent.tick_id, self.symbol, side, abs(qty), tick_time)
            try:
                orders.append(self._lookup_or_place(req))
            except (OrderRefused, NoPrice) as exc:
                status = ExecutionStatus.PARTIALLY_FILLED if orders else ExecutionStatus.REJECTED
                if isinstance(exc, NoPrice) and not orders:
                    status = ExecutionStatus.REFUSED
                log.error("order_refused", intent_id=intent.intent_id, client_order_id=cid, error=str(exc))
                return _Outcome(
                    status, f"{plan.reason}; leg {leg} refused by venue: {exc}".lstrip("; "), orders
                )
        partial = any(o.filled + 1e-12 < o.quantity for o in orders)
        status = ExecutionStatus.PARTIALLY_FILLED if partial else ExecutionStatus.FILLED
        return _Outcome(status, plan.reason, orders)

    def _lookup_or_place(self, req: OrderRequest) -> ExchangeOrder:
        """Never place a client order id twice: the venue's answer wins over our memory."""
        found = self.exchange.fetch_order(req.client_order_id)
        if found is not None:
            log.warning("order_already_on_venue", client_order_id=req.client_order_id, status=found.status)
            return found
        return self.exchange.place_order(req)

    def _with_adopted(self, outcome: _Outcome, adopted: set[str]) -> _Outcome:
        """Orders the venue already executed for this intent are facts: book them whatever risk says now."""
        have = {o.client_order_id for o in outcome.orders}
        for cid in sorted(adopted - have):
            order = self.exchange.fetch_order(cid)
            if order is None:
                raise RuntimeError(f"venue reported fills for {cid} but not the order; stopping")
            outcome.orders.append(order)
            outcome.reason = f"{outcome.reason}; adopted {cid} placed before a restart".lstrip("; ")
            if outcome.status in (ExecutionStatus.REFUSED, ExecutionStatus.NOOP, ExecutionStatus.REJECTED):
                outcome.status = ExecutionStatus.PARTIALLY_FILLED
        return outcome

    # ------------------------------------------------------------------ persistence

    def _book(
        self,
        s: Session,
        intent: OrderIntent,
        outcome: _Outcome,
        holding: Holding,
        funding: float,
        now: datetime,
    ) -> ExecutionReport:
        s.add(
            Intent(
                namespace=self.namespace,
                intent_id=intent.intent_id,
                tick_id=intent.tick_id,
                model_id=intent.model_id,
                action=intent.action.value,
                target_exposure=intent.target_exposure,
                status=outcome.status.value,
                reason=outcome.reason[:2000],
                received_at=now,
                handled_at=now,
            )
        )
        s.flush()
        realized = fees = 0.0
        for o in outcome.orders:
            book.record_order(
                s,
                self.namespace,
                intent_id=intent.intent_id,
                exchange=self.exchange.name,
                client_order_id=o.client_order_id,
                exchange_order_id=o.exchange_order_id,
                symbol=self.symbol,
                side=o.side.value,
                quantity=o.quantity,
                price=o.average_price or None,
                status=o.status,
                now=now,
                fills=o.fills,
            )
            for f in o.fills:
                holding, r = apply_fill(holding, f.signed_quantity, f.price)
                realized += r
                fees += f.fee
        if outcome.orders or funding:
            try:
                mark = self.exchange.mark_price(now) if holding.quantity else 0.0
            except NoPrice:
                mark = outcome.orders[-1].average_price if outcome.orders else holding.avg_price or 0.0
            book.save_holding(s, self.namespace, self.symbol, holding)
            book.update_pnl(
                s,
                self.namespace,
                now.date(),
                realized=realized,
                fees=fees,
                funding=funding,
                unrealized=holding.unrealized(mark),
                holding=holding,
            )
        return self._report(intent, outcome.status, outcome.reason, outcome.orders, holding.quantity, now)

    def _position(self, s: Session) -> float:
        return book.load_holding(s, self.namespace, self.symbol).quantity

    def _report(
        self,
        intent: OrderIntent,
        status: ExecutionStatus,
        reason: str,
        orders: list[ExchangeOrder],
        position: float,
        now: datetime,
    ) -> ExecutionReport:
        return ExecutionReport(
            intent_id=intent.intent_id,
            tick_id=intent.tick_id,
            status=status,
            reason=reason,
            orders=tuple(
                Order(
                    o.client_order_id,
                    o.side,
                    o.filled,
                    o.average_price,
                    o.fee,
                    max((f.filled_at for f in o.fills), default=now),
                )
                for o in orders
            ),
            position_after=position,
            exchange=self.exchange.name,
            reported_at=now,
        )
