"""A fitted linear combiner shipped live (ADR 0025): export, register, select, hot reload, decide.

The real meta consumer (in-process, real broker and database) is fed real data tick by tick: the
price strategies' real answers, BarClosed windows of 721 real closes, and the real funding series
stored in the exogenous table (point in time on ``published_at``). A ``ridge`` (and a
``metalabel``, an ``imitation``) combiner fitted on the bars before the replayed window (out of sample) is
registered unselected, selected after the first tick and picked up at the next; every intent must
equal the research candidate's vectorized exposure (``candidates.exposure`` on the same training
range) at every tick.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.combiner import LINEAR_CLOSES
from common.db.models import Model
from common.db.session import make_engine, session_scope
from config import DEFAULT_FUNDING_RATE_HOURLY, Settings, load_settings
from meta_consumer import store
from meta_consumer.decide import BAR_CLOSES, MARK_CLOSES
from meta_consumer.service import FUNDING_AGE
from tests.integration.combiner_live import (
    PRICE,
    assert_live_is_vectorized,
    decide_selected_live,
    load_bundled_candles_slice,
    store_funding,
)
from tests.integration.test_meta_consumer import own_db
from training.ledger import CostModel
from training.research.candidates import build_context, exposure
from training.research.export import FitData, export, parse_key, train_bars
from training.research.funding import bar_funding, load_funding
from training.research.protocol import _baseline_exposures, funding_known
from training.signals import compute_signals, training_exogenous

pytestmark = pytest.mark.integration
__all__ = ["own_db"]  # the fixture, re-used from the meta consumer's tests

KEY = 'ridge:{"lam":0.01}'
TICKS_N = 200


def test_funding_read_live_is_the_research_rate_last_published(own_db: Settings) -> None:
    """``store.funding_last`` at a tick == ``protocol.funding_known`` at that bar, over 2016..2023.

    Both real series are stored as the exogenous loader stores them; the research splices BitMEX
    until Binance's series starts and takes the last rate published by each close. Ticks every
    7 h (every phase of the 8 h settlements), both sides of the splice, and the first publication.
    """
    import time

    exo = Path(load_settings().exogenous.data_dir)
    engine = make_engine(own_db.database_url.get_secret_value())
    store_funding(engine)
    opens = pd.date_range("2016-05-10", "2023-12-31", freq="7h", tz="UTC")
    want = funding_known(pd.DatetimeIndex(opens), load_funding(exo))
    t0 = time.perf_counter()
    got = [store.funding_last(engine, (o + pd.Timedelta(hours=1)).to_pydatetime()) for o in opens]
    per_query_ms = (time.perf_counter() - t0) / len(opens) * 1e3
    raw = engine.raw_connection()  # as the service reads it: a cursor in its decision transaction
    try:
        cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
        t0 = time.perf_counter()
        on_cursor = [
            store.funding_last(cur, (o + pd.Timedelta(hours=1)).to_pydatetime()) for o in opens[-2000:]
        ]
        cursor_ms = (time.perf_counter() - t0) / 2000 * 1e3
        raw.rollback()
    finally:
        raw.close()
    assert on_cursor == got[-2000:]
    print(f"funding_last on a cursor: {cursor_ms:.3f} ms each")
    got_arr = np.array([np.nan if g is None else g for g in got])
    assert np.array_equal(got_arr, want, equal_nan=True)
    assert np.isnan(want[0]) and np.isfinite(want[-1])  # before the first publication: none
    cut = opens.searchsorted(pd.Timestamp("2020-01-01", tz="UTC"))
    assert (
        np.count_nonzero(np.isfinite(want[:cut])) > 4000 and np.count_nonzero(np.isfinite(want[cut:])) > 4000
    )
    engine.dispose()
    print(f"funding_last: {len(opens)} reads, {per_query_ms:.2f} ms each (engine, incl. checkout)")


@pytest.mark.parametrize(
    "key", [KEY, 'metalabel:{"horizon":24,"lam":1.0,"threshold":0.5}', 'imitation:{"lam":0.001}']
)
def test_selected_linear_combiner_decides_live_as_its_vectorized_backtest(own_db: Settings, key: str) -> None:
    settings = own_db
    exo = Path(load_settings().exogenous.data_dir)
    candles = load_bundled_candles_slice()
    sig_all = compute_signals(candles, exogenous=training_exogenous())
    sig = sig_all.restricted(PRICE)
    events = load_funding(exo)
    fund = funding_known(sig.index, events)
    n = len(sig)
    bars = list(range(n - 1 - TICKS_N, n - 1))  # the last bar is never held: left out
    until = pd.Timestamp(sig.index[bars[0] - 1])  # fitted on the bars before the replay only
    fit = FitData(candles, sig_all, events, until)

    engine = make_engine(settings.database_url.get_secret_value())
    frames = store_funding(engine)  # the real funding series, as the exogenous loader stores them
    # the live read is point in time and equals the research's "last published by the close"
    ticks = [pd.Timestamp(sig.index[t]).to_pydatetime() + timedelta(hours=1) for t in bars]
    live_fund = [store.funding_last(engine, at) for at in ticks]
    assert live_fund == [float(fund[t]) for t in bars] and len(set(live_fund)) > 5
    first_pub = pd.Timestamp(frames["funding_bitmex_8h"]["published_at"].min()).to_pydatetime()
    assert store.funding_last(engine, first_pub - timedelta(seconds=1)) is None
    assert store.funding_last(engine, first_pub) is not None
    # how old the rate read is (the service's gauge / stale warning; not a decision input)
    assert store.funding_published_at(engine, first_pub - timedelta(seconds=1)) is None
    ages = [(at - store.funding_published_at(engine, at)).total_seconds() / 3600 for at in ticks[:50]]
    assert min(ages) >= 0 and max(ages) <= 8  # 8 h settlements, published at settlement
    last_pub = pd.Timestamp(frames["funding_binance_8h"]["published_at"].max()).to_pydatetime()
    assert store.funding_published_at(engine, last_pub + timedelta(days=30)) == last_pub  # the file ends

    config = parse_key(key)
    exported = export(key, PRICE, engine=engine, data=fit)
    assert exported.registered and export(key, PRICE, engine=engine, data=fit).registered is False
    with session_scope(engine) as s:  # registered, not selected: selection is the operator's act
        row = s.get(Model, exported.model_id)
        assert row is not None and not row.selected and row.algo == f"combiner:{config.family}"
    # the research context as the research run builds it (imitation's oracle reads the costs)
    per_bar = bar_funding(sig.index, events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    majority = _baseline_exposures(sig)["majority_vote"]
    ctx = build_context(
        candles.loc[sig.index], sig, majority, fund, per_bar, CostModel.configured().cost_rate
    )
    vectorized = exposure(config, ctx, train_bars(sig, until))  # the research candidate's path

    d0, ids, rows = decide_selected_live(
        settings, engine, exported.model_id, candles, sig, bars, BAR_CLOSES, timeout=180
    )
    engine.dispose()
    assert 0 <= FUNDING_AGE._value.get() <= 8  # the last tick's rate: fresh (ticks in 2022)
    assert d0.model_id == "fallback:majority_vote"
    assert len(d0.observation["state"]["mark"]["closes"]) == MARK_CLOSES  # no combiner: 256 carried
    assert "funding_last" not in d0.observation
    assert len(rows) == len(bars) and [r.tick_id for r in rows] == ids
    assert {r.model_id for r in rows[1:]} == {exported.model_id}
    assert not any(r.degraded for r in rows)
    assert all(len(r.observation["state"]["mark"]["closes"]) == LINEAR_CLOSES for r in rows[1:])
    assert [r.observation["funding_last"] for r in rows[1:]] == live_fund[1:]
    want = vectorized[bars[1:]]
    assert_live_is_vectorized(settings, exported.model_id, ids, rows, want)
    if config.family == "metalabel":  # the vote's levels, followed at some ticks and vetoed at others
        vote = ctx.majority[bars[1:]]
        assert (
            np.count_nonzero((want == 0) & (vote != 0)) > 0
            and np.count_nonzero((want == vote) & (vote != 0)) > 0
        )
    else:
        assert len(set(want.tolist())) >= 3, "a window where the linear score moves the book"
    size = [len(json.dumps(r.observation)) for r in (d0, rows[-1])]
    print(f"decision row observation JSON: {size[0]} bytes (256 closes), {size[1]} bytes (721 closes)")
