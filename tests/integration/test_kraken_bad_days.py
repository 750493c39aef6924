"""Kraken Futures on a bad day: the real executor, real CCXT, real Postgres, the HTTP stand-in.

Each test turns on one kind of bad day in the stand-in (tests/standin/kraken_futures.py) and
checks the executor's promises (docs/decisions/0007-executor-exactly-once.md):

* nothing lost: every venue fill ends up in the book, and the book's position is the venue's;
* nothing placed twice: every client order id executed at most once on the venue;
* position == Σ fills on both sides (venue history, book fills);
* trading goes on after fills the venue reports late or in parts (reconciliation repairs them:
  counter ``btcmeta_executor_reconcile_repaired_fills_total``, log ``reconcile_repaired``);
* a difference the venue's fills cannot explain halts trading until ``executor adopt``.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from structlog.testing import capture_logs
from typer.testing import CliRunner

from common.db.models import AuditLog, Fill, Intent, Order
from common.db.session import make_engine
from common.events import ExecutionReport, ExecutionStatus, OrderIntent
from config import RiskLimits, Settings
from executor import book
from executor.clock import SystemClock
from executor.exchanges.kraken import KrakenFutures
from executor.service import Executor
from tests.standin.kit import count_rows, fills_position, kraken_settings, make_intent
from tests.standin.kraken_futures import KrakenFuturesStandIn

pytestmark = pytest.mark.integration
API_KEY = secrets.token_hex(16)
API_SECRET = base64.b64encode(os.urandom(64)).decode()
FAST = {"attempts": 4, "backoff_s": 0.05, "max_backoff_s": 0.2}
#: Far enough that a delayed fill waits for the test's ``release_fills()``: no timing involved.
LATER = 10_000


@pytest.fixture
def venue() -> Iterator[KrakenFuturesStandIn]:
    with KrakenFuturesStandIn(API_KEY, delay_s=1.0) as v:
        yield v


def _settings(settings: Settings, venue: KrakenFuturesStandIn) -> Settings:
    risk = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, max_orders_per_hour=10_000)
    return kraken_settings(settings, venue.base_url, API_KEY, API_SECRET, risk)


def _executor(settings: Settings, venue: KrakenFuturesStandIn) -> Executor:
    s = _settings(settings, venue)
    engine = make_engine(s.database_url.get_secret_value())
    # client timeout 500 ms < the stand-in's 1 s "timeout" fault: CCXT really times out
    options = {"timeout": 500, "enableRateLimit": False}
    adapter = KrakenFutures.from_settings(s, client_options=options, **FAST)
    ex = Executor(s, engine, adapter, SystemClock(), f"{s.kafka.topic_prefix}kraken")
    ex.settle_wait_s = 0.05
    return ex


def _handle(ex: Executor, intent: OrderIntent) -> ExecutionReport:
    sent: list[ExecutionReport] = []
    report = ex.handle(intent, sent.append)
    assert sent == [report]
    return report


def _repaired() -> float:
    return REGISTRY.get_sample_value("btcmeta_executor_reconcile_repaired_fills_total") or 0.0


def _book_position(ex: Executor) -> float:
    with Session(ex.engine) as s:
        return book.load_holding(s, ex.namespace, ex.symbol).quantity


def _assert_nothing_lost_nothing_doubled(ex: Executor, venue: KrakenFuturesStandIn) -> None:
    snap = venue.snapshot()
    with ex.engine.connect() as conn:
        booked = set(conn.scalars(select(Fill.fill_id).where(Fill.namespace == ex.namespace)))
    venue_ids = {f["fill_id"] for f in venue.state.fills}
    assert venue_ids <= booked, f"venue fills missing from the book: {venue_ids - booked}"
    assert snap["pending_fills"] == 0 and snap["open_orders"] == 0
    assert max(snap["executions_by_cid"].values(), default=0) <= 1, snap["executions_by_cid"]
    assert snap["position"] == snap["fills_position"] == fills_position(ex.engine, ex.namespace)
    assert _book_position(ex) == pytest.approx(snap["position"], abs=1e-9)


def test_delayed_fill_is_repaired_and_trading_continues(
    settings: Settings, venue: KrakenFuturesStandIn
) -> None:
    """The order answer says 'placed' (nothing filled); the fill shows in the history later.
    Before the fix the next intent was refused for good ('fill(s) missing from the book')."""
    ex = _executor(settings, venue)
    venue.set_bad_day(fill_delay_requests=LATER)
    first = make_intent(0, 0.25)
    r0 = _handle(ex, first)
    assert r0.status is ExecutionStatus.PARTIALLY_FILLED and r0.position_after == 0.0
    assert venue.release_fills() == 1 and venue.state.position == 0.25

    before = _repaired()
    with capture_logs() as logs:
        r1 = _handle(ex, make_intent(1, 0.5))
    assert r1.status is not ExecutionStatus.REFUSED, r1.reason
    assert _repaired() - before == 1
    repaired = [e for e in logs if e["event"] == "reconcile_repaired"]
    assert repaired and repaired[0]["intent_id"] == first.intent_id and repaired[0]["quantity"] == 0.25
    assert r1.position_after == 0.25  # the repaired fill; the new 0.25 is working (delayed again)
    with ex.engine.connect() as conn:
        status, reason = conn.execute(
            select(Intent.status, Intent.reason).where(
                Intent.namespace == ex.namespace, Intent.intent_id == first.intent_id
            )
        ).one()
    assert status == ExecutionStatus.FILLED.value and "late fill" in (reason or "")

    venue.release_fills()
    r2 = _handle(ex, make_intent(2, 0.5))  # same target: nothing to place, the repair squares the book
    assert r2.status is ExecutionStatus.NOOP and r2.position_after == 0.5
    assert venue.state.sendorder_executions == 2 and venue.state.duplicate_sends == 0
    _assert_nothing_lost_nothing_doubled(ex, venue)


def test_partial_fills_rest_later_or_cancelled(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """Half of each order fills at once; the rest comes later (repaired) or, when nothing more
    comes, is cancelled before the next decision, so the next order is never doubled."""
    ex = _executor(settings, venue)
    venue.set_bad_day(partial_fraction=0.5, fill_delay_requests=LATER)
    r0 = _handle(ex, make_intent(0, 0.25))
    assert r0.status is ExecutionStatus.PARTIALLY_FILLED and r0.position_after == 0.125
    venue.release_fills()  # the rest of the first order arrives late

    venue.set_bad_day(fill_delay_requests=0)  # from now on the rest never comes: it works until cancelled
    before = _repaired()
    r1 = _handle(ex, make_intent(1, 0.5))
    assert r1.status is ExecutionStatus.PARTIALLY_FILLED, r1.reason
    assert _repaired() - before == 1
    assert r1.position_after == 0.25 + 0.125  # repaired 0.25, then half of the new 0.25
    assert venue.snapshot()["open_orders"] == 1

    venue.set_bad_day(partial_fraction=1.0)  # a good day again
    with capture_logs() as logs:
        r2 = _handle(ex, make_intent(2, 0.5))
    assert [e["event"] for e in logs].count("reconcile_cancel_remainder") == 1
    assert r2.status is ExecutionStatus.FILLED and r2.position_after == 0.5  # 0.125 more, not 0.25
    with ex.engine.connect() as conn:
        statuses = sorted(conn.scalars(select(Order.status).where(Order.namespace == ex.namespace)))
    assert statuses == ["canceled", "closed", "closed"]
    assert venue.state.sendorder_executions == 3 and venue.state.duplicate_sends == 0
    _assert_nothing_lost_nothing_doubled(ex, venue)


FAULTS = ["lost", "timeout", "500_after", "500", "unavailable", "429", "rate_limit", "lost_before"]


@pytest.mark.parametrize("fault", FAULTS)
def test_unknown_outcomes_on_sendorder_never_place_twice(
    settings: Settings, venue: KrakenFuturesStandIn, fault: str
) -> None:
    """A fault on sendorder with fills delayed too: whether the venue acted or not, the client
    resolves it by lookup (never a blind re-send), books the order, and the late fill is repaired."""
    ex = _executor(settings, venue)
    venue.set_bad_day(fill_delay_requests=LATER)
    venue.fail_next("sendorder", fault)
    r0 = _handle(ex, make_intent(0, 0.25))
    assert r0.status is ExecutionStatus.PARTIALLY_FILLED and len(r0.orders) == 1, r0.reason
    assert venue.state.sendorder_executions == 1 and venue.state.duplicate_sends == 0
    assert venue.snapshot()["faults_served"] == {fault: 1}
    venue.release_fills()
    before = _repaired()
    r1 = _handle(ex, make_intent(1, 0.25))
    assert r1.status is ExecutionStatus.NOOP and r1.position_after == 0.25, r1.reason
    assert _repaired() - before == 1
    _assert_nothing_lost_nothing_doubled(ex, venue)


def test_lost_answer_with_lagging_history_is_resolved(
    settings: Settings, venue: KrakenFuturesStandIn
) -> None:
    """The answer is lost, the order's status is already gone and its fill not yet in the history:
    the lookup sees nothing, the re-send is refused as a duplicate id (the venue's second line of
    defence), the order is booked as 'unknown', and its fill is repaired once the history shows it."""
    ex = _executor(settings, venue)
    venue.set_bad_day(history_lag_requests=12)
    venue.fail_next("sendorder", "lost")
    r0 = _handle(ex, make_intent(0, 0.25))
    assert r0.status is ExecutionStatus.PARTIALLY_FILLED, r0.reason
    assert venue.state.sendorder_executions == 1 and venue.state.position == 0.25
    venue.set_bad_day(history_lag_requests=0)
    before = _repaired()
    r1 = _handle(ex, make_intent(1, 0.5))  # settles: waits for the history, repairs, trades on
    assert r1.status is ExecutionStatus.FILLED and r1.position_after == 0.5, r1.reason
    assert _repaired() - before == 1
    _assert_nothing_lost_nothing_doubled(ex, venue)


def test_rate_limits_and_5xx_on_reads_are_retried(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """Reads are idempotent: retried through 429, apiLimitExceeded, 503, 500 and lost answers."""
    ex = _executor(settings, venue)
    venue.fail_next("openorders", "429", "rate_limit")
    venue.fail_next("openpositions", "unavailable", "lost")
    venue.fail_next("orders/status", "500")
    venue.fail_next("fills", "timeout")
    r0 = _handle(ex, make_intent(0, 0.25))
    assert r0.status is ExecutionStatus.FILLED and r0.position_after == 0.25, r0.reason
    assert venue.state.sendorder_executions == 1
    _assert_nothing_lost_nothing_doubled(ex, venue)


@pytest.mark.parametrize(
    ("bad_day", "adopted"), [({"fill_delay_requests": LATER}, 0.0), ({"partial_fraction": 0.5}, 0.125)]
)
def test_crash_with_a_working_order_is_cancelled_not_resent(
    settings: Settings, venue: KrakenFuturesStandIn, bad_day: dict[str, float], adopted: float
) -> None:
    """The executor dies after placing an order that is still working (nothing or half filled),
    before its commit. The re-delivered intent cancels the stale remainder, adopts what filled,
    and never sends the client order id again."""
    venue.set_bad_day(**bad_day)
    intent = make_intent(0, 0.25)

    def crash(_: ExecutionReport) -> None:
        raise RuntimeError("SIGKILL stand-in: dies before the commit")

    with pytest.raises(RuntimeError):
        _executor(settings, venue).handle(intent, crash)
    assert venue.snapshot()["open_orders"] == 1
    ex = _executor(settings, venue)  # the restarted process; Kafka re-delivers the same intent
    venue.set_bad_day(fill_delay_requests=0, partial_fraction=1.0)
    report = _handle(ex, intent)
    assert report.status is not ExecutionStatus.REFUSED, report.reason
    assert report.position_after == adopted and len(report.orders) == 1
    snap = venue.snapshot()
    assert snap["sendorder_executions"] == 1 and snap["duplicate_sends"] == 0 and snap["open_orders"] == 0
    _assert_nothing_lost_nothing_doubled(ex, venue)


def _adopt(settings: Settings, ex: Executor, venue: KrakenFuturesStandIn, *args: str) -> tuple[int, str]:
    from executor.cli import app

    env = {
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_EXECUTOR__NAMESPACE": ex.namespace,
        "BTCMETA_EXCHANGE__MODE": "kraken",
        "BTCMETA_EXCHANGE__API_KEY": API_KEY,
        "BTCMETA_EXCHANGE__API_SECRET": API_SECRET,
        "BTCMETA_EXCHANGE__BASE_URL": venue.base_url,
        "BTCMETA_LOG_JSON": "true",
    }
    done = CliRunner().invoke(app, ["adopt", *args], env=env)
    return done.exit_code, done.output


def test_unexplained_difference_halts_until_adopt(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """A trade by hand (foreign client id) and a working order we did not place: no fill of ours
    explains them, so every intent is refused until an operator adopts the venue's state."""
    ex = _executor(settings, venue)
    assert _handle(ex, make_intent(0, 0.25)).status is ExecutionStatus.FILLED
    venue.trade_by_hand("buy", 0.1, cli_ord_id="by-hand")
    venue.place_foreign_order("sell", 0.05, cli_ord_id="foreign-open")
    for n in (1, 2):  # halted, and it stays halted: no repair can explain this
        r = _handle(ex, make_intent(n, 0.5))
        assert r.status is ExecutionStatus.REFUSED and r.reason.startswith("reconcile"), r.reason
        assert "by-hand" in r.reason and "foreign-open" in r.reason
    assert venue.state.sendorder_executions == 1

    code, out = _adopt(settings, ex, venue, "--reason", "manual hedge by desk", "--actor", "alice")
    assert code == 1 and "foreign-open" in out  # a working order we did not place: refused
    code, out = _adopt(
        settings, ex, venue, "--reason", "manual hedge by desk", "--actor", "alice", "--cancel-foreign-orders"
    )
    assert code == 0, out
    with ex.engine.connect() as conn:
        audit = conn.execute(
            select(AuditLog.actor, AuditLog.payload).where(
                AuditLog.namespace == ex.namespace, AuditLog.action == "adopt"
            )
        ).all()
    assert len(audit) == 1 and audit[0][0] == "alice"
    assert audit[0][1]["reason"] == "manual hedge by desk" and audit[0][1]["venue_position"] == 0.35
    assert _book_position(ex) == pytest.approx(0.35)

    r3 = _handle(ex, make_intent(3, 0.5))
    assert r3.status is ExecutionStatus.FILLED and r3.position_after == 0.5, r3.reason
    assert venue.state.sendorder_executions == 2
    assert count_rows(ex.engine, Intent, ex.namespace) == 5  # 4 intents + the adoption's own row
    _assert_nothing_lost_nothing_doubled(ex, venue)


