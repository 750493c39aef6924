"""Strategy arrays over history equal what the live paths give, and the observation equals live."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.events import SignalEvent, Target
from common.observation import EVENT_CODES
from common.registry import load_registry
from meta_consumer.decide import LatestRec, Mark, observe
from meta_consumer.portfolio import Portfolio
from training.market import Market
from training.signals import SignalArrays, event_codes

_TARGET = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
_EVENT = {code: ev for ev, code in EVENT_CODES.items()}


def test_arrays_cover_every_enabled_strategy(real_signals: SignalArrays, real_candles: pd.DataFrame) -> None:
    reg = load_registry()
    assert real_signals.strategies == tuple(s.name for s in reg.enabled)
    shape = (len(real_candles), len(reg.enabled))
    for arr in (real_signals.target, real_signals.event, real_signals.confidence, real_signals.age,
                real_signals.present):
        assert arr.shape == shape
    assert set(np.unique(real_signals.target)) <= {-1, 0, 1}
    assert set(np.unique(real_signals.event)) <= set(EVENT_CODES.values())
    assert (real_signals.age == 0).all() and real_signals.present.all()
    assert real_signals.warmup == max(s.load_class().warmup_bars for s in reg.enabled)
    # every strategy trades on the real data: an all-flat column would mean a wiring error
    assert (real_signals.target != 0).any(axis=0).all()


@pytest.mark.parametrize("bar", [-1, -500, 30_000])
def test_history_equals_live_recommend(real_signals: SignalArrays, real_candles: pd.DataFrame,
                                       bar: int) -> None:
    """Cold ``recommend`` on the live window ending at a bar gives the arrays' values at that bar."""
    t = bar % len(real_candles)
    for j, spec in enumerate(load_registry().enabled):
        strategy = spec.load_class()(params=dict(spec.params), lookback_hours=spec.lookback_hours,
                                     version=spec.version)
        window = real_candles.iloc[t - strategy.bars_needed() + 1 : t + 1]
        rec = strategy.recommend(window)
        assert rec.target == real_signals.target[t, j], spec.name
        assert EVENT_CODES[SignalEvent(rec.event)] == real_signals.event[t, j], spec.name
        assert rec.confidence == pytest.approx(real_signals.confidence[t, j], abs=1e-9), spec.name


def test_observation_equals_meta_consumer_observe(market: Market) -> None:
    """The env's observation row is bit-identical to the live decider's for the same tick and book."""
    s = market.signals
    for t, exposure, entry in [(25_000, 0.0, None), (25_001, 0.5, 9000.0), (30_123, -0.75, 40_000.0)]:
        latest = {name: LatestRec(f"tick{t}", 7, _TARGET[int(s.target[t, j])], _EVENT[int(s.event[t, j])],
                                  float(s.confidence[t, j]))
                  for j, name in enumerate(s.strategies)}
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


def test_unknown_event_is_refused() -> None:
    assert event_codes(np.array(["NONE", "EXIT_SHORT"])).tolist() == [0, 4]
    with pytest.raises(ValueError, match="unknown event"):
        event_codes(np.array(["BUY"]))
