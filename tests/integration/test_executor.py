"""Executor end to end on the real broker and database, with the paper venue.

Each test runs in its own topic prefix, which is also its row namespace (as in production replays).
The executor runs on a manual clock (tests/standin/kit.py): hourly order budgets, the day's P&L
and intent ages are those of the test's own time, whatever the wall clock shows, and the turn of
an hour or a day is a step a test takes on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from common.db.models import AuditLog, Candle, Fill, Intent, Order, PnlDaily
from common.db.session import make_engine, session_scope
from common.events import ExecutionReport, ExecutionStatus, OrderIntent, OrderSide
from common.ids import parse_tick_id
from common.order_ids import client_order_id
from config import RiskLimits, Settings
from executor import book
from executor.clock import CandlePriceFeed, Clock, FixedPriceFeed, ReplayClock
from executor.exchanges.base import OrderRequest
from executor.exchanges.paper import PaperExchange
from executor.runner import run
from executor.service import Executor
from tests.conftest import REPO
from tests.standin.kit import (
    SYMBOL,
    count_rows,
    drain_reports,
    fills_position,
    make_intent,
    manual_clock,
    publish,
)

pytestmark = pytest.mark.integration
LIMITS = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, daily_loss_cap_usd=500.0, max_orders_per_hour=20)


def _executor(
    settings: Settings, clock: Clock, price: float = 20_000.0, **risk: float
) -> tuple[Executor, FixedPriceFeed]:
    s = settings.model_copy(update={"risk": LIMITS.model_copy(update=risk)})
    engine = make_engine(s.database_url.get_secret_value())
    feed = FixedPriceFeed(price)
    ns = s.kafka.topic_prefix
    venue = PaperExchange(engine, ns, feed, symbol=SYMBOL, taker_fee_rate=0.0005, slippage_bps=1.0)
    return Executor(s, engine, venue, clock, ns), feed


def _handle(ex: Executor, intent: OrderIntent) -> ExecutionReport:
    return ex.handle(intent, lambda _report: None)


def _run(ex: Executor, n: int) -> None:
    run(ex.settings, ex, max_messages=n, idle_timeout=20)


def test_intents_fill_and_move_the_position(settings: Settings) -> None:
    clock = manual_clock()  # one hour, one day: one PnL row, one hourly budget
    ex, _ = _executor(settings, clock)
    intents = [make_intent(n, t, clock=clock) for n, t in ((0, 0.5), (1, 1.0), (2, -0.25))]
    publish(settings, intents)
    _run(ex, 3)
    reports = drain_reports(settings, 3)
    assert [r.status for r in reports] == [ExecutionStatus.FILLED] * 3
    assert [r.position_after for r in reports] == [0.5, 1.0, -0.25]
    # 0 -> 0.5 (1 order), 0.5 -> 1.0 (1), 1.0 -> -0.25 (1.25 BTC: 3 legs of <= 0.5)
    assert [len(r.orders) for r in reports] == [1, 1, 3]
    buy = reports[0].orders[0]
    assert buy.side is OrderSide.BUY and buy.price == pytest.approx(20_000 * 1.0001)
    assert buy.fee == pytest.approx(0.5 * 20_000 * 1.0001 * 0.0005)
    ns = ex.namespace
    assert fills_position(ex.engine, ns) == -0.25 == ex.exchange.fetch_position()
    assert count_rows(ex.engine, Order, ns) == 5 == count_rows(ex.engine, Fill, ns)
    with session_scope(ex.engine) as s:
        h = book.load_holding(s, ns, SYMBOL)
        pnl = s.scalars(select(PnlDaily).where(PnlDaily.namespace == ns)).one()
    assert h.quantity == -0.25
    fees = sum(o.fee for r in reports for o in r.orders)
    assert pnl.fees == pytest.approx(fees)
    # bought 1.0 at p*(1+1bp), sold 1.0 of it at p*(1-1bp): realized = -2bp of 20k notional
    assert h.realized == pytest.approx(1.0 * 20_000 * (0.9999 - 1.0001))
    assert pnl.equity == pytest.approx(h.realized - fees + pnl.funding + h.unrealized(20_000.0))


def test_duplicate_intent_refused(settings: Settings) -> None:
    clock = manual_clock()
    ex, _ = _executor(settings, clock)
    first = make_intent(0, 0.5, clock=clock)
    publish(settings, [first, first])
    _run(ex, 2)
    reports = drain_reports(settings, 2)
    assert [r.status for r in reports] == [ExecutionStatus.FILLED, ExecutionStatus.REFUSED]
    assert reports[1].reason.startswith("duplicate_intent") and reports[1].orders == ()
    assert count_rows(ex.engine, Intent, ex.namespace) == 1
    assert count_rows(ex.engine, Order, ex.namespace) == 1 and ex.exchange.fetch_position() == 0.5


def test_each_risk_refusal_is_reported_with_its_limit(settings: Settings) -> None:
    clock = manual_clock()
    ex, feed = _executor(settings, clock, max_orders_per_hour=3)
    ns = ex.namespace
    old = clock.now() - timedelta(hours=1)  # staleness is judged by the tick, not created_at
    sent = {
        0: make_intent(0, 0.5, base=old, created_at=clock.now()),
        1: make_intent(1, 0.5, symbol="ETH/USD:USD", clock=clock),
    }
    publish(settings, [sent[0], sent[1]])
    _run(ex, 2)
    with session_scope(ex.engine) as s:
        book.set_risk_state(s, ns, "test", "pause", "maintenance", trading_paused=True)
    sent[2] = make_intent(2, 0.5, clock=clock)
    publish(settings, [sent[2]])
    _run(ex, 1)
    with session_scope(ex.engine) as s:
        book.set_risk_state(s, ns, "test", "resume", "done", trading_paused=False)
    # three orders use the hourly budget; the fourth intent's move is refused
    sent.update({n: make_intent(n, t, clock=clock) for n, t in ((3, 1.0), (4, -0.5), (5, 0.0))})
    publish(settings, [sent[3], sent[4], sent[5]])
    _run(ex, 3)
    reports = drain_reports(settings, 6)
    by_tick = _by_n(reports, sent)
    assert by_tick[0].status is ExecutionStatus.REFUSED and by_tick[0].reason.startswith("max_intent_age_s")
    assert by_tick[1].status is ExecutionStatus.REJECTED and by_tick[1].reason.startswith("symbol")
    assert by_tick[2].status is ExecutionStatus.REFUSED and by_tick[2].reason.startswith("trading_paused")
    assert by_tick[3].status is ExecutionStatus.FILLED
    assert by_tick[4].status is ExecutionStatus.FILLED and "max_orders_per_hour" in by_tick[4].reason
    assert by_tick[5].status is ExecutionStatus.REFUSED and by_tick[5].reason.startswith(
        "max_orders_per_hour"
    )
    # daily loss cap: the long 0.5 BTC loses > 500 USD; a fresh hourly budget isolates the cap
    assert ex.exchange.fetch_position() == 0.5
    feed.set(20_000.0 - 1_300.0)
    sent.update({6: make_intent(6, 1.0, clock=clock), 7: make_intent(7, 0.0, clock=clock)})
    publish(settings, [sent[6], sent[7]])
    ex3 = Executor(ex.settings.model_copy(update={"risk": LIMITS}), ex.engine, ex.exchange, clock, ns)
    _run(ex3, 2)
    reports = drain_reports(settings, 8)
    last = _by_n(reports, sent)
    assert last[6].status is ExecutionStatus.REFUSED and last[6].reason.startswith("daily_loss_cap_usd")
    assert (
        last[7].status is ExecutionStatus.FILLED and "daily_loss_cap_usd" in last[7].reason
    )  # reducing is ok
    assert last[7].position_after == 0.0
    with session_scope(ex.engine) as s:
        assert book.load_risk_state(s, ns).halted_until is not None


def _by_n(reports: list[ExecutionReport], sent: dict[int, OrderIntent]) -> dict[int, ExecutionReport]:
    """Reports by the number ``n`` of the intent they answer (tick ids no longer encode it)."""
    ids = {i.intent_id: n for n, i in sent.items()}
    return {ids[r.intent_id]: r for r in reports if r.intent_id in ids}


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_LOG_JSON": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "executor", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kill_switch_flattens_and_halts_until_resume(settings: Settings) -> None:
    """The CLI (another process) stamps its FLAT intent with the wall clock; the kill switch
    flattens before any age check, so the executor's manual clock does not refuse it."""
    clock = manual_clock()
    ex, _ = _executor(settings, clock)
    publish(settings, [make_intent(0, 0.8, clock=clock)])
    _run(ex, 1)
    done = _cli(settings, "kill-switch", "--actor", "alice", "--reason", "drill")
    assert done.returncode == 0, done.stderr
    publish(settings, [make_intent(1, 1.0, clock=clock)])
    _run(ex, 2)  # the CLI's flatten intent, then the policy's intent
    reports = drain_reports(settings, 3)
    assert reports[1].status is ExecutionStatus.FILLED and reports[1].position_after == 0.0
    assert reports[1].reason.startswith("kill_switch") and len(reports[1].orders) == 2
    assert reports[2].status is ExecutionStatus.REFUSED and reports[2].reason.startswith("kill_switch")
    status = _cli(settings, "status")
    assert "ENGAGED" in status.stdout and "position       0 BTC" in status.stdout
    assert _cli(settings, "resume", "--actor", "bob", "--reason", "drill over").returncode == 0
    publish(settings, [make_intent(2, 0.25, clock=clock)])
    _run(ex, 1)
    assert drain_reports(settings, 4)[3].status is ExecutionStatus.FILLED
    with session_scope(ex.engine) as s:
        audit = s.scalars(
            select(AuditLog).where(AuditLog.namespace == ex.namespace).order_by(AuditLog.id)
        ).all()
    assert [(a.actor, a.action, a.payload["reason"]) for a in audit] == [
        ("alice", "kill_switch", "drill"),
        ("bob", "resume", "drill over"),
    ]
    assert _cli(settings, "kill-switch").returncode == 2  # bad args print usage
    assert _cli(settings, "reconcile").returncode == 0


