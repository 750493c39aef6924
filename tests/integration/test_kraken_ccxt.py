"""The CCXT path against a local stand-in of Kraken Futures (nothing talks to the internet).

Keys are random per test run; the stand-in checks the auth headers are present and never logs them.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator

import pytest

from common.db.models import Intent, Order
from common.db.session import make_engine
from common.events import ExecutionReport, ExecutionStatus, OrderSide
from common.ids import parse_tick_id
from common.order_ids import client_order_id
from config import RiskLimits, Settings
from executor.clock import SystemClock
from executor.exchanges.base import ExchangeError, OrderRefused, OrderRequest, TransientExchangeError
from executor.exchanges.kraken import KrakenFutures
from executor.service import Executor
from tests.standin.kit import SYMBOL, count_rows, fills_position, kraken_settings, make_intent
from tests.standin.kraken_futures import KrakenFuturesStandIn

pytestmark = pytest.mark.integration
API_KEY = secrets.token_hex(16)
API_SECRET = base64.b64encode(os.urandom(64)).decode()
FAST = {"attempts": 4, "backoff_s": 0.05, "max_backoff_s": 0.2}


@pytest.fixture
def venue() -> Iterator[KrakenFuturesStandIn]:
    with KrakenFuturesStandIn(API_KEY, delay_s=1.5) as v:
        yield v


def _kraken_settings(settings: Settings, venue: KrakenFuturesStandIn, key: str = API_KEY) -> Settings:
    risk = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, max_orders_per_hour=50)
    return kraken_settings(settings, venue.base_url, key, API_SECRET, risk)


def _adapter(s: Settings) -> KrakenFutures:
    return KrakenFutures.from_settings(s, client_options={"timeout": 700, "enableRateLimit": False}, **FAST)


def _executor(settings: Settings, venue: KrakenFuturesStandIn) -> Executor:
    s = _kraken_settings(settings, venue)
    engine = make_engine(s.database_url.get_secret_value())
    return Executor(s, engine, _adapter(s), SystemClock(), f"{s.kafka.topic_prefix}kraken")


def _handle(ex: Executor, intent) -> ExecutionReport:  # type: ignore[no-untyped-def]
    sent: list[ExecutionReport] = []
    return ex.handle(intent, sent.append)


def test_intents_trade_through_ccxt(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    ex = _executor(settings, venue)
    first, second = make_intent(0, 0.5), make_intent(1, -0.5)  # built once: an hour may turn meanwhile
    r1 = _handle(ex, first)
    r2 = _handle(ex, second)
    assert (r1.status, r2.status) == (ExecutionStatus.FILLED, ExecutionStatus.FILLED)
    assert len(r2.orders) == 2 and all(o.side is OrderSide.SELL for o in r2.orders)
    assert r1.orders[0].price == 20_000.0 and r1.orders[0].fee == pytest.approx(0.5 * 20_000 * 0.0005)
    assert venue.state.position == -0.5 == r2.position_after == fills_position(ex.engine, ex.namespace)
    assert venue.state.sendorder_executions == 3 and venue.state.auth_failures == 0
    cids = {f["cliOrdId"] for f in venue.state.fills}
    assert cids == {
        client_order_id(ex.namespace, i.intent_id, n) for i, n in [(first, 0), (second, 0), (second, 1)]
    }
    assert count_rows(ex.engine, Order, ex.namespace) == 3


def test_rate_limits_are_retried(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    ex = _executor(settings, venue)
    venue.fail_next("sendorder", "429", "rate_limit")
    venue.fail_next("openpositions", "429")
    report = _handle(ex, make_intent(0, 0.25))
    assert report.status is ExecutionStatus.FILLED
    assert venue.state.sendorder_executions == 1 and venue.state.calls.count("sendorder") == 3


def test_timeout_after_execution_is_not_placed_twice(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """sendorder executes but answers after the client's timeout; the retry finds it by cliOrdId
    in the fills (its status is already gone, as on Kraken) and does not send it again."""
    ex = _executor(settings, venue)
    venue.fail_next("sendorder", "timeout")
    report = _handle(ex, make_intent(0, 0.25))
    assert report.status is ExecutionStatus.FILLED and len(report.orders) == 1
    assert venue.state.sendorder_executions == 1 and venue.state.position == 0.25
    assert fills_position(ex.engine, ex.namespace) == 0.25


def test_insufficient_funds_is_not_retried(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    ex = _executor(settings, venue)
    venue.fail_next("sendorder", "insufficient_funds")
    report = _handle(ex, make_intent(0, 0.25))
    assert report.status is ExecutionStatus.REJECTED and "InsufficientFunds" in report.reason
    assert venue.state.calls.count("sendorder") == 1 and venue.state.position == 0.0


def test_unknown_orders_and_exhausted_retries(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    adapter = _adapter(_kraken_settings(settings, venue))
    assert adapter.fetch_order("00000000-0000-0000-0000-000000000000") is None
    adapter.cancel_order("00000000-0000-0000-0000-000000000000")  # unknown: no error
    assert adapter.fetch_open_orders() == [] and adapter.mark_price(SystemClock().now()) == 20_000.0
    venue.fail_next("openpositions", *["unavailable"] * 4)
    with pytest.raises(TransientExchangeError, match="gave up after 4 attempts"):
        adapter.fetch_position()
    bad = _adapter(_kraken_settings(settings, venue, key="wrong-key"))
    with pytest.raises(ExchangeError, match="AuthenticationError"):
        bad.fetch_position()
    with pytest.raises(OrderRefused):
        adapter.place_order(
            OrderRequest(
                "x", "i", "t", SYMBOL, OrderSide.BUY, 0.00001, parse_tick_id(make_intent(0, 0).tick_id)[1]
            )
        )


def test_unexplained_venue_position_refuses(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    ex = _executor(settings, venue)
    assert _handle(ex, make_intent(0, 0.25)).status is ExecutionStatus.FILLED
    venue.state.position += 0.1  # someone traded by hand, no fill we could attribute
    venue.state.fills.append(
        {**venue.state.fills[-1], "fill_id": "manual", "cliOrdId": "by-hand", "size": 0.1}
    )
    report = _handle(ex, make_intent(1, 0.5))
    assert report.status is ExecutionStatus.REFUSED and report.reason.startswith("reconcile")
    assert "by-hand" in report.reason and venue.state.sendorder_executions == 1


def test_venue_down_stops_without_booking(settings: Settings, venue: KrakenFuturesStandIn) -> None:
    """Transport errors that outlast the retries raise (the loop then stops, uncommitted)."""
    ex = _executor(settings, venue)
    venue.fail_next("openpositions", *["unavailable"] * 4)
    intent = make_intent(0, 0.25)
    with pytest.raises(TransientExchangeError):
        _handle(ex, intent)
    assert count_rows(ex.engine, Intent, ex.namespace) == 0 and venue.state.sendorder_executions == 0
    assert _handle(ex, intent).status is ExecutionStatus.FILLED  # the re-delivery, venue back up
