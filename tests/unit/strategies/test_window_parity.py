"""Live window path == full-history path, at every bar (slow) or a dense sample (fast)."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pandas as pd
import pytest

from strategy_consumers.strategies import BUILTIN, builtin_strategy
from strategy_consumers.strategies.base import RecommendationResult
from strategy_consumers.strategies.targets import SIGNAL_COLUMNS
from tests.unit.strategies.measure_parity import window_chunk
from tests.unit.strategies.parity import check_windows


def _sample_bars(n: int, need: int, step: int) -> list[int]:
    """Early bars (window is a prefix), the first full windows, then a stride over the rest."""
    early = list(range(0, 40)) + list(range(need - 5, need + 5))
    return sorted({*early, *range(need, n, step), n - 1})


@pytest.mark.parametrize("name", list(BUILTIN))
def test_window_parity_sampled(candles: pd.DataFrame, name: str) -> None:
    strategy = builtin_strategy(name)
    rep = check_windows(strategy, candles, _sample_bars(len(candles), strategy.bars_needed(), 997))
    assert rep.exact, rep
    assert rep.indicator_bits_differ == 0, rep


@pytest.mark.exhaustive
@pytest.mark.timeout(1800)  # 37k windows: ~2.5 min each on 2 idle cores, far more on a loaded machine
@pytest.mark.parametrize("name", list(BUILTIN))
def test_window_parity_every_bar(candles: pd.DataFrame, name: str) -> None:
    # 37k windows per strategy: spread over all CPUs (each worker reloads the bundled data).
    procs = max(1, os.cpu_count() or 1)
    # spawn, not fork: earlier tests in this process leave librdkafka/uvloop threads behind, and a
    # forked child of a multi-threaded process can crash (it did: a segfault in a worker's GC).
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(window_chunk, [(name, k, procs, 1) for k in range(procs)])
    assert sum(p["checked"] for p in parts) == len(candles)
    for key in ("signal", "cold", "warm", "conf"):
        bad = sorted(b for p in parts for b in p[key])
        assert not bad, f"{name}: {key} mismatches at bars {bad[:10]}"
    assert sum(p["bits"] for p in parts) == 0


@pytest.mark.parametrize("name", list(BUILTIN))
def test_appending_bars_never_changes_the_past(candles: pd.DataFrame, name: str) -> None:
    strategy = builtin_strategy(name)
    part = candles.iloc[:9000]
    full = strategy.evaluate(part)
    for cut in (1, 17, 500, 4321, 8999):
        prefix = strategy.evaluate(part.iloc[:cut])
        pd.testing.assert_frame_equal(prefix, full.iloc[:cut], check_exact=True)


def test_recommend_result_shape(candles: pd.DataFrame) -> None:
    for name in BUILTIN:
        strategy = builtin_strategy(name)
        window = candles.iloc[-strategy.bars_needed() :]
        res = strategy.recommend(window)
        assert isinstance(res, RecommendationResult)
        assert res.target in (-1, 0, 1)
        assert 0.0 <= res.confidence <= 1.0
        assert set(res.indicators) == set(strategy.indicator_columns)
        assert all(isinstance(v, float) for v in res.indicators.values())
        with pytest.raises(AttributeError):
            res.target = 5  # type: ignore[misc]
        with pytest.raises(ValueError, match="prev_target"):
            strategy.recommend(window, prev_target=2)
        with pytest.raises(ValueError, match="empty"):
            strategy.recommend(window.iloc[:0])


def test_bars_needed_scales_with_timeframe() -> None:
    strategy = builtin_strategy("ott")
    assert strategy.bars_needed(60) == strategy.lookback_hours
    assert strategy.bars_needed(15) == strategy.lookback_hours * 4


def test_lookback_must_exceed_warmup() -> None:
    cls = type(builtin_strategy("bband_rsi"))
    with pytest.raises(ValueError, match="warm-up"):
        cls(lookback_hours=10)
    with pytest.raises(ValueError, match="unknown params"):
        cls(params={"nope": 1})


def test_volatility_window_start_inside_a_bin_and_gaps(candles: pd.DataFrame) -> None:
    # A gappy history (a bin's last hour, single hours and a whole day missing): every window,
    # whichever hour it starts at, must reproduce the history at its last bar.
    part = candles.iloc[:8000]
    drop = part.index[[4001, 4600, 4601, 5002, 5500, *range(6000, 6024)]]
    gappy = part.drop(drop)
    strategy = builtin_strategy("volatility_system")
    bars = [b for b in range(strategy.bars_needed(), len(gappy)) if b % 41 == 0 or 5990 <= b <= 6010]
    rep = check_windows(strategy, gappy, bars)
    assert rep.exact, rep
    # Windows starting at each hour of a 3h bin give the same signals at their last bar.
    t = len(gappy) - 1
    full = strategy.signals(gappy).iloc[t]
    for shift in range(3):
        win = gappy.iloc[t - strategy.bars_needed() + 1 + shift : t + 1]
        assert win.index[0].hour % 3 == (gappy.index[t - strategy.bars_needed() + 1].hour + shift) % 3
        last = strategy.signals(win).iloc[-1]
        for col in (*SIGNAL_COLUMNS, *strategy.indicator_columns):
            assert last[col] == full[col] or (np.isnan(last[col]) and np.isnan(full[col]))