def test_crash_after_venue_fill_is_adopted_not_replaced(settings: Settings) -> None:
    """The venue filled leg 0 but our transaction never committed: the re-delivery adopts it."""
    clock = manual_clock()
    ex, _ = _executor(settings, clock)
    intent = make_intent(0, 0.5, clock=clock)
    cid = client_order_id(ex.namespace, intent.intent_id, 0)
    _, tick_time = parse_tick_id(intent.tick_id)
    ex.exchange.place_order(
        OrderRequest(cid, intent.intent_id, intent.tick_id, SYMBOL, OrderSide.BUY, 0.5, tick_time)
    )
    publish(settings, [intent])
    _run(ex, 1)
    (report,) = drain_reports(settings, 1)
    assert report.status is ExecutionStatus.FILLED and [o.client_order_id for o in report.orders] == [cid]
    assert ex.exchange.fetch_position() == 0.5 == fills_position(ex.engine, ex.namespace)


def test_unexplained_venue_fill_refuses_trading(settings: Settings) -> None:
    clock = manual_clock()
    ex, _ = _executor(settings, clock)
    foreign = make_intent(99, 0.5, clock=clock)
    _, tick_time = parse_tick_id(foreign.tick_id)
    ex.exchange.place_order(
        OrderRequest("manual-1", foreign.intent_id, foreign.tick_id, SYMBOL, OrderSide.BUY, 0.1, tick_time)
    )
    publish(settings, [make_intent(0, 0.5, clock=clock)])
    _run(ex, 1)
    (report,) = drain_reports(settings, 1)
    assert report.status is ExecutionStatus.REFUSED and report.reason.startswith("reconcile")
    assert "manual-1" in report.reason and ex.exchange.fetch_position() == 0.1
    assert _cli(settings, "reconcile").returncode == 1


