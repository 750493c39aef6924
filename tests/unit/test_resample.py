"""Resampled windows equal an independent pandas computation on the real dataset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.dataset import load_bundled_candles
from common.events import to_epoch_ms
from tick_emitter.core import BaseCandles, build_events, plan_tick, prepare_bars, resample
from tick_emitter.synthetic import random_walk_candles, registry_of

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return load_bundled_candles()


@pytest.fixture(scope="module")
def real_base(real: pd.DataFrame) -> BaseCandles:
    return BaseCandles(real.index.as_unit("ms").asi8.astype(np.int64), real.to_numpy(np.float64), 60)


def pandas_bins(frame: pd.DataFrame, rule: str, per_bin: int) -> pd.DataFrame:
    """Independent reference: pandas resample (label/closed left, epoch origin), complete bins only."""
    grouped = frame.resample(rule, label="left", closed="left", origin="epoch")
    out = grouped.agg(AGG)
    return out[grouped["close"].count() == per_bin]


@pytest.mark.parametrize(("tf", "rule", "per_bin"), [("4h", "4h", 4), ("1d", "1D", 24)])
def test_whole_dataset_resample_equals_pandas(
    real: pd.DataFrame, real_base: BaseCandles, tf: str, rule: str, per_bin: int
) -> None:
    expected = pandas_bins(real, rule, per_bin)
    start = int(expected.index[0].value // 10**6) - 10 * per_bin * 3_600_000
    times, values = resample(real_base.times, real_base.values, 60, per_bin * 60, start)
    assert np.array_equal(times, expected.index.as_unit("ms").asi8)
    np.testing.assert_array_equal(values[:, :4], expected[["open", "high", "low", "close"]].to_numpy())
    np.testing.assert_allclose(values[:, 4], expected["volume"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("when", ["2021-06-30T00:00", "2020-03-13T00:00", "2022-08-20T00:00"])
def test_tick_windows_equal_pandas_on_real_data(
    real: pd.DataFrame, real_base: BaseCandles, when: str
) -> None:
    reg = registry_of([("h", "1h", 720), ("q", "4h", 720), ("d", "1d", 720), ("q2", "4h", 96)])
    tick = datetime.fromisoformat(when).replace(tzinfo=UTC)
    plan = plan_tick(tick, reg)
    assert plan.bars == {"1h": 720, "4h": 180, "1d": 30}
    windows = prepare_bars(real_base, tick, plan)
    for tf, rule, per_bin in [("1h", "1h", 1), ("4h", "4h", 4), ("1d", "1D", 24)]:
        closed = real[(real.index >= tick - timedelta(hours=720)) & (real.index < tick)]
        expected = pandas_bins(closed, rule, per_bin)
        w = windows[tf]
        assert len(w.times) == plan.bars[tf] == len(expected)
        assert w.closing_bar_complete and w.times[-1] == to_epoch_ms(tick) - per_bin * 3_600_000
        assert np.array_equal(w.times, expected.index.as_unit("ms").asi8)
        np.testing.assert_allclose(w.values, expected[list(AGG)].to_numpy(), rtol=1e-12)
    _, bars, degraded = build_events(
        "BTC/USD:USD", plan, windows, published_at=tick, deadline=timedelta(seconds=30)
    )
    assert not degraded and [b.timeframe for b in bars] == ["1h", "4h", "1d"]
    assert all(b.bar_open_time < tick for b in bars)  # only closed bars


def test_bar_closing_at_tick_never_uses_later_candles() -> None:
    base = random_walk_candles(to_epoch_ms(datetime(2022, 1, 1, tzinfo=UTC)), 3 * 24 * 60)
    tick = datetime(2022, 1, 2, 4, tzinfo=UTC)
    plan = plan_tick(tick, registry_of([("q", "4h", 24)]))
    w = prepare_bars(base, tick, plan)["4h"]
    t, v = base.slice(to_epoch_ms(tick) - 240 * 60_000, to_epoch_ms(tick))
    expected = [v[0, 0], v[:, 1].max(), v[:, 2].min(), v[-1, 3], pytest.approx(v[:, 4].sum())]
    assert w.values[-1].tolist() == expected
    assert len(t) == 240 and len(w.times) == 6


def test_incomplete_bins_dropped_and_closing_gap_degrades() -> None:
    start = to_epoch_ms(datetime(2022, 1, 1, tzinfo=UTC))
    full = random_walk_candles(start, 2 * 24 * 60)
    keep = np.ones(full.times.size, dtype=bool)
    keep[full.times == start + 5 * 3_600_000] = False  # the 05:00 minute is missing
    holed = BaseCandles(full.times[keep], full.values[keep], 1)
    reg = registry_of([("h", "1h", 12)])
    tick = datetime(2022, 1, 1, 12, tzinfo=UTC)
    w = prepare_bars(holed, tick, plan_tick(tick, reg))["1h"]
    hours = [(t - start) // 3_600_000 for t in w.times.tolist()]
    assert hours == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11] and w.closing_bar_complete
    tick6 = datetime(2022, 1, 1, 6, tzinfo=UTC)
    plan6 = plan_tick(tick6, reg)
    w6 = prepare_bars(holed, tick6, plan6)
    assert not w6["1h"].closing_bar_complete
    tick_plan, bars, degraded = build_events(
        "BTC/USD:USD", plan6, w6, published_at=tick6, deadline=timedelta(seconds=30)
    )
    assert degraded == ["1h"] and bars == [] and tick_plan.due_strategies == ()


def test_fast_bar_encoding_is_byte_identical_to_serde(real_base: BaseCandles) -> None:
    from common import serde
    from common.serde_bars import BAR_ENCODER, encode_bar

    assert BAR_ENCODER.enabled
    reg = registry_of([("h", "1h", 720), ("q", "4h", 720), ("d", "1d", 720), ("m", "1h", 1)])
    for when in ("2018-05-16T00:00", "2019-01-01T00:00", "2022-08-20T00:00"):
        tick = datetime.fromisoformat(when).replace(tzinfo=UTC)
        plan = plan_tick(tick, reg)
        _, bars, _ = build_events(
            "BTC/USD:USD",
            plan,
            prepare_bars(real_base, tick, plan),
            published_at=tick,
            deadline=timedelta(seconds=30),
        )
        for bar in bars:
            assert encode_bar(bar) == serde.encode(bar.to_event())
            assert serde.decode(encode_bar(bar)) == bar.to_event()


HOLES = st.lists(st.booleans(), min_size=1, max_size=600)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([5, 15, 60, 240]), HOLES, st.integers(0, 99))
def test_resample_with_holes_equals_pandas(tf: int, present: list[bool], seed: int) -> None:
    start = to_epoch_ms(datetime(2022, 1, 1, tzinfo=UTC))
    full = random_walk_candles(start, len(present), seed=seed)
    keep = np.array(present)
    times, values = full.times[keep], full.values[keep]
    got_t, got_v = resample(times, values, 1, tf, start)
    frame = pd.DataFrame(values, columns=list(AGG), index=pd.to_datetime(times, unit="ms", utc=True))
    expected = pandas_bins(frame, f"{tf}min", tf)
    assert np.array_equal(got_t, expected.index.as_unit("ms").asi8)
    np.testing.assert_allclose(got_v, expected[list(AGG)].to_numpy(), rtol=1e-12)
