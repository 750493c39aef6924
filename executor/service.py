"""The executor: one intent at a time, from dedup to report, in one database transaction.

Per intent (see docs/decisions/0007-executor-exactly-once.md for why this order):

1. take the namespace's advisory lock; refuse an intent id already in ``intents``;
2. reconcile with the venue (adopting fills a crashed run left for THIS intent);
3. risk -> legs; for each leg: look its deterministic client order id up on the venue, and only
   when the venue does not know it, place it;
4. write intent, orders, fills, position, P&L; publish the report AND flush it; then commit.

The ConsumerLoop commits the Kafka offset after that. A crash anywhere re-delivers the intent; the
lookup-before-place turns the re-run into adoption of what the venue already did.

Replays hand over whole polls (``handle_batch``, docs/decisions/0018-executor-replay-batches.md):
consecutive intents share the lock, the dedup read, the report flush and the commit, as long as
only the first new intent of a transaction writes to the venue; live stays one intent per
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from common.db.models import Intent
from common.db.session import session_scope
from common.events import ExecutionReport, ExecutionStatus, Order, OrderIntent, OrderSide
from common.ids import parse_tick_id
from common.logging import get_logger
from common.order_ids import client_order_id
from config import Settings
from executor import book
from executor.clock import Clock
from executor.exchanges.base import Exchange, ExchangeOrder, NoPrice, OrderRefused, OrderRequest
from executor.ledger import Holding, apply_fill
from executor.reconcile import Reconciliation, max_legs, reconcile
from executor.repair import HALTS, book_repairs
from executor.risk import Book, Plan, RiskEngine, Verdict

log = get_logger(__name__)
EXECUTIONS = Counter("btcmeta_executor_intents_total", "Intents handled by outcome", ["status"])
REFUSALS = Counter("btcmeta_executor_refusals_total", "Refusals by limit", ["limit"])
BAD_MARKS = Counter(
    "btcmeta_executor_bad_marks_total", "Venue marks refused (missing, NaN, <= 0 or stale): no new risk"
)

Publish = Callable[[ExecutionReport], None]


class _PlacesOrders(Exception):
    """An intent that is not its transaction's first would write to the venue: commit first."""


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
        #: How often a position the fills do not yet explain is asked again (lagging fill history).
        self.settle_attempts = 3
        self.settle_wait_s = 0.5
        #: Client order ids whose working remainder the current intent's reconciliation cancelled.
        self._cancelled_now: set[str] = set()

    def handle(self, intent: OrderIntent, publish: Publish) -> ExecutionReport:
        """Handle one intent; ``publish`` must deliver (flush) the report before we commit."""
        return self.handle_batch([intent], publish)[0]

    def handle_batch(
        self, intents: Sequence[OrderIntent], publish: Publish, flush: Callable[[], None] = lambda: None
    ) -> list[ExecutionReport]:
        """Handle ``intents`` in order, as few transactions as exactly-once allows (ADR 0018).

        Consecutive intents share ONE transaction (lock, dedup, bookings, commit) until one that
        is not the transaction's first would place an order: that one is rolled back to its
        savepoint and starts the next transaction. So the venue can be ahead of an uncommitted
        transaction only by its first non-duplicate intent, the one Kafka re-delivers first after
        the duplicates, exactly as with one intent per transaction (ADR 0007). ``publish`` sends a
        report, ``flush`` delivers all sent ones; it runs before each commit.
        """
        reports: list[ExecutionReport] = []
        while len(reports) < len(intents):
            reports += self._transaction(intents[len(reports) :], publish, flush)
        return reports

    def _transaction(
        self, intents: Sequence[OrderIntent], publish: Publish, flush: Callable[[], None]
    ) -> list[ExecutionReport]:
        """Handle intents from the first on in one transaction; stop before a second venue writer."""
        reports: list[ExecutionReport] = []
        with session_scope(self.engine) as s:
            book.lock_namespace(s, self.namespace)
            # one dedup query for the whole batch (the lock is held: nobody else adds rows meanwhile)
            ids = {i.intent_id for i in intents}
            seen: dict[str, str] = {
                iid: status
                for iid, status in s.execute(
                    select(Intent.intent_id, Intent.status).where(
                        Intent.namespace == self.namespace, Intent.intent_id.in_(ids)
                    )
                )
            }
            first = True  # no intent of this transaction has been handled yet (duplicates aside)
            for intent in intents:
                now = self._now_for(intent)
                if intent.intent_id in seen:
                    report = self._duplicate(s, intent, seen[intent.intent_id], now)
                elif first:
                    report = self._handle_in(s, intent, now, may_place=True)
                    first = False
                else:
                    funding_hour = self._funding_hour
                    try:
                        with s.begin_nested():
                            report = self._handle_in(s, intent, now, may_place=False)
                    except _PlacesOrders:
                        # rolled back to the savepoint; handled first in the next transaction
                        self._funding_hour = funding_hour
                        book.forget_row_locks(s)
                        break
                seen[intent.intent_id] = report.status.value
                publish(report)
                reports.append(report)
            flush()  # every report delivered BEFORE the commit: a crash re-sends, never loses
        return reports

    def _now_for(self, intent: OrderIntent) -> datetime:
        advance = getattr(self.clock, "advance_to", None)
        if advance is not None:
            # Replayed time is the tick's time: the intent's created_at is the wall clock of the
            # meta consumer that decided it, which in a replay is years after the bar it trades.
            advance(parse_tick_id(intent.tick_id)[1])
        return self.clock.now()

    def _duplicate(
        self, s: Session, intent: OrderIntent, first_status: str, now: datetime
    ) -> ExecutionReport:
        why = f"duplicate_intent: {intent.intent_id} already handled ({first_status})"
        log.warning("intent_duplicate", intent_id=intent.intent_id, first_status=first_status)
        REFUSALS.labels("duplicate_intent").inc()
        return self._report(intent, ExecutionStatus.REFUSED, why, [], self._position(s), now)

    def _handle_in(
        self, s: Session, intent: OrderIntent, now: datetime, *, may_place: bool
    ) -> ExecutionReport:
        """One new intent inside the caller's transaction (lock held, dedup done)."""
        rec = self._reconcile(s, intent, now)  # books our late fills BEFORE the holding is read
        holding = book.load_holding(s, self.namespace, self.symbol)
        funding = self._funding(s, now)
        outcome = self._decide_and_place(s, intent, holding, now, rec, may_place=may_place)
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

    def _reconcile(self, s: Session, intent: OrderIntent, now: datetime) -> Reconciliation:
        """Reconcile with the venue and heal what its fills explain (executor/reconcile.py).

        Our own late fills (delayed, partial rest, lost answer) are booked now, in this intent's
        transaction; our stale working remainders were cancelled. Only what the venue's fills
        cannot explain is left in ``problems``: it refuses this intent and, as long as it stays,
        every following one, until an operator runs ``python -m executor adopt``.
        """
        rec = reconcile(
            s,
            self.exchange,
            self.namespace,
            self.symbol,
            now=now,
            sleep=self.clock.sleep,
            intent_id=intent.intent_id,
            legs=self._legs,
            act=True,
            settle_attempts=self.settle_attempts,
            settle_wait_s=self.settle_wait_s,
        )
        self._cancelled_now = {cid for cid, _ in rec.cancelled}
        self._book_repairs(s, rec, now)
        if not rec.ok:
            HALTS.inc()
            log.error(
                "reconcile_halt",
                namespace=self.namespace,
                intent_id=intent.intent_id,
                problems=list(rec.problems),
                hint="the venue's fills do not explain its state: check it, then `python -m executor adopt`",
            )
        return rec

    def _book_repairs(self, s: Session, rec: Reconciliation, now: datetime) -> None:
        """Book the late fills and cancelled remainders a reconciliation found (no-op when none)."""
        if rec.repairs or rec.cancelled:
            book_repairs(
                s,
                self.namespace,
                self.symbol,
                self.exchange.name,
                rec,
                now,
                lambda h: self._unrealized(s, h, now)[0],
            )

    def reconcile_now(self, *, repair: bool) -> Reconciliation:
        """Reconcile outside an intent (start-up, ``python -m executor reconcile``).

        With ``repair``, our late fills are booked and our stale remainders cancelled, under the
        namespace lock like an intent; fills of an intent not yet handled (a crash before its
        commit) stay unexplained here: its re-delivery adopts them.
        """
        now = self.clock.now()
        with session_scope(self.engine) as s:
            if repair:
                book.lock_namespace(s, self.namespace)
            rec = reconcile(
                s,
                self.exchange,
                self.namespace,
                self.symbol,
                now=now,
                sleep=self.clock.sleep,
                legs=self._legs,
                act=repair,
                settle_attempts=self.settle_attempts if repair else 1,
                settle_wait_s=self.settle_wait_s,
            )
            if repair:
                self._book_repairs(s, rec, now)
        return rec

    def _decide_and_place(
        self,
        s: Session,
        intent: OrderIntent,
        holding: Holding,
        now: datetime,
        rec: Reconciliation,
        *,
        may_place: bool = True,
    ) -> _Outcome:
        if not rec.ok:
            REFUSALS.labels("reconcile").inc()
            return _Outcome(ExecutionStatus.REFUSED, rec.describe(), [])
        adopted = {f.client_order_id for f in rec.adoptable}
        if adopted:
            log.warning("adopting_orders", intent_id=intent.intent_id, client_order_ids=sorted(adopted))
        # The mark is asked for even when flat: a venue without a valid mark gets no new risk.
        unrealized, mark_error = self._unrealized(s, holding, now)
        daily = book.daily_pnl(s, self.namespace, now.date(), unrealized)
        state = book.load_risk_state(s, self.namespace)
        orders_hour = book.orders_since(s, self.namespace, book.hour_ago(now))
        plan = self.risk.evaluate(intent, Book(holding.quantity, daily, orders_hour, mark_error), state, now)
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
        if not may_place:
            raise _PlacesOrders(intent.intent_id)
        return self._with_adopted(self._place_legs(intent, plan), adopted)

    def _unrealized(
        self, s: Session, holding: Holding, now: datetime, *, fill_price: float = 0.0
    ) -> tuple[float, str | None]:
        """Unrealized P&L of ``holding`` at the venue's mark, and why the mark is unusable (or None).

        Without a valid mark the value must not look better than what we know (it feeds the daily
        loss cap): the price the venue just filled us at when there is one, otherwise the last
        stored unrealized P&L, counted only when it is a loss (an unverifiable gain counts as 0).
        """
        try:
            mark = self.exchange.mark_price(now)
        except NoPrice as exc:
            BAD_MARKS.inc()
            log.warning("mark_unusable", namespace=self.namespace, error=str(exc), position=holding.quantity)
            if not holding.quantity:
                return 0.0, str(exc)
            if fill_price > 0:
                return holding.unrealized(fill_price), str(exc)
            return min(0.0, book.last_unrealized(s, self.namespace) or 0.0), str(exc)
        return holding.unrealized(mark), None

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
        if req.client_order_id in self._cancelled_now:
            # This intent's order from a run that crashed, cancelled by reconciliation just now and
            # no longer visible: it is done (its id cannot be sent again), not to be re-placed.
            log.warning("order_cancelled_by_reconcile", client_order_id=req.client_order_id)
            return ExchangeOrder(req.client_order_id, None, req.side, req.quantity, "canceled")
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
            new = book.record_order(
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
            for f in new:  # a fill booked before (repaired or adopted) is never counted twice
                holding, r = apply_fill(holding, f.signed_quantity, f.price)
                realized += r
                fees += f.fee
        if outcome.orders or funding:
            unrealized = 0.0
            if holding.quantity:
                last_fill = next((o.average_price for o in reversed(outcome.orders) if o.filled > 0), 0.0)
                unrealized, _ = self._unrealized(s, holding, now, fill_price=last_fill)
            book.save_holding(s, self.namespace, self.symbol, holding)
            book.update_pnl(
                s,
                self.namespace,
                now.date(),
                realized=realized,
                fees=fees,
                funding=funding,
                unrealized=unrealized,
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