def test_startup_repairs_before_the_first_intent(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """A restarted executor books our late fills and cancels our stale remainders at start-up
    (``run`` calls ``startup_reconcile(repair=True)``); ``executor reconcile`` only reads."""
    from executor.runner import startup_reconcile

    ex = _executor(settings, venue)
    venue.set_bad_day(partial_fraction=0.5)  # half now, the rest works until cancelled
    assert _handle(ex, make_intent(0, 0.25)).position_after == 0.125
    venue.set_bad_day(partial_fraction=1.0, fill_delay_requests=LATER)
    _handle(ex, make_intent(1, -0.25))  # cancels the first remainder, sells 0.375: works, delayed
    venue.release_fills()
    restarted = _executor(settings, venue)
    looked = startup_reconcile(restarted)  # read-only: shows the repair, books nothing
    assert looked.ok and len(looked.repairs) == 1 and _book_position(restarted) == 0.125
    before = _repaired()
    rec = startup_reconcile(restarted, repair=True)
    assert rec.ok and _repaired() - before == 1
    assert _book_position(restarted) == -0.25
    assert startup_reconcile(restarted, repair=True).repairs == ()  # idempotent by fill id
    _assert_nothing_lost_nothing_doubled(restarted, venue)


def test_standin_runs_as_a_process_with_http_controls() -> None:
    """The chaos suite runs the venue in its own process and steers it over HTTP."""
    import json
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "BTCMETA_STANDIN_API_KEY": API_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standin.kraken_futures", "--bad-day", '{"fill_delay_requests": 3}'],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = json.loads(proc.stdout.readline())["base_url"]

        def call(path: str, doc: dict[str, object] | None = None) -> dict[str, object]:
            data = None if doc is None else json.dumps(doc).encode()
            with urllib.request.urlopen(f"{base}/__standin/{path}", data=data, timeout=5) as r:
                return dict(json.loads(r.read()))

        bad_day = call("bad_day", {"partial_fraction": 0.5})["bad_day"]
        assert isinstance(bad_day, dict)
        assert (bad_day["fill_delay_requests"], bad_day["partial_fraction"]) == (3, 0.5)
        assert call("fail_next", {"endpoint": "sendorder", "kinds": ["lost"]}) == {"ok": True}
        call("trade_by_hand", {"side": "sell", "size": 0.2})
        snap = call("snapshot")
        assert snap["position"] == -0.2 and snap["fills_position"] == -0.2 and snap["fills"] == 1
        assert API_KEY not in json.dumps(snap)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_soak_of_mixed_bad_days(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """120 intents against a venue that delays, splits and lags every fill and faults 8 % of all
    private calls at random (every kind). A handler that gives up is treated as a crash: a fresh
    executor gets the same intent again, as Kafka would re-deliver it. At the end: nothing lost,
    nothing placed twice, no halt, every intent handled once, position == Σ fills everywhere."""
    import random

    n_intents = 120
    rng = random.Random(18)
    venue.set_bad_day(
        fill_delay_requests=3,
        partial_fraction=0.5,
        history_lag_requests=2,
        fault_rate=0.08,
        fault_kinds=(
            "429",
            "rate_limit",
            "unavailable",
            "500",
            "500_after",
            "lost",
            "lost_before",
            "timeout",
        ),
        seed=18,
    )
    venue.delay_s = 0.7
    ex, crashes, before = _executor(settings, venue), 0, _repaired()
    statuses: list[ExecutionStatus] = []
    for n in range(n_intents + 1):
        if n == n_intents:  # a good day again: owed fills arrive, one more intent squares the book
            venue.set_bad_day(
                fault_rate=0.0, fill_delay_requests=0, partial_fraction=1.0, history_lag_requests=0
            )
            venue.release_fills()
        intent = make_intent(n, rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5]) if n < n_intents else 0.0)
        for _ in range(6):
            try:
                statuses.append(_handle(ex, intent).status)
                break
            except Exception:  # any failure is a crash: the intent comes again
                crashes += 1
                ex = _executor(settings, venue)
        else:
            pytest.fail(f"intent {n} never got through")
    snap = venue.snapshot()
    counts = {s.value: statuses.count(s) for s in set(statuses)}
    print(
        f"soak: crashes={crashes} repaired={_repaired() - before} faults={snap['faults_served']} "
        f"orders={snap['sendorder_executions']} statuses={counts}"
    )
    assert ExecutionStatus.REFUSED not in statuses[-1:] and statuses[-1] is not ExecutionStatus.REJECTED
    with ex.engine.connect() as conn:
        halted = conn.scalar(
            select(func.count()).where(Intent.namespace == ex.namespace, Intent.reason.like("reconcile:%"))
        )
    assert halted == 0
    assert count_rows(ex.engine, Intent, ex.namespace) == n_intents + 1
    assert sum(snap["faults_served"].values()) > 0 and _repaired() - before > 0
    assert snap["position"] == 0.0
    _assert_nothing_lost_nothing_doubled(ex, venue)
