"""The exogenous-input contract of ``Strategy`` (base.py), on small hand-made series.

What a strategy may see at a bar: an observation only once ``published_at <= bar close``, only
while ``bar close - about_ts <= max_age``; otherwise the reason (missing, stale, nan). And the
price-only strategies are untouched by the extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from strategy_consumers.strategies import BUILTIN, builtin_strategy
from strategy_consumers.strategies.base import (
    MISSING,
    NAN_VALUE,
    OPINION,
    REASON,
    STALE,
    AlignedInput,
    ExogenousInput,
    ExogenousStrategy,
    align_exogenous,
    bar_close_ns,
    desired_signals,
    segment_sums,
)

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2021-01-01", tz="UTC")


def obs(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(about_ts, published_at, value) rows -> the loader's layout."""
    return pd.DataFrame(
        {
            "about_ts": pd.to_datetime([r[0] for r in rows], utc=True),
            "published_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "v": [r[2] for r in rows],
        }
    )


def closes(*times: str) -> np.ndarray:
    return pd.DatetimeIndex([pd.Timestamp(t, tz="UTC") for t in times]).as_unit("ns").asi8


SPEC = ExogenousInput("v", max_age=pd.Timedelta(hours=48))


def test_visible_exactly_from_publication() -> None:
    frame = obs([("2021-01-01", "2021-01-02T00:00", 1.0), ("2021-01-02", "2021-01-03T00:00", 2.0)])
    c = closes("2021-01-01T23:00", "2021-01-02T00:00", "2021-01-02T23:59:59.999999999", "2021-01-03T00:00")
    a = align_exogenous("s", SPEC, frame, c)
    assert np.isnan(a.value[0]) and a.status[0] == STALE  # nothing published yet
    assert a.value[1] == 1.0 and a.status[1] == OPINION  # published at the close: visible
    assert a.value[2] == 1.0  # one nanosecond before the next publication: still the old one
    assert a.value[3] == 2.0
    assert a.age_hours[3] == 24.0  # age counts from what the value is about (01-02), not publication


def test_never_carried_beyond_max_age() -> None:
    frame = obs([("2021-01-01", "2021-01-02T00:00", 1.0)])
    limit = T0 + pd.Timedelta(hours=48)
    a = align_exogenous("s", SPEC, frame, closes(str(limit), str(limit + pd.Timedelta(1, "ns"))))
    assert a.value[0] == 1.0 and a.status[0] == OPINION
    assert np.isnan(a.value[1]) and a.status[1] == STALE


def test_latest_about_wins_and_a_revision_replaces_it() -> None:
    frame = obs(
        [
            ("2021-01-02", "2021-01-03T00:00", 2.0),
            ("2021-01-01", "2021-01-03T01:00", 1.0),  # late publication of an older day: not the latest
            ("2021-01-02", "2021-01-03T02:00", 2.5),  # a revision of the same day
        ]
    )
    a = align_exogenous("s", SPEC, frame, closes("2021-01-03T00:00", "2021-01-03T01:00", "2021-01-03T02:00"))
    assert a.value.tolist() == [2.0, 2.0, 2.5]
    shuffled = frame.iloc[[2, 0, 1]]  # order of the rows handed over does not matter
    b = align_exogenous(
        "s", SPEC, shuffled, closes("2021-01-03T00:00", "2021-01-03T01:00", "2021-01-03T02:00")
    )
    assert b.value.tolist() == a.value.tolist()


def test_nan_values_are_not_used_and_are_named() -> None:
    frame = obs(
        [
            ("2021-01-01", "2021-01-02T00:00", 1.0),
            ("2021-01-02", "2021-01-03T00:00", np.nan),
            ("2021-01-03", "2021-01-04T00:00", np.nan),
        ]
    )
    a = align_exogenous(
        "s",
        SPEC,
        frame,
        closes("2021-01-03T00:00", "2021-01-04T00:00", "2021-01-05T00:00", "2021-01-06T00:01"),
    )
    assert a.value[0] == 1.0  # the last good value, 48 h old: still within the limit
    assert np.isnan(a.value[1]) and a.status[1] == NAN_VALUE  # 72 h old: not carried; NaNs are newer
    assert a.status[2] == NAN_VALUE
    assert a.status[3] == STALE  # even the NaN rows are older than the limit now


def test_text_and_inf_values_read_as_nan() -> None:
    frame = obs([("2021-01-01", "2021-01-02T00:00", 1.0), ("2021-01-02", "2021-01-03T00:00", np.inf)])
    a = align_exogenous("s", SPEC, frame, closes("2021-01-03T00:00"))
    assert a.value[0] == 1.0
    frame["v"] = frame["v"].astype(object)
    frame.loc[1, "v"] = "n/a"
    spec = ExogenousInput("v", max_age=pd.Timedelta(hours=30))  # 1.0 is too old
    b = align_exogenous("s", spec, frame, closes("2021-01-03T00:00"))
    assert b.status[0] == NAN_VALUE


def test_missing_series_or_column() -> None:
    c = closes("2021-01-03T00:00")
    assert align_exogenous("s", SPEC, None, c).status[0] == MISSING
    assert align_exogenous("s", SPEC, obs([]).drop(columns=["v"]), c).status[0] == MISSING
    assert align_exogenous("s", SPEC, obs([]), c).status[0] == STALE  # handed over, but empty


def test_input_declaration_is_checked() -> None:
    with pytest.raises(ValueError, match="max_age"):
        ExogenousInput("v", max_age=pd.Timedelta(0))
    with pytest.raises(ValueError, match="kind"):
        ExogenousInput("v", max_age=pd.Timedelta(hours=1), kind="level")  # type: ignore[arg-type]
    assert ExogenousInput("v", max_age="36h").max_age == pd.Timedelta(hours=36)  # type: ignore[arg-type]