def test_candle_prices_and_hourly_funding(settings: Settings) -> None:
    """Fills at the next candle's open; funding accrues per full hour held (constant rate)."""
    symbol = f"T{settings.kafka.topic_prefix.split('.')[1]}/USD:USD"
    s = settings.model_copy(update={"symbol": symbol, "risk": LIMITS})
    engine = make_engine(s.database_url.get_secret_value())
    t0 = datetime(2026, 3, 2, 6, tzinfo=UTC)  # replayed time: any hour on the wall clock gives the same
    with session_scope(engine) as db:
        for i, px in enumerate([30_000.0, 30_100.0, 30_200.0, 30_300.0]):
            db.add(
                Candle(
                    symbol=symbol,
                    timeframe="1m",
                    open_time=t0 + timedelta(hours=i),
                    open=px,
                    high=px + 5,
                    low=px - 5,
                    close=px + 1,
                    volume=1.0,
                    source="test",
                )
            )
    venue = PaperExchange(
        engine,
        s.kafka.topic_prefix,
        CandlePriceFeed(engine, symbol, "1m"),
        symbol=symbol,
        taker_fee_rate=0.0005,
        slippage_bps=0.0,
        funding_rate_hourly=0.0001,
    )
    # a replay: the clock follows the intents' times
    ex = Executor(s, engine, venue, ReplayClock(t0 - timedelta(hours=1)), s.kafka.topic_prefix)
    tick0, tick1 = t0 - timedelta(minutes=1), t0 + timedelta(hours=3, minutes=31)
    first = make_intent(0, 0.5, symbol=symbol, base=tick0, created_at=tick0)  # just before candle 0
    second = make_intent(0, 0.0, symbol=symbol, base=tick1, created_at=tick1)  # after the last candle
    publish(s, [first, second])
    run(s, ex, max_messages=2, idle_timeout=20)
    reports = drain_reports(s, 2)
    assert reports[0].orders[0].price == 30_000.0  # open of the first candle at/after the tick
    assert reports[1].orders[0].price == 30_301.0  # no later candle: last close
    funding = venue.fetch_funding(None, t0 + timedelta(hours=5))
    # filled at t0-1min (the tick time), closed at t0+3h31: held 0.5 BTC at t0, t0+1h, t0+2h, t0+3h
    held = [f for f in funding if f.position_quantity]
    assert [f.funding_time for f in held] == [t0 + timedelta(hours=h) for h in (0, 1, 2, 3)]
    for f, px in zip(held, [30_000.0, 30_100.0, 30_200.0, 30_300.0], strict=True):
        assert f.amount == pytest.approx(-0.5 * px * 0.0001)
    with session_scope(engine) as db:
        booked = db.scalars(select(PnlDaily).where(PnlDaily.namespace == ex.namespace)).all()
    assert sum(p.funding for p in booked) == pytest.approx(sum(f.amount for f in held))


