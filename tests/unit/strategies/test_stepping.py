"""The incremental steppers equal the vectorized strategies bit for bit (issue 17, ADR 0022).

* Pushed bar by bar over all 37,387 bundled bars, every stepper gives every column of
  ``Strategy._columns`` on the whole history, bit for bit (NaN where it is NaN), and the warm
  result from the history's previous target is the history's target, event and confidence.
* Seeded from a live window's warm tail, it then equals the history (ADR 0004's convergence).
* The live runner with steppers answers exactly as the runner that recomputes every window,
  through gaps, corrected candles and batches; its guard catches a corrupted state, publishes
  the window's answer and reseeds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from common.metrics import STEPPER_RESYNCS
from common.registry import load_registry
from common.serde_bars import BarWindow
from config import StrategySettings, load_settings
from strategy_consumers.runner import StrategyRunner
from strategy_consumers.strategies import builtin_strategy
from strategy_consumers.strategies.stepping import Bar, Stepper, as_arrays
from tests.unit.strategies.test_run_path import answers, answers_in_batches, windows

SETTINGS = load_settings()
REGISTRY = load_registry(SETTINGS.registry_path, max_lookback_hours=SETTINGS.max_lookback_hours)
#: Every hourly price strategy has a stepper; the 4h/1d and exogenous ones recompute (cheap, rare).
STEPPED = ["volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi"]


def bars_of(candles: pd.DataFrame) -> list[Bar]:
    times = candles.index.as_unit("ns").asi8.tolist()
    cols = [candles[c].to_numpy(np.float64).tolist() for c in ("open", "high", "low", "close", "volume")]
    return list(zip(times, *cols, strict=True))


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def test_the_hourly_price_strategies_have_steppers() -> None:
    hourly = [s.name for s in REGISTRY.enabled if s.timeframe == "1h" and not s.exogenous_inputs]
    assert sorted(hourly) == sorted(STEPPED)
    assert all(builtin_strategy(n).stepper() is not None for n in STEPPED)


@pytest.mark.parametrize("name", STEPPED)
def test_stepper_equals_the_full_history_on_every_bar(candles: pd.DataFrame, name: str) -> None:
    strategy = builtin_strategy(name)
    history = strategy.evaluate(candles)
    cols = strategy._columns(candles)
    stepper = strategy.stepper()
    assert stepper is not None
    rows = [stepper.push(bar) for bar in bars_of(candles)]
    assert len(rows) == len(candles) == 37_387
    assert set(rows[0]) == set(cols)
    for column, expected in cols.items():
        got = np.array([r[column] for r in rows], dtype=np.float64)
        diff = np.flatnonzero(~same_bits(got, np.asarray(expected, dtype=np.float64)))
        assert diff.size == 0, f"{name}.{column} differs at {diff.size} bars, first {diff[:5]}"
    # The published answer: warm transition from the history's previous target.
    target = history["target"].to_numpy()
    event = history["event"].to_numpy()
    conf = np.nan_to_num(history["confidence"].to_numpy(), nan=0.0)
    wrong = []
    for t in range(strategy.warmup_bars, len(candles)):
        r = strategy.warm_result(as_arrays(rows[t]), int(target[t - 1]))
        if (r.target, r.event, r.confidence) != (target[t], event[t], conf[t]):
            wrong.append(t)
    assert not wrong, f"{name}: {len(wrong)} bars differ, first {wrong[:5]}"
    assert (np.diff(target) != 0).sum() > 50  # the stretch trades: the comparison has teeth


@pytest.mark.parametrize("name", STEPPED)
def test_stepper_seeded_from_a_window_tail_follows_the_history(candles: pd.DataFrame, name: str) -> None:
    strategy = builtin_strategy(name)
    cols = strategy._columns(candles)
    bars = bars_of(candles)
    stepper = strategy.stepper()
    assert stepper is not None
    t0 = 30_000  # seed from the warm tail the live path computes at bar t0, then step 600 bars
    row = stepper.seed(bars[t0 - strategy.warmup_bars : t0 + 1])
    for t in range(t0, t0 + 600):
        if t > t0:
            row = stepper.push(bars[t])
        for column, expected in cols.items():
            assert same_bits(np.float64(row[column]), np.float64(expected[t])), (name, column, t)


def runner(name: str, step: bool, guard_bars: int = 24) -> StrategyRunner:
    settings = SETTINGS.model_copy(update={"strategy": StrategySettings(step=step, guard_bars=guard_bars)})
    return StrategyRunner(settings, REGISTRY.get(name), producer=None)  # type: ignore[arg-type]


def corrected_with_gap(candles: pd.DataFrame, start: str, count: int) -> list[BarWindow]:
    """Real windows where bar 25's candle was corrected after bar 30 was answered (windows from
    bar 31 on carry the new values, six bars before their previous bar), and bar 40 is missing."""
    first = int(candles.index.searchsorted(pd.Timestamp(start, tz="UTC")))
    out = []
    for k, bar in enumerate(windows(candles, first, count)):
        if k > 30:
            cols = {c: v.copy() for c, v in bar.columns.items()}
            for c in ("high", "low", "close"):
                cols[c][-(k - 25) - 1] *= 1.01
            bar = replace(bar, columns=cols)
        out.append(bar)
    return out[:40] + out[41:]


@pytest.mark.parametrize("name", STEPPED)
def test_stepping_runner_answers_as_the_window_runner(candles: pd.DataFrame, name: str) -> None:
    bars = corrected_with_gap(candles, "2021-05-01", 300)
    reference = runner(name, step=False)
    expected = answers([reference.recommendation_for(b) for b in bars])
    assert reference._stepper is None
    assert any(e[2].value != "NONE" for e in expected)
    live = runner(name, step=True, guard_bars=10_000)
    seeds = STEPPER_RESYNCS.labels(f"strategy.{name}", "seed")
    before = seeds._value.get()
    got = answers([live.recommendation_for(b) for b in bars])
    assert got == expected
    stepper = live._stepper
    assert stepper is not None
    # Seeded at the cold start, after the corrected candle (bar 31) and after the gap (bar 41 is
    # list item 40); every other bar stepped: the last seed's warm tail plus the bars after it.
    assert seeds._value.get() == before + 3
    assert stepper.pushed == live.strategy.warmup_bars + 1 + len(bars) - 41
    cuts = ((0, 1), (1, 25), (25, 26), (26, 120), (120, 121), (121, len(bars)))
    assert answers_in_batches(runner(name, step=True, guard_bars=10_000), bars, cuts) == expected


def window_run_and_stepping_runner(
    candles: pd.DataFrame, name: str, count: int, guard_bars: int
) -> tuple[list[BarWindow], list[tuple], StrategyRunner, Stepper]:
    """``count`` real windows from May 2021, the window-only runner's answers to them, and a fresh
    stepping runner (with its stepper) to compare against them."""
    first = int(candles.index.searchsorted(pd.Timestamp("2021-05-01", tz="UTC")))
    bars = windows(candles, first, count)
    expected = answers([runner(name, step=False).recommendation_for(b) for b in bars])
    live = runner(name, step=True, guard_bars=guard_bars)
    assert live._stepper is not None
    return bars, expected, live, live._stepper


def test_guard_catches_a_corrupted_stepper_and_publishes_the_window_answer(candles: pd.DataFrame) -> None:
    name = "bband_rsi"
    bars, expected, live, stepper = window_run_and_stepping_runner(candles, name, 120, guard_bars=5)
    mismatches = STEPPER_RESYNCS.labels(f"strategy.{name}", "guard_mismatch")
    before = mismatches._value.get()
    # Cold start seeds at bar 0; the guard then checks bars 5, 10, ..., 50, 55, ...
    got = answers([live.recommendation_for(b) for b in bars[:51]])
    assert mismatches._value.get() == before  # a healthy stepper never trips the guard
    # Corrupt the carried RSI state: every stepped bar is wrong until the guard notices.
    stepper.rsi.gain.value *= 3.0  # type: ignore[attr-defined]
    got += answers([live.recommendation_for(b) for b in bars[51:]])
    assert mismatches._value.get() == before + 1
    assert got[:51] == expected[:51]
    assert [i for i in range(51, 120) if got[i] != expected[i]] == [51, 52, 53, 54]
    assert got[55:] == expected[55:]  # bar 55: the window's answer, then a fresh seed


def test_a_failing_stepper_costs_speed_not_the_bar(candles: pd.DataFrame) -> None:
    name = "ott"
    bars, expected, live, stepper = window_run_and_stepping_runner(candles, name, 40, guard_bars=10_000)
    errors = STEPPER_RESYNCS.labels(f"strategy.{name}", "error")
    before = errors._value.get()
    got = answers([live.recommendation_for(b) for b in bars[:20]])

    def broken(bar: Bar) -> dict[str, float]:
        raise ZeroDivisionError("a bug in the stepper")

    stepper._push = broken  # type: ignore[method-assign]
    # Bar 20: the step fails, the window answers, the reseed fails too: both logged and counted.
    got.append(answers([live.recommendation_for(bars[20])])[0])
    assert errors._value.get() == before + 2
    del stepper._push  # the class's own method again
    # Bar 21 reseeds from its window; from bar 22 on the stepper answers again.
    got += answers([live.recommendation_for(b) for b in bars[21:]])
    assert got == expected
    assert stepper.pushed == live.strategy.warmup_bars + 1 + len(bars) - 22