def test_event_counts_and_sums_equal_brute_force() -> None:
    rng = np.random.default_rng(3)
    pub = np.sort(rng.integers(0, 500, 300)) * 3_600_000_000_000 + 1_600_000_000_000_000_000
    times = pd.to_datetime(pub, utc=True)
    frame = pd.DataFrame({"about_ts": times, "published_at": times, "title": ["x"] * len(pub)})
    close = 1_600_000_000_000_000_000 + np.arange(0, 520, 7) * 3_600_000_000_000
    spec = ExogenousInput("title", kind="events", max_age=pd.Timedelta(hours=24))
    a = align_exogenous("n", spec, frame, close)
    vals = rng.normal(size=len(pub))
    for hours in (1, 6, 24, 100):
        lo = close - hours * 3_600_000_000_000
        want_n = [((pub > lo[i]) & (pub <= close[i])).sum() for i in range(len(close))]
        want_s = [vals[(pub > lo[i]) & (pub <= close[i])].sum() for i in range(len(close))]
        assert a.count_in(hours).tolist() == want_n
        np.testing.assert_allclose(a.sum_in(vals, hours), want_s, rtol=1e-12, atol=1e-12)


def test_segment_sums_depend_only_on_their_segment() -> None:
    rng = np.random.default_rng(5)
    vals = rng.normal(size=200) * 1e6
    lo = np.array([0, 5, 5, 7, 100, 199, 200, 30])
    hi = np.array([0, 9, 5, 200, 150, 200, 200, 31])
    got = segment_sums(vals, lo, hi)
    for i in range(len(lo)):
        assert got[i] == segment_sums(vals[lo[i] : hi[i]], np.array([0]), np.array([hi[i] - lo[i]]))[0]
        np.testing.assert_allclose(got[i], vals[lo[i] : hi[i]].sum(), rtol=1e-12)
    assert segment_sums(vals, np.array([3]), np.array([3]))[0] == 0.0


class _Toy(ExogenousStrategy):
    """Long while the series is positive: the smallest exogenous strategy."""

    name = "toy"
    timeframe = "1d"
    default_lookback_hours = 24 * 5
    warmup_bars = 0
    horizon_bars = 1
    indicator_columns = ("v", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {"s": SPEC}

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        v = inputs["s"].value
        return {"v": v, **desired_signals(np.where(v > 0, 1, 0))}

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        return np.ones(len(target))


def _days(n: int) -> pd.DataFrame:
    idx = pd.date_range("2021-01-01", periods=n, freq="1D", tz="UTC", name="date")
    return pd.DataFrame({c: 1.0 for c in ("open", "high", "low", "close", "volume")}, index=idx)


def test_a_strategy_uses_a_value_at_the_close_of_the_bar_it_is_published_for() -> None:
    df = _days(6)
    frame = obs(
        [
            ("2021-01-01", "2021-01-02T00:00", 1.0),
            ("2021-01-02", "2021-01-03T00:00", -1.0),
            ("2021-01-03", "2021-01-04T00:00", 2.0),
        ]
    )
    out = _Toy().evaluate(df, exogenous={"s": frame})
    # Day bar 01-01 closes 01-02 00:00, when the 01-01 value is published.
    # Bar 01-04 closes 01-05 00:00, 48 h after 01-03 (the limit); bar 01-05 closes 72 h after it.
    assert out["target"].tolist() == [1, 0, 1, 1, 0, 0]
    assert out[REASON].tolist() == ["", "", "", "", "stale:s", "stale:s"]
    assert out["no_opinion"].tolist() == [0, 0, 0, 0, STALE, STALE]
    res = _Toy().recommend(df, prev_target=1, exogenous={"s": frame})
    assert res.target == 0 and res.event == "EXIT_LONG" and res.reason == "stale:s"


def test_an_exogenous_strategy_must_declare_inputs() -> None:
    class _NoInputs(_Toy):
        exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {}

    with pytest.raises(TypeError, match="no exogenous_inputs"):
        _NoInputs()


def test_bar_close_is_open_plus_timeframe() -> None:
    idx = pd.DatetimeIndex(["2021-01-01T04:00"], tz="UTC")
    assert bar_close_ns(idx, "4h")[0] == pd.Timestamp("2021-01-01T08:00", tz="UTC").value
    assert bar_close_ns(idx.tz_localize(None), "1d")[0] == pd.Timestamp("2021-01-02T04:00", tz="UTC").value


@pytest.mark.parametrize("name", list(BUILTIN))
def test_price_only_strategies_ignore_exogenous(candles: pd.DataFrame, name: str) -> None:
    strategy = builtin_strategy(name)
    part = candles.iloc[:6000]
    plain = strategy.evaluate(part)
    assert REASON not in plain.columns
    pd.testing.assert_frame_equal(strategy.evaluate(part, exogenous={"x": obs([])}), plain, check_exact=True)
    assert strategy.bars_needed() == strategy.lookback_hours  # 1h: unchanged default
    res = strategy.recommend(part.iloc[-strategy.bars_needed() :])
    assert res.reason == ""


def test_inputs_on_a_price_only_strategy_are_refused_not_ignored() -> None:
    """Only ExogenousStrategy aligns inputs and forces "no opinion"; a plain Strategy declaring
    inputs would trade as if it had them."""
    from strategy_consumers.strategies.supertrend import Supertrend

    class _PriceWithInputs(Supertrend):
        exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {"s": SPEC}

    with pytest.raises(TypeError, match="subclass ExogenousStrategy"):
        _PriceWithInputs()