def test_hourly_order_budget_is_freed_an_hour_after_the_orders(settings: Settings) -> None:
    """The budget is a rolling hour on the executor's clock: an order counts until exactly one hour
    after it was sent. Stepping the manual clock to a millisecond before and after shows both sides
    (on the wall clock this needed an hour of waiting, or luck with the hour's turn)."""
    clock = manual_clock()
    t = clock.now()
    ex, _ = _executor(settings, clock, max_orders_per_hour=2)

    def at(offset: timedelta, target: float) -> ExecutionReport:
        clock.set(t + offset)
        return _handle(ex, make_intent(0, target, clock=clock))

    assert at(timedelta(0), 0.5).status is ExecutionStatus.FILLED  # order 1 at t
    assert at(timedelta(minutes=30), 1.0).status is ExecutionStatus.FILLED  # order 2 at t+30m
    full = at(timedelta(minutes=30, seconds=1), 0.5)
    assert full.status is ExecutionStatus.REFUSED and full.reason.startswith("max_orders_per_hour: 2 orders")
    before = at(timedelta(hours=1, milliseconds=-1), 0.5)  # order 1 is still inside the hour
    assert before.status is ExecutionStatus.REFUSED and before.reason.startswith("max_orders_per_hour")
    freed = at(timedelta(hours=1, milliseconds=1), 0.5)  # order 1 left the hour: one order free
    assert freed.status is ExecutionStatus.FILLED and freed.position_after == 0.5
    again = at(timedelta(hours=1, seconds=1), 0.0)  # orders at t+30m and t+1h: full again
    assert again.status is ExecutionStatus.REFUSED and again.reason.startswith("max_orders_per_hour")
    later = at(timedelta(hours=1, minutes=30, milliseconds=1), 0.0)  # t+30m's order left the hour
    assert later.status is ExecutionStatus.FILLED and later.position_after == 0.0
    assert ex.exchange.fetch_position() == 0.0 and count_rows(ex.engine, Order, ex.namespace) == 4


def test_daily_loss_halt_lasts_until_utc_midnight_and_not_longer(settings: Settings) -> None:
    """A loss past the cap halts new risk until the next UTC midnight of the executor's clock: still
    halted a millisecond before it even after the loss is gone, trading again at midnight (on the
    wall clock this test would have had to run across a real midnight)."""
    clock = manual_clock(datetime(2026, 3, 2, 22, 0, tzinfo=UTC))
    t = clock.now()
    ex, feed = _executor(settings, clock)  # daily loss cap 500 USD
    midnight = datetime(2026, 3, 3, tzinfo=UTC)

    def at(when: datetime, target: float) -> ExecutionReport:
        clock.set(when)
        return _handle(ex, make_intent(0, target, clock=clock))

    assert at(t, 0.5).status is ExecutionStatus.FILLED  # long 0.5 BTC at ~20,002
    feed.set(20_000.0 - 1_300.0)  # -650 USD unrealized: past the cap
    capped = at(t + timedelta(minutes=30), 1.0)
    assert capped.status is ExecutionStatus.REFUSED and capped.reason.startswith("daily_loss_cap_usd")
    assert f"until {midnight.isoformat()}" in capped.reason
    with session_scope(ex.engine) as s:
        assert book.load_risk_state(s, ex.namespace).halted_until == midnight
    feed.set(20_000.0)  # the loss is gone: only the halt itself still refuses
    still = at(midnight - timedelta(milliseconds=1), 1.0)
    assert still.status is ExecutionStatus.REFUSED and still.reason.startswith("daily_loss_cap_usd")
    assert still.position_after == 0.5
    lifted = at(midnight, 1.0)
    assert lifted.status is ExecutionStatus.FILLED and lifted.position_after == 1.0
    assert "daily_loss_cap_usd" not in lifted.reason
