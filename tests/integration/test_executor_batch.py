"""The batched executor of replays (ADR 0018) against one intent per transaction (ADR 0007).

Same intents, same venue model, real Postgres (and the real broker for the consume loop): the
batched path must book exactly the rows the one-at-a-time path books (intents, orders, fills,
position, daily P&L, funding) and send the same reports; a transaction aborted in the middle of a
batch, with the venue already ahead of the book, must heal on re-delivery without booking or
placing anything twice. The SIGKILL variant is the chaos test's batched parametrization.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from common.db.models import Fill, FundingPayment, Intent, Order, PnlDaily, Position
from common.db.session import make_engine, session_scope
from common.events import ExecutionReport, OrderIntent
from config import RiskLimits, Settings
from executor.clock import ReplayClock
from executor.exchanges.base import OrderRequest
from executor.exchanges.paper import PaperExchange, venue_namespace
from executor.runner import run
from executor.service import Executor
from tests.standin.kit import SYMBOL, drain_reports, fills_position, make_intent, publish

pytestmark = pytest.mark.integration
# A loss cap small enough to halt some days: the halt is a state change inside a batch.
LIMITS = RiskLimits(
    max_position_btc=1.0,
    max_order_btc=0.5,
    daily_loss_cap_usd=400.0,
    max_orders_per_hour=20,
    max_intent_age_s=7_200,
)
START = datetime(2024, 3, 1, 18, tzinfo=UTC)  # hourly ticks over three midnights
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WavePrice:
    """A deterministic hourly price path with real moves (P&L, loss-cap halts, funding amounts)."""

    def price_at(self, when: datetime) -> float:
        h = (when - START).total_seconds() / 3600
        return 60_000.0 + 2_500.0 * math.sin(h / 5.0) + 40.0 * (int(h) % 7)


def _intents(n: int = 90, seed: int = 17) -> list[OrderIntent]:
    """Hourly intents, ~75 % keeping the previous target (as in a replay), plus the odd ones a
    replay meets: an intent sent again (in and across batches) and a stale one (refused)."""
    rng = random.Random(seed)
    grid = [-1.0, -0.5, 0.0, 0.5, 1.0]
    created = START + timedelta(days=30)  # fixed: reports are compared field by field
    out: list[OrderIntent] = []
    target = 0.0
    for i in range(n):
        if rng.random() > 0.75:
            target = rng.choice(grid)
        out.append(make_intent(60 * i, target, base=START, created_at=created))
    stale = make_intent(60 * 10 + 7, 0.5, base=START, created_at=created)  # 10 h 7 min behind
    out[40:40] = [out[3], stale, out[39]]  # an old duplicate, a stale one, the previous one again
    return out


def _executor(settings: Settings, ns: str, venue_cls: type[PaperExchange] = PaperExchange) -> Executor:
    s = settings.model_copy(update={"risk": LIMITS})
    url = s.database_url.get_secret_value()
    venue = venue_cls(
        make_engine(url),  # the venue's own connections: the executor's commits are counted apart
        ns,
        WavePrice(),
        symbol=SYMBOL,
        taker_fee_rate=0.0005,
        slippage_bps=1.0,
        funding_rate_hourly=0.0001,
    )
    return Executor(s, make_engine(url), venue, ReplayClock(EPOCH), ns)


def _commits(engine: Engine) -> list[int]:
    counter = [0]

    @event.listens_for(engine, "commit")
    def _count(_conn: Any) -> None:
        counter[0] += 1

    return counter


def _report_view(r: ExecutionReport) -> tuple[Any, ...]:
    """A report without its client order ids (they are derived from the namespace)."""
    orders = tuple((o.side, o.quantity, o.price, o.fee, o.filled_at) for o in r.orders)
    return (r.intent_id, r.status, r.reason, orders, r.position_after, r.reported_at)


def _book(engine: Engine, ns: str) -> dict[str, Any]:
    """Everything the executor booked in ``ns``, namespace-free, in a comparable order."""
    with session_scope(engine) as s:
        intents = s.execute(
            select(Intent.intent_id, Intent.status, Intent.reason, Intent.received_at, Intent.handled_at)
            .where(Intent.namespace == ns)
            .order_by(Intent.intent_id)
        ).all()
        orders = s.execute(
            select(Order.intent_id, Order.side, Order.quantity, Order.price, Order.status, Order.created_at)
            .where(Order.namespace == ns)
            .order_by(Order.intent_id, Order.created_at, Order.quantity)
        ).all()
        fills = s.execute(
            select(Fill.quantity, Fill.price, Fill.fee, Fill.filled_at)
            .where(Fill.namespace == ns)
            .order_by(Fill.filled_at, Fill.quantity, Fill.price)
        ).all()
        position = s.execute(
            select(Position.quantity, Position.avg_entry_price, Position.realized_pnl).where(
                Position.namespace == ns
            )
        ).all()
        pnl = s.execute(
            select(
                PnlDaily.day,
                PnlDaily.realized,
                PnlDaily.unrealized,
                PnlDaily.fees,
                PnlDaily.funding,
                PnlDaily.equity,
            )
            .where(PnlDaily.namespace == ns)
            .order_by(PnlDaily.day)
        ).all()
        funding = s.execute(
            select(FundingPayment.funding_time, FundingPayment.position_quantity, FundingPayment.amount)
            .where(FundingPayment.namespace == ns)
            .order_by(FundingPayment.funding_time)
        ).all()
    return {
        "intents": [tuple(r) for r in intents],
        "orders": [tuple(r) for r in orders],
        "fills": [tuple(r) for r in fills],
        "position": [tuple(r) for r in position],
        "pnl": [tuple(r) for r in pnl],
        "funding": [tuple(r) for r in funding],
    }


def _one_at_a_time(
    settings: Settings, intents: Sequence[OrderIntent]
) -> tuple[Executor, list[ExecutionReport]]:
    ex = _executor(settings, settings.kafka.topic_prefix + "one")
    reports: list[ExecutionReport] = []
    for intent in intents:
        ex.handle(intent, reports.append)
    return ex, reports


def _assert_venue_matches_book(ex: Executor) -> None:
    """No order placed twice, none lost: venue and book agree one for one (as the chaos test)."""
    ns, venue = ex.namespace, venue_namespace(ex.namespace)
    with session_scope(ex.engine) as s:
        ours = set(s.scalars(select(Order.client_order_id).where(Order.namespace == ns)))
        theirs = set(s.scalars(select(Order.client_order_id).where(Order.namespace == venue)))
        our_fills = set(s.scalars(select(Fill.fill_id).where(Fill.namespace == ns)))
        their_fills = set(s.scalars(select(Fill.fill_id).where(Fill.namespace == venue)))
    assert ours == theirs and our_fills == their_fills and len(our_fills) == len(ours) > 0
    assert fills_position(ex.engine, ns) == fills_position(ex.engine, venue) == ex.exchange.fetch_position()


def test_batches_book_exactly_what_one_at_a_time_books(settings: Settings) -> None:
    intents = _intents()
    one, reports_one = _one_at_a_time(settings, intents)
    batched = _executor(settings, settings.kafka.topic_prefix + "batch")
    commits = _commits(batched.engine)
    reports: list[ExecutionReport] = []
    flushes = [0]

    def flush() -> None:
        flushes[0] += 1

    sizes = [1, 7, 50, 3, 200]  # uneven batches: boundaries fall on trades, holds and duplicates
    k = 0
    for size in sizes:
        done = batched.handle_batch(intents[k : k + size], reports.append, flush)
        assert len(done) == len(intents[k : k + size])
        k += size
    assert k >= len(intents)
    transactions = commits[0]

    expected = _book(one.engine, one.namespace)
    assert _book(batched.engine, batched.namespace) == expected
    assert [_report_view(r) for r in reports] == [_report_view(r) for r in reports_one]
    # the run trades, refuses (stale, duplicates, loss cap) and pays funding: a real comparison
    statuses = {r[1] for r in expected["intents"]}
    assert {"FILLED", "NOOP", "REFUSED"} <= statuses and expected["funding"] and len(expected["pnl"]) >= 3
    assert any((r.reason or "").startswith("daily_loss_cap_usd") for r in reports_one)
    assert sum(r.reason.startswith("duplicate_intent") for r in reports) == 2
    # ... in far fewer transactions: one per batch plus one per trade that was not first in its own
    trades = sum(1 for r in reports if r.orders)
    assert transactions == flushes[0] <= len(sizes) + trades < len(intents) // 2
    _assert_venue_matches_book(batched)


def test_consume_loop_batches_through_the_broker(settings: Settings) -> None:
    """``BTCMETA_EXECUTOR__BATCH_SIZE``: the loop hands each poll to handle_batch, reports flushed."""
    intents = _intents(60, seed=5)
    one, reports_one = _one_at_a_time(settings, intents)
    batched = _executor(settings, settings.kafka.topic_prefix + "loop")
    s = batched.settings.model_copy(
        update={"executor": batched.settings.executor.model_copy(update={"batch_size": 25})}
    )
    batched.settings = s
    commits = _commits(batched.engine)
    publish(s, intents)
    stats = run(s, batched, max_messages=len(intents), idle_timeout=20)
    transactions = commits[0]
    assert stats.handled == len(intents)
    reports = drain_reports(s, len(intents))
    assert [_report_view(r) for r in reports] == [_report_view(r) for r in reports_one]
    assert _book(batched.engine, batched.namespace) == _book(one.engine, one.namespace)
    assert transactions < len(intents) // 2
    _assert_venue_matches_book(batched)


class _CrashAfter(PaperExchange):
    """The paper venue, but the process 'dies' after the N-th call of ``what`` (venue already done)."""

    crash_on: tuple[str, int] = ("place_order", 1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: dict[str, int] = {}

    def _tick(self, what: str) -> None:
        self._calls[what] = self._calls.get(what, 0) + 1
        if (what, self._calls[what]) == self.crash_on:
            raise RuntimeError(f"simulated crash after {what} #{self._calls[what]}")

    def place_order(self, request: OrderRequest) -> Any:
        order = super().place_order(request)  # committed on the venue: it is ahead of our book now
        self._tick("place_order")
        return order

    def fetch_position(self) -> float:
        position = super().fetch_position()
        self._tick("fetch_position")
        return position


@pytest.mark.parametrize(
    "crash_on",
    [
        ("place_order", 1),  # the first trade of the run
        ("place_order", 4),  # a later trade, after committed batches
        ("fetch_position", 30),  # a hold after a trade in the same transaction: venue ahead by that trade
    ],
)
def test_abort_in_the_middle_of_a_batch_books_nothing_twice(
    settings: Settings, crash_on: tuple[str, int]
) -> None:
    intents = _intents(70, seed=11)
    one, reports_one = _one_at_a_time(settings, intents)
    ns = settings.kafka.topic_prefix + "crash"

    class Crashing(_CrashAfter):
        pass

    Crashing.crash_on = crash_on
    crashed = _executor(settings, ns, Crashing)
    sent: list[ExecutionReport] = []
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.handle_batch(intents, sent.append)
    with session_scope(crashed.engine) as s:
        venue_orders = len(
            s.scalars(select(Order.client_order_id).where(Order.namespace == venue_namespace(ns))).all()
        )
        booked = len(s.scalars(select(Order.client_order_id).where(Order.namespace == ns)).all())
    assert venue_orders > booked  # the venue is ahead of the book: the case recovery must handle

    # restart: a fresh executor, Kafka re-delivers everything after the last committed offset (here:
    # all of it, the worst case), in batches of another size
    again = _executor(settings, ns)
    reports: list[ExecutionReport] = []
    for k in range(0, len(intents), 16):
        again.handle_batch(intents[k : k + 16], reports.append)
    assert not [r.reason for r in reports if r.reason.startswith("reconcile")]
    assert _book(again.engine, ns) == _book(one.engine, one.namespace)
    # each intent's first non-duplicate report (before or after the crash) is the reference's
    first: dict[str, ExecutionReport] = {}
    for r in [*sent, *reports]:
        if not r.reason.startswith("duplicate_intent"):
            first.setdefault(r.intent_id, r)
    reference = {r.intent_id: r for r in reports_one if not r.reason.startswith("duplicate_intent")}
    assert {i: _report_view(r)[1:] for i, r in first.items()} == {
        i: _report_view(r)[1:] for i, r in reference.items()
    }
    _assert_venue_matches_book(again)
