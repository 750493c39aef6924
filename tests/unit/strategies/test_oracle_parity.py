"""The product's numpy port against references built from the definitions with TA-Lib / technical."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from strategy_consumers.strategies import BUILTIN, builtin_strategy
from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.ott import ott_lines
from strategy_consumers.strategies.targets import SIGNAL_COLUMNS
from tests.unit.strategies import oracle

WARMUP = 300  # the contract: equal to the oracle after at most 300 bars of warm-up


def _assert_close(mine: np.ndarray, ref: np.ndarray, rel: float = 1e-9) -> None:
    assert np.array_equal(np.isnan(mine), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(mine[ok], ref[ok], rtol=rel, atol=0)


def _hlc(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy()


def test_trange_atr_rsi_adx_match_talib(candles: pd.DataFrame) -> None:
    h, lo, c = _hlc(candles)
    np.testing.assert_array_equal(ind.trange(h, lo, c), talib.TRANGE(h, lo, c))
    for period in (2, 14, 30):
        _assert_close(ind.atr(h, lo, c, period), talib.ATR(h, lo, c, timeperiod=period))
        _assert_close(ind.rsi(c, period), talib.RSI(c, timeperiod=period))
        _assert_close(ind.adx(h, lo, c, period), talib.ADX(h, lo, c, timeperiod=period))


def test_short_inputs_are_all_nan() -> None:
    x = np.array([1.0, 2.0, 3.0])
    assert np.isnan(ind.atr(x, x, x, 14)).all()
    assert np.isnan(ind.rsi(x, 14)).all()
    assert np.isnan(ind.adx(x, x, x, 14)).all()


def test_bollinger_matches_pandas(candles: pd.DataFrame) -> None:
    h, lo, c = _hlc(candles)
    tp = pd.Series((h + lo + c) / 3)
    mean, std = ind.rolling_mean_std(tp.to_numpy(), 20)
    _assert_close(mean, tp.rolling(20, min_periods=1).mean().to_numpy(), rel=1e-12)
    # pandas' running variance drifts by ~1e-8 relative in quiet windows; ours is two-pass per window.
    _assert_close(std, tp.rolling(20, min_periods=1).std(ddof=1).to_numpy(), rel=1e-6)


@pytest.mark.parametrize(("mult", "period"), oracle.BUY + oracle.SELL)
def test_supertrend_layer_matches_technical(candles: pd.DataFrame, mult: int, period: int) -> None:
    from technical.indicators import supertrend

    st_ref, stx = supertrend(candles.reset_index(), period=period, multiplier=mult)
    st, direction = ind.supertrend_direction(*_hlc(candles), mult, period)
    np.testing.assert_allclose(st, st_ref, rtol=1e-12, atol=0)
    ref_dir = np.array([0 if x is None else (1 if x == "up" else -1) for x in stx])
    np.testing.assert_array_equal(direction, ref_dir)


def test_supertrend_vectorized_line_equals_literal_recursion() -> None:
    # Narrow bands (multiplier 0.3) on a jumpy walk force bars that break out of both bands.
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 3000))
    high = close + rng.exponential(1, 3000)
    low = close - rng.exponential(1, 3000)
    for mult, period in ((0.3, 5), (1, 8), (3, 18)):
        st, _ = ind.supertrend_direction(high, low, close, mult, period)
        tr = ind.trange(high, low, close)
        atr_ = ind.rolling_sum(tr, period) / period
        hl2 = (high + low) / 2
        fub, flb = ind._supertrend_bands(hl2 + mult * atr_, hl2 - mult * atr_, close, period)
        np.testing.assert_array_equal(st, ind._supertrend_line_loop(fub, flb, close, period))


def test_ott_lines_match_transcription(candles: pd.DataFrame) -> None:
    close = candles["close"].to_numpy()
    var, ott = ott_lines(close, 2, 1.4)
    var_ref, ott_ref = oracle.ott_var_ott(close)
    _assert_close(var[WARMUP:], var_ref[WARMUP:], rel=1e-12)
    _assert_close(ott[WARMUP:], ott_ref[WARMUP:], rel=1e-12)


@pytest.mark.parametrize("name", list(BUILTIN))
def test_signals_equal_oracle_bar_for_bar(candles: pd.DataFrame, name: str) -> None:
    # On the bundled data the port equals the oracle from bar 0, which is stricter than the contract.
    mine = builtin_strategy(name).signals(candles)
    ref = oracle.ORACLES[name](candles)
    for col in SIGNAL_COLUMNS:
        assert mine[col].dtype == np.int8
        bad = np.flatnonzero(mine[col].to_numpy() != ref[col].to_numpy())
        assert bad.size == 0, f"{name}.{col} differs at bars {bad[:10].tolist()}"
    assert mine.index.equals(candles.index)


def test_volatility_system_with_gaps_matches_oracle(candles: pd.DataFrame) -> None:
    # Remove single hours, a bin's last hour, and a whole day: bins are by clock, merges by date.
    part = candles.iloc[:6000]
    drop = part.index[[1000, 1500, 1501, 2002, 2600, 3002, *range(4000, 4024)]]
    gappy = part.drop(drop)
    mine = builtin_strategy("volatility_system").signals(gappy)
    ref = oracle.volatility_system(gappy)
    for col in SIGNAL_COLUMNS:
        np.testing.assert_array_equal(mine[col].to_numpy()[WARMUP:], ref[col].to_numpy()[WARMUP:])
