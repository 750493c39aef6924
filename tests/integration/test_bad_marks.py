"""Bad marks and prices (hole 6 of issue 18), on the paper venue and through CCXT to the stand-in.

A missing, NaN, non-positive or stale mark must refuse new risk, never reach a venue as a fill
price, and never make the day's P&L look better than it is (the daily loss cap must still bite).
"""

from __future__ import annotations

import base64
import math
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.db.models import Fill, Order
from common.db.session import make_engine
from common.events import ExecutionReport, ExecutionStatus, OrderIntent, OrderSide
from common.ids import parse_tick_id
from config import RiskLimits, Settings
from executor.clock import FixedPriceFeed, SystemClock
from executor.exchanges.base import NoPrice, OrderRequest
from executor.exchanges.kraken import KrakenFutures
from executor.exchanges.paper import venue_namespace
from executor.service import Executor
from tests.standin.kit import SYMBOL, count_rows, fills_position, kraken_settings, make_intent, paper_executor
from tests.standin.kraken_futures import KrakenFuturesStandIn

pytestmark = pytest.mark.integration
LIMITS = RiskLimits(
    max_position_btc=1.0, max_order_btc=1.0, daily_loss_cap_usd=500.0, max_orders_per_hour=100
)
API_KEY = secrets.token_hex(16)
API_SECRET = base64.b64encode(os.urandom(64)).decode()


def _handle(ex: Executor, intent: OrderIntent) -> ExecutionReport:
    return ex.handle(intent, lambda _report: None)


# ----------------------------------------------------------------------------- paper venue


def _paper(settings: Settings, feed: FixedPriceFeed) -> Executor:
    return paper_executor(settings, LIMITS, feed)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -20_000.0, 0.0, None])
def test_paper_venue_never_fills_at_a_bad_price(settings: Settings, bad: float | None) -> None:
    ex = _paper(settings, FixedPriceFeed(bad))
    intent = make_intent(0, 0.5)
    req = OrderRequest(
        "cid-bad",
        intent.intent_id,
        intent.tick_id,
        SYMBOL,
        OrderSide.BUY,
        0.5,
        parse_tick_id(intent.tick_id)[1],
    )
    with pytest.raises(NoPrice):
        ex.exchange.place_order(req)
    venue = venue_namespace(ex.namespace)
    assert count_rows(ex.engine, Order, venue) == 0 == count_rows(ex.engine, Fill, venue)
    report = _handle(ex, intent)  # through the executor: refused, nothing booked anywhere, no crash
    assert report.status is ExecutionStatus.REFUSED and report.reason.startswith("bad_mark"), report.reason
    assert count_rows(ex.engine, Order, venue) == 0 == count_rows(ex.engine, Order, ex.namespace)
    assert ex.exchange.fetch_position() == 0.0 == fills_position(ex.engine, ex.namespace)


def test_paper_nan_mark_refuses_new_risk_and_reduction_needs_a_price(settings: Settings) -> None:
    feed = FixedPriceFeed(20_000.0)
    ex = _paper(settings, feed)
    assert _handle(ex, make_intent(0, 0.5)).status is ExecutionStatus.FILLED
    feed.set(math.nan)
    more = _handle(ex, make_intent(1, 1.0))
    assert more.status is ExecutionStatus.REFUSED and more.reason.startswith("bad_mark")
    less = _handle(ex, make_intent(2, 0.25))  # reducing is allowed, but the venue has no price to fill at
    assert less.status is ExecutionStatus.REFUSED and "no price" not in less.reason.split(";")[0]
    assert "refused by venue" in less.reason and "not finite" in less.reason
    assert ex.exchange.fetch_position() == 0.5 == fills_position(ex.engine, ex.namespace)
    feed.set(20_100.0)  # a valid price again: the reduction goes through
    again = _handle(ex, make_intent(3, 0.25))
    assert again.status is ExecutionStatus.FILLED and again.position_after == 0.25
    assert ex.exchange.fetch_position() == 0.25 == fills_position(ex.engine, ex.namespace)


# ----------------------------------------------------------------------------- Kraken via CCXT


@pytest.fixture
def kraken(settings: Settings) -> Iterator[tuple[Executor, KrakenFuturesStandIn]]:
    with KrakenFuturesStandIn(API_KEY, delay_s=1.5) as venue:
        s = kraken_settings(settings, venue.base_url, API_KEY, API_SECRET, LIMITS)
        adapter = KrakenFutures.from_settings(
            s,
            client_options={"timeout": 700, "enableRateLimit": False},
            attempts=3,
            backoff_s=0.05,
            max_backoff_s=0.1,
        )
        engine = make_engine(s.database_url.get_secret_value())
        yield Executor(s, engine, adapter, SystemClock(), f"{s.kafka.topic_prefix}kraken"), venue


def _stale_time() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


BAD_MARKS: dict[str, dict[str, Any]] = {
    "negative": {"markPrice": -5.0},
    "nan": {"markPrice": math.nan},
    "missing": {"markPrice": None},
    "stale": {"markPrice": 20_000.0, "lastTime": None},  # lastTime filled in per test (an hour ago)
}


@pytest.mark.parametrize("kind", sorted(BAD_MARKS))
def test_kraken_bad_mark_cannot_add_risk_past_the_daily_cap(
    kraken: tuple[Executor, KrakenFuturesStandIn], kind: str
) -> None:
    """Short 0.5 BTC at 20,000; the market rises to 22,000 (-1,000 USD, past the 500 cap). A bad
    mark used to hide that loss (a negative one even showed a profit) and let the short grow."""
    ex, venue = kraken
    assert _handle(ex, make_intent(0, -0.5)).status is ExecutionStatus.FILLED
    venue.state.price = 22_000.0
    override = dict(BAD_MARKS[kind])
    if "lastTime" in override:
        override["lastTime"] = _stale_time()
    venue.state.ticker_override = override
    more = _handle(ex, make_intent(1, -1.0))
    assert more.status is ExecutionStatus.REFUSED and more.reason.startswith("bad_mark"), more.reason
    assert venue.state.sendorder_executions == 1 and venue.state.position == -0.5
    # a reduction still goes out (a market order carries no price of ours) and is booked
    less = _handle(ex, make_intent(2, -0.25))
    assert less.status is ExecutionStatus.FILLED and "bad_mark" in less.reason
    assert venue.state.position == -0.25 == fills_position(ex.engine, ex.namespace) == less.position_after


def test_kraken_valid_mark_shows_the_loss_and_the_cap_bites(
    kraken: tuple[Executor, KrakenFuturesStandIn],
) -> None:
    """The control case: with an honest mark the same situation is caught by the daily loss cap."""
    ex, venue = kraken
    assert _handle(ex, make_intent(0, -0.5)).status is ExecutionStatus.FILLED
    venue.state.price = 22_000.0
    more = _handle(ex, make_intent(1, -1.0))
    assert more.status is ExecutionStatus.REFUSED and more.reason.startswith("daily_loss_cap_usd"), (
        more.reason
    )
    assert venue.state.sendorder_executions == 1
