"""Strategy arrays over history equal what the live paths give, and the observation equals live."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.events import SignalEvent, Target
from common.observation import EVENT_CODES
from common.portfolio import Portfolio
from common.registry import load_registry
from meta_consumer.decide import LatestRec, Mark, observe
from training.market import Market
from training.signals import SignalArrays, event_codes, resample_candles, restarted_at

_TARGET = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
_EVENT = {code: ev for ev, code in EVENT_CODES.items()}


def test_arrays_cover_every_enabled_strategy(real_signals: SignalArrays, real_candles: pd.DataFrame) -> None:
    reg = load_registry()
    assert real_signals.strategies == tuple(s.name for s in reg.enabled)
    shape = (len(real_candles), len(reg.enabled))
    for arr in (
        real_signals.target,
        real_signals.event,
        real_signals.confidence,
        real_signals.age,
        real_signals.present,
    ):
        assert arr.shape == shape
    assert set(np.unique(real_signals.target)) <= {-1, 0, 1}
    assert set(np.unique(real_signals.event)) <= set(EVENT_CODES.values())
    for j, spec in enumerate(reg.enabled):
        age, present = real_signals.age[:, j], real_signals.present[:, j]
        hours = spec.timeframe_minutes // 60
        if hours == 1:  # due at every tick
            assert (age == 0).all() and present.all(), spec.name
            continue
        # answers when its own bar closes, held (aging one tick per hour) until the next one
        first = int(np.argmax(present))
        assert not present[:first].any() and present[first:].all() and first < 2 * hours, spec.name
        assert age[first] == 0 and age.max() >= hours - 1, spec.name
        steps = np.diff(age[first:])
        assert set(np.unique(steps)) <= set(range(-age.max(), 1)) | {1}, spec.name
        closes = pd.DatetimeIndex(real_candles.index) + pd.Timedelta(hours=1)
        fresh = (age == 0) & present
        assert (closes[fresh].asi8 % (spec.timeframe_minutes * 60_000_000_000) == 0).all(), spec.name
    assert real_signals.warmup == max(
        s.load_class().warmup_bars * max(1, s.timeframe_minutes // 60) for s in reg.enabled
    )
    # every strategy trades on the real data: an all-flat column would mean a wiring error
    assert (real_signals.target != 0).any(axis=0).all()


@pytest.mark.parametrize("bar", [-1, -500, 30_000])
def test_history_equals_live_recommend(
    real_signals: SignalArrays, real_candles: pd.DataFrame, real_exogenous: dict[str, pd.DataFrame], bar: int
) -> None:
    """Cold ``recommend`` on the live window ending at a bar gives the arrays' values at that bar.

    For a 4h/1d strategy: the window of its bars ending at the last one closed by the tick, with the
    exogenous inputs cut as the live path delivers them.
    """
    t = bar % len(real_candles)
    for j, spec in enumerate(load_registry().enabled):
        strategy = spec.load_class()(
            params=dict(spec.params), lookback_hours=spec.lookback_hours, version=spec.version
        )
        frame = resample_candles(real_candles.iloc[: t + 1], spec.timeframe)
        window = frame.iloc[-strategy.bars_needed() :]
        exo = strategy.cut_exogenous(real_exogenous, window) if spec.exogenous_inputs else None
        rec = strategy.recommend(window, exogenous=exo)
        assert rec.target == real_signals.target[t, j], spec.name
        assert EVENT_CODES[SignalEvent(rec.event)] == real_signals.event[t, j], spec.name
        assert rec.confidence == pytest.approx(real_signals.confidence[t, j], abs=1e-9), spec.name


def test_observation_equals_meta_consumer_observe(market: Market) -> None:
    """The env's observation row is bit-identical to the live decider's for the same tick and book."""
    s = market.signals
    cases = [(25_000, 0.0, None), (25_005, 0.5, 9000.0), (30_123, -0.75, 40_000.0)]
    assert (s.age[[t for t, _, _ in cases]] > 0).any(), "some 4h/1d answers are held, not fresh"
    for t, exposure, entry in cases:
        # a 4h/1d answer arrived ``age`` ticks before this one (seq counts decided ticks)
        latest = {
            name: LatestRec(
                f"tick{t}",
                7 - int(s.age[t, j]),
                _TARGET[int(s.target[t, j])],
                _EVENT[int(s.event[t, j])],
                float(s.confidence[t, j]),
            )
            for j, name in enumerate(s.strategies)
            if s.present[t, j]
        }
        mark = Mark(f"tick{t}", tuple(market.close[t - 255 : t + 1].tolist()))
        live = observe(market.spec, latest, 7, Portfolio(exposure, entry), mark)
        entry_arr = np.array([np.nan if entry is None else entry])
        ours = market.observe(np.array([t]), np.array([exposure]), entry_arr)
        assert ours.tobytes() == live.tobytes()


def test_save_load_round_trip(real_signals: SignalArrays, tmp_path) -> None:
    path = tmp_path / "sig.npz"
    real_signals.save(path)
    back = SignalArrays.load(path)
    assert back.strategies == real_signals.strategies and back.warmup == real_signals.warmup
    assert back.index.equals(real_signals.index)
    for name in ("target", "event", "confidence", "age", "present"):
        assert np.array_equal(getattr(back, name), getattr(real_signals, name))


def test_restart_forgets_answers_given_before_the_run(real_signals: SignalArrays) -> None:
    """A run starting at bar ``first`` knows a 1d strategy only from its first daily close in the run."""
    first = 30_005
    run = restarted_at(real_signals, first)
    for name in ("target", "event", "confidence", "age", "present"):
        assert np.array_equal(getattr(run, name)[:first], getattr(real_signals, name)[:first])
    later = slice(first + 24, None)  # every strategy (1d at most) has answered within the run by then
    for name in ("target", "event", "confidence", "age", "present"):
        assert np.array_equal(getattr(run, name)[later], getattr(real_signals, name)[later])
    j = real_signals.strategies.index("ma_trend")  # a 1d strategy
    gone = ~run.present[first : first + 24, j]
    assert gone.any() and not gone.all()
    assert (run.target[first : first + 24, j][gone] == 0).all()
    born = first + int(np.argmax(run.present[first:, j]))
    assert run.age[born, j] == 0 and real_signals.age[born, j] == 0
    assert run.present[first:, real_signals.strategies.index("ott")].all()  # 1h: always fresh


def test_unknown_event_is_refused() -> None:
    assert event_codes(np.array(["NONE", "EXIT_SHORT"])).tolist() == [0, 4]
    with pytest.raises(ValueError, match="unknown event"):
        event_codes(np.array(["BUY"]))
