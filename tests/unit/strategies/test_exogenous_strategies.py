"""The strategies of issue 15 (1h/4h/1d, price and exogenous inputs): parity, no lookahead, bad input.

Same proofs as for the first five strategies, on the real data (bundled hourly candles, the shared
exogenous files), with every input cut the way the live path will cut it:

* parity: at each bar, the live window (its exogenous inputs cut by ``Strategy.cut_exogenous``:
  published by the window's last close, from its reach on) gives the full history's signals,
  cold and warm targets, events, confidence, indicators bit for bit and the no-opinion reason;
  every bar in the ``exhaustive`` test, a dense sample by default;
* no lookahead: cutting *all* inputs (candles closed by T, observations published by T) leaves
  every output up to T unchanged, at several T;
* bad input: missing series, stale series, NaN values, NaN prices -> flat with the reason.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pandas as pd
import pytest

from strategy_consumers.strategies.base import REASON, RecommendationResult
from tests.unit.strategies.exo_parity import (
    EXOGENOUS,
    NEW,
    check_windows_exo,
    exo_window_chunk,
    frame_of,
    inputs,
    make,
)
from training.signals import cut_inputs, hourly_targets, resample_candles

CUTS = [
    pd.Timestamp(t, tz="UTC")
    for t in (
        "2019-06-01T13:00",
        "2020-03-12T21:00",
        "2020-11-05T03:00",
        "2021-03-01T00:00",
        "2021-05-09T16:00",
        "2022-03-15T09:00",
        "2022-06-20T16:00",
    )
]


def _sample_bars(n: int, need: int, target: int = 90) -> list[int]:
    """Early bars (the window is a prefix), the first full windows, a stride over the rest, the last."""
    step = max(1, n // target)
    early = list(range(0, min(n, 30))) + list(range(max(0, need - 4), min(n, need + 4)))
    return sorted({*early, *range(need, n, step), n - 1})


@pytest.mark.parametrize("name", list(NEW))
def test_window_parity_sampled(name: str) -> None:
    strategy = make(name)
    df = frame_of(strategy.timeframe)
    rep, reasons = check_windows_exo(strategy, df, inputs()[1], _sample_bars(len(df), strategy.bars_needed()))
    assert rep.exact, rep
    assert rep.indicator_bits_differ == 0, rep
    assert not reasons, f"reason differs at bars {reasons[:10]}"


@pytest.mark.exhaustive
@pytest.mark.timeout(1800)  # 37k windows: ~2.5 min each on 2 idle cores, far more on a loaded machine
@pytest.mark.parametrize("name", list(NEW))
def test_window_parity_every_bar(name: str) -> None:
    procs = max(1, os.cpu_count() or 1)
    # spawn, not fork (see test_window_parity.py): each worker reloads the data itself.
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(exo_window_chunk, [(name, k, procs) for k in range(procs)])
    assert sum(p["checked"] for p in parts) == len(frame_of(make(name).timeframe))
    for key in ("signal", "cold", "warm", "conf", "reason"):
        bad = sorted(b for p in parts for b in p[key])
        assert not bad, f"{name}: {key} mismatches at bars {bad[:10]}"
    assert sum(p["bits"] for p in parts) == 0


@pytest.mark.parametrize("name", list(NEW))
def test_strategies_take_positions_where_their_data_is(name: str) -> None:
    # Guard against a vacuous parity: on the real inputs each strategy holds long and/or short
    # positions, and has an opinion on part of the history at least.
    strategy = make(name)
    out = strategy.evaluate(frame_of(strategy.timeframe), exogenous=inputs()[1])
    assert (out["target"] != 0).sum() >= 10, out["target"].value_counts()
    if strategy.exogenous_inputs:
        assert (out[REASON] == "").mean() > 0.1


@pytest.mark.parametrize("name", list(NEW))
def test_cutting_every_input_at_t_leaves_the_past_unchanged(name: str) -> None:
    strategy = make(name)
    candles, exo = inputs()
    full_frame = frame_of(strategy.timeframe)
    full = strategy.evaluate(full_frame, exogenous=exo)
    full_hourly = hourly_targets(strategy, candles, exo)
    for cut_at in CUTS:
        part_candles, part_exo = cut_inputs(candles, exo, cut_at)
        assert all((pd.to_datetime(f["published_at"], utc=True) <= cut_at).all() for f in part_exo.values())
        hourly = hourly_targets(strategy, part_candles, part_exo)
        np.testing.assert_array_equal(hourly, full_hourly[: len(hourly)], err_msg=f"{name} cut at {cut_at}")
        part_frame = resample_candles(part_candles, strategy.timeframe)
        part = strategy.evaluate(part_frame, exogenous=part_exo)
        assert len(part) > 0
        pd.testing.assert_frame_equal(part, full.iloc[: len(part)], check_exact=True, obj=f"{name}@{cut_at}")


@pytest.mark.parametrize("name", list(NEW))
def test_future_inputs_cannot_change_a_bar(name: str) -> None:
    # Shuffle every value published after T (and the prices after T): nothing up to T moves.
    strategy = make(name)
    candles, exo = inputs()
    cut_at = CUTS[5] if name in ("news_attention", "headline_sentiment") else CUTS[1]
    rng = np.random.default_rng(7)
    noisy_candles = candles.copy()
    late = (candles.index + pd.Timedelta(hours=1)) > cut_at
    noisy_candles.loc[late, ["open", "high", "low", "close"]] *= rng.uniform(0.5, 1.5, (late.sum(), 1))
    noisy_exo = {}
    for series, frame in exo.items():
        f = frame.copy()
        col = strategy.exogenous_inputs.get(series)
        if col is not None and f[col.column].dtype == np.float64:
            after = f["published_at"] > cut_at
            f.loc[after, col.column] = f.loc[after, col.column].to_numpy() * rng.uniform(0, 3, after.sum())
        elif col is not None:  # an event series: rewrite later items and add a burst right after T
            after = f["published_at"] > cut_at
            f.loc[after, col.column] = "Bitcoin soars to record high as panic ends"
            burst = f.iloc[:60].copy()
            burst["about_ts"] = cut_at + pd.Timedelta(minutes=1)
            burst["published_at"] = cut_at + pd.Timedelta(hours=1)
            f = pd.concat([f, burst]).sort_values("published_at", kind="stable", ignore_index=True)
        noisy_exo[series] = f
    a = hourly_targets(strategy, candles, exo)
    b = hourly_targets(strategy, noisy_candles, noisy_exo)
    known = ~late
    np.testing.assert_array_equal(a[known], b[known])
    # Every column (indicators too) of every bar of the strategy's own timeframe closed by T.
    frame, noisy_frame = frame_of(strategy.timeframe), resample_candles(noisy_candles, strategy.timeframe)
    closed = (frame.index + pd.Timedelta(strategy.timeframe)) <= cut_at
    pd.testing.assert_frame_equal(
        strategy.evaluate(noisy_frame, exogenous=noisy_exo).loc[closed],
        strategy.evaluate(frame, exogenous=exo).loc[closed],
        check_exact=True,
    )


@pytest.mark.parametrize("name", EXOGENOUS)
def test_missing_series_is_flat_with_reason(name: str) -> None:
    strategy = make(name)
    df = frame_of(strategy.timeframe)
    first = next(iter(strategy.exogenous_inputs))
    for exo in (None, {}, {"unrelated": inputs()[1][first]}):
        out = strategy.evaluate(df, exogenous=exo)
        assert (out["target"] == 0).all()
        assert (out[REASON] == f"missing:{first}").all()
        assert (out["no_opinion"] == 1).all()
    res = strategy.recommend(df.iloc[-strategy.bars_needed() :])
    assert isinstance(res, RecommendationResult)
    assert res.target == 0 and res.reason == f"missing:{first}" and res.indicators["no_opinion"] == 1.0
    # A frame without the declared value column is as good as missing.
    broken = {
        n: f.drop(columns=[s.column])
        for n, f in inputs()[1].items()
        for m, s in strategy.exogenous_inputs.items()
        if m == n
    }
    out = strategy.evaluate(df, exogenous=broken)
    assert (out["target"] == 0).all() and out[REASON].str.startswith("missing:").all()


def _last_usable_close(strategy_name: str) -> pd.Timestamp:
    return {
        "news_attention": pd.Timestamp("2022-04-01", tz="UTC"),
        "headline_sentiment": pd.Timestamp("2022-04-01", tz="UTC"),
    }.get(strategy_name, pd.Timestamp("2020-06-01", tz="UTC"))


@pytest.mark.parametrize("name", EXOGENOUS)
def test_stale_series_is_flat_with_reason_after_its_limit(name: str) -> None:
    strategy = make(name)
    df = frame_of(strategy.timeframe)
    exo = inputs()[1]
    stop = _last_usable_close(name)
    # Every declared series stops at ``stop`` (a feed that went silent): nothing after it is known.
    stale = {n: f.loc[f["about_ts"] < stop] if n in strategy.exogenous_inputs else f for n, f in exo.items()}
    full = strategy.evaluate(df, exogenous=exo)
    out = strategy.evaluate(df, exogenous=stale)
    close = df.index + pd.Timedelta(strategy.timeframe)
    limit = max(s.max_age for s in strategy.exogenous_inputs.values())
    after = close > stop + limit
    assert after.sum() > 10
    assert (out.loc[after, "target"] == 0).all()
    reasons = out.loc[after, REASON]
    assert reasons.str.startswith("stale:").all(), reasons.value_counts()
    before = close < stop
    pd.testing.assert_frame_equal(out.loc[before], full.loc[before], check_exact=True)


@pytest.mark.parametrize("name", EXOGENOUS)
def test_nan_values_are_flat_with_reason(name: str) -> None:
    strategy = make(name)
    df = frame_of(strategy.timeframe)
    exo = dict(inputs()[1])
    stop = _last_usable_close(name)
    kinds = {s.kind for s in strategy.exogenous_inputs.values()}
    for series, spec in strategy.exogenous_inputs.items():
        f = exo[series].copy()
        f[spec.column] = f[spec.column].astype(object)
        f.loc[f["about_ts"] >= stop, spec.column] = np.nan
        exo[series] = f
    out = strategy.evaluate(df, exogenous=exo)
    close = df.index + pd.Timedelta(strategy.timeframe)
    limit = max(s.max_age for s in strategy.exogenous_inputs.values())
    # Within the staleness limit the last good value may still be used; after it: "nan".
    covered = (close > stop + limit) & (close < stop + pd.Timedelta(days=20))
    assert covered.sum() > 3
    assert set(np.unique(out["target"])) <= {-1, 0, 1}
    if kinds == {"value"}:
        assert (out.loc[covered, "target"] == 0).all()
        assert out.loc[covered, REASON].str.startswith("nan:").all(), out.loc[covered, REASON].value_counts()
    else:  # an item without text is still an item: counted, scored 0, never an exception
        assert out.loc[covered, "news_count"].gt(0).any()


@pytest.mark.parametrize("name", list(NEW))
def test_nan_prices_never_raise_or_invent_a_position(name: str) -> None:
    strategy = make(name)
    df = frame_of(strategy.timeframe).copy()
    exo = inputs()[1]
    hole = df.index[len(df) // 2 : len(df) // 2 + 3]
    df.loc[hole, ["open", "high", "low", "close", "volume"]] = np.nan
    out = strategy.evaluate(df, exogenous=exo)
    assert set(np.unique(out["target"])) <= {-1, 0, 1}
    res = strategy.recommend(df.loc[: hole[-1]].iloc[-strategy.bars_needed() :], exogenous=exo)
    assert res.target in (-1, 0, 1) and 0.0 <= res.confidence <= 1.0


@pytest.mark.parametrize("name", list(NEW))
def test_params_and_lookback_are_checked(name: str) -> None:
    cls = type(make(name))
    with pytest.raises(ValueError, match="unknown params"):
        cls(params={"nope": 1})
    with pytest.raises(ValueError, match="warm-up"):
        cls(lookback_hours=1)


def test_recommend_result_shape_with_inputs() -> None:
    exo = inputs()[1]
    for name in NEW:
        strategy = make(name)
        window = frame_of(strategy.timeframe).loc[:"2021-03-01"].iloc[-strategy.bars_needed() :]
        cut = strategy.cut_exogenous(exo, window)
        res = strategy.recommend(window, exogenous=cut)
        assert res.target in (-1, 0, 1) and 0.0 <= res.confidence <= 1.0
        assert set(res.indicators) == set(strategy.indicator_columns)
        assert isinstance(res.reason, str)
        if not strategy.exogenous_inputs:
            assert res.reason == ""


@pytest.mark.parametrize("name", list(NEW))
def test_catch_up_run_equals_the_history(name: str) -> None:
    # The consumer's backlog path (one frame for k consecutive bars) with the inputs it delivers.
    strategy = make(name)
    df = frame_of(strategy.timeframe)
    exo = inputs()[1]
    full = strategy.evaluate(df, exogenous=exo)
    k = 40
    for t in (len(df) // 2, len(df) - 1, int(df.index.searchsorted(pd.Timestamp("2022-04-10", tz="UTC")))):
        frame = df.iloc[t - strategy.warmup_bars - k + 1 : t + 1]
        cut = strategy.cut_exogenous(exo, frame)
        run = strategy.recommend_run(frame, k, int(full["target"].iloc[t - k]), exogenous=cut)
        want = full.iloc[t - k + 1 : t + 1]
        assert [r.target for r in run] == want["target"].tolist()
        assert [r.event for r in run] == want["event"].tolist()
        np.testing.assert_allclose([r.confidence for r in run], want["confidence"].to_numpy(), rtol=1e-9)
        if REASON in want:
            assert [r.reason for r in run] == want[REASON].tolist()
        for c in strategy.indicator_columns:
            np.testing.assert_array_equal([r.indicators[c] for r in run], want[c].to_numpy(dtype=float))
