"""The paper venue's price from stored candles == the backtest's and the replay comparison's price.

Real bundled bars (with two removed, to make a gap) are stored under a symbol of their own; for
every decision the executor's ``CandlePriceFeed`` (live: one query per price; replay: prefetched
spans) must give the price ``common.fills`` gives the vectorized backtest, under both fill models,
and the paper venue must fill an order at it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Engine

from common.dataset import load_bundled_candles
from common.db.models import Candle
from common.db.session import make_engine, session_scope
from common.events import OrderSide
from common.fills import decision_prices, venue_price_at
from config import FillPrice
from executor.clock import CandlePriceFeed
from executor.exchanges.base import OrderRequest
from executor.exchanges.paper import PaperExchange

pytestmark = pytest.mark.integration
BARS = 160


@pytest.fixture
def stored(database_url: str) -> Iterator[tuple[Engine, str, pd.DataFrame]]:
    """``BARS`` real 1h candles with bars 50 and 51 removed (a gap), stored under a fresh symbol."""
    candles = load_bundled_candles().iloc[-BARS:]
    candles = candles.drop(candles.index[50:52])
    symbol = f"F{uuid.uuid4().hex[:8]}/USD:USD"
    engine = make_engine(database_url)
    with session_scope(engine) as s:
        s.add_all(
            Candle(
                symbol=symbol,
                timeframe="1h",
                open_time=t.to_pydatetime(),
                open=float(r.open),
                high=float(r.high),
                low=float(r.low),
                close=float(r.close),
                volume=float(r.volume),
                source="test",
            )
            for t, r in candles.iterrows()
        )
    yield engine, symbol, candles
    with session_scope(engine) as s:
        s.execute(delete(Candle).where(Candle.symbol == symbol))


@pytest.mark.parametrize("model", list(FillPrice))
@pytest.mark.parametrize("prefetch", [0, 40])
def test_venue_backtest_and_replay_agree_on_every_decision(
    stored: tuple[Engine, str, pd.DataFrame], model: FillPrice, prefetch: int
) -> None:
    engine, symbol, candles = stored
    opens, closes = candles["open"].to_numpy(), candles["close"].to_numpy()
    ticks = candles.index + pd.Timedelta(hours=1)  # each decision is sent at its bar's end
    backtest = decision_prices(opens, closes, model)
    replay = venue_price_at(candles.index.asi8, opens, closes, ticks.asi8, model)
    assert np.array_equal(backtest, replay)
    feed = CandlePriceFeed(engine, symbol, "1h", prefetch=prefetch, fill_price=model)
    order = list(range(len(ticks)))
    # in time order (a replay), then shuffled (misses on both sides of a cached span)
    for t in order + list(np.random.default_rng(4).permutation(order)):
        assert feed.price_at(ticks[t].to_pydatetime()) == backtest[t], (t, ticks[t])
    # the last bar has no next open: its close, under both models
    assert feed.price_at(ticks[-1].to_pydatetime() + timedelta(days=3)) == closes[-1]
    # before the first candle: nothing closed yet, the first open is the first price
    before = candles.index[0].to_pydatetime() - timedelta(hours=5)
    assert feed.price_at(before) == opens[0]
    assert CandlePriceFeed(engine, "NOPE/USD:USD", "1h", fill_price=model).price_at(before) is None


@pytest.mark.parametrize("model", list(FillPrice))
def test_the_paper_venue_fills_at_the_models_price(
    stored: tuple[Engine, str, pd.DataFrame], model: FillPrice
) -> None:
    engine, symbol, candles = stored
    feed = CandlePriceFeed(engine, symbol, "1h", fill_price=model)
    venue = PaperExchange(
        engine, f"test.fill{uuid.uuid4().hex[:6]}.", feed, symbol=symbol, taker_fee_rate=0.0, slippage_bps=0.0
    )
    want = decision_prices(candles["open"].to_numpy(), candles["close"].to_numpy(), model)
    for k, t in enumerate([10, 49, len(candles) - 1]):  # an ordinary bar, the bar before the gap, the last
        tick = (candles.index[t] + pd.Timedelta(hours=1)).to_pydatetime()
        order = venue.place_order(
            OrderRequest(f"c{k}", f"i{k}", f"t{k}", symbol, OrderSide.BUY, 0.001, tick.astimezone(UTC))
        )
        assert order.fills[0].price == want[t]
