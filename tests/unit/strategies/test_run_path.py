"""The catch-up path (one frame for a run of consecutive bars) answers exactly as bar by bar.

Each strategy consumer answers a backlog's consecutive bars from one frame
(``StrategyRunner.recommendations_for`` -> ``Strategy.recommend_run``). These tests feed the same
real BarClosed windows (bundled data) to one runner in batches and to another one bar at a time
and require identical recommendations: target, event, confidence and every indicator, bit for bit.
Also: a gap, a corrected candle inside a run, and a cold start split the run instead of being
answered from the wrong frame.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from common.ids import make_tick_id
from common.registry import load_registry
from common.serde_bars import COLUMNS, BarWindow
from config import load_settings
from strategy_consumers.runner import StrategyRunner

SETTINGS = load_settings()
REGISTRY = load_registry(SETTINGS.registry_path, max_lookback_hours=SETTINGS.max_lookback_hours)
# The 1h price strategies (the windows below are 1h bars without exogenous inputs); the 4h/1d and
# exogenous ones take the same runner path in tests/integration/test_exogenous_pipeline.py.
NAMES = [s.name for s in REGISTRY.enabled if s.timeframe == "1h" and not s.exogenous_inputs]
WINDOW = 4_200


def windows(candles: pd.DataFrame, first: int, count: int) -> list[BarWindow]:
    """BarClosed windows as the tick emitter publishes them: the last WINDOW bars up to each bar."""
    times = candles.index.as_unit("ms").asi8.astype(np.int64)
    out = []
    for i in range(first, first + count):
        lo = max(0, i - WINDOW + 1)
        bar_open = candles.index[i].to_pydatetime()
        cols = {c: candles[c].to_numpy(np.float64)[lo : i + 1] for c in COLUMNS}
        out.append(
            BarWindow(
                make_tick_id(SETTINGS.symbol, bar_open + pd.Timedelta(hours=1)),
                SETTINGS.symbol,
                "1h",
                bar_open,
                times[lo : i + 1],
                cols,
            )
        )
    return out


def runner(name: str) -> StrategyRunner:
    # The producer is never reached by recommendation(s)_for; these tests only compare answers.
    return StrategyRunner(SETTINGS, REGISTRY.get(name), producer=None)  # type: ignore[arg-type]


def answers(recs: list) -> list[tuple]:
    return [(r.tick_id, r.target, r.event, r.confidence, sorted(r.indicators.items())) for r in recs]


def answers_in_batches(
    r: StrategyRunner, bars: list[BarWindow], cuts: tuple[tuple[int, int], ...]
) -> list[tuple]:
    """The runner's answers when the bars arrive in the consume batches ``bars[lo:hi]``."""
    out: list[tuple] = []
    for lo, hi in cuts:
        out += answers(r.recommendations_for(bars[lo:hi]))
    return out


def one_by_one(name: str, bars: list[BarWindow]) -> list[tuple]:
    r = runner(name)
    return answers([r.recommendation_for(b) for b in bars])


@pytest.mark.parametrize("name", NAMES)
def test_batches_equal_bar_by_bar(candles: pd.DataFrame, name: str) -> None:
    # 400 bars from May 2021: every strategy enters or exits in them; cold start at the first.
    first = int(candles.index.searchsorted(pd.Timestamp("2021-05-01", tz="UTC")))
    bars = windows(candles, first, 400)
    expected = one_by_one(name, bars)
    assert any(e[2].value != "NONE" for e in expected), "the stretch should hold an entry or exit"
    # live-like and backlog-like batches
    cuts = ((0, 1), (1, 25), (25, 26), (26, 227), (227, 400))
    assert answers_in_batches(runner(name), bars, cuts) == expected


def test_run_is_split_at_a_gap_and_at_a_corrected_candle(candles: pd.DataFrame) -> None:
    name = "bband_rsi"
    first = int(candles.index.searchsorted(pd.Timestamp("2021-06-01", tz="UTC")))
    bars = windows(candles, first, 60)
    # A candle corrected after bar 30 was published: later windows carry the corrected value, so
    # bars 0..30 must not be answered from bar 59's window (their own data said otherwise).
    corrected = []
    for k, bar in enumerate(bars):
        if k > 30:
            cols = {c: v.copy() for c, v in bar.columns.items()}
            cols["close"][-(k - 30) - 1] *= 1.01
            bar = replace(bar, columns=cols)
        corrected.append(bar)
    gap = corrected[:40] + corrected[41:]  # bar 40 never arrived
    r = runner(name)
    assert answers(r.recommendations_for(gap)) == one_by_one(name, gap)
    assert r._run_end(gap, 1) == 31  # the run stops before the corrected window


def test_recommend_run_refuses_a_short_frame(candles: pd.DataFrame) -> None:
    strategy = runner("supertrend").strategy
    frame = candles.iloc[: strategy.warmup_bars + 3]
    assert len(strategy.recommend_run(frame, 3, 0)) == 3
    with pytest.raises(ValueError, match="needs"):
        strategy.recommend_run(frame, 4, 0)
    with pytest.raises(ValueError, match="prev_target"):
        strategy.recommend_run(frame, 1, 2)
