"""Action grid and observation building: the contract between training and live decisions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.actions import ACTIONS, apply_action, apply_actions, label_for, majority_vote
from common.dataset import load_bundled_candles
from common.events import IntentAction, Target
from common.observation import FeatureSpec, build_observations, rolling_volatility

steps = st.sampled_from([0.1, 0.25, 0.5, 1.0])


@given(steps, st.lists(st.integers(0, 4), min_size=1, max_size=200))
def test_exposure_stays_on_grid_and_within_max(step: float, actions: list[int]) -> None:
    e = 0.0
    for a in actions:
        e = float(apply_actions(a, e, step, 1.0))
        assert -1.0 <= e <= 1.0
        assert abs(e / step - round(e / step)) < 1e-9


@given(steps, st.integers(-4, 4))
def test_each_action_does_what_it_says(step: float, k: int) -> None:
    e = float(np.clip(k * step, -1, 1))
    assert apply_action(IntentAction.HOLD, e, step, 1.0) == pytest.approx(e)
    assert apply_action(IntentAction.INCREASE, e, step, 1.0) == pytest.approx(min(e + step, 1.0))
    assert apply_action(IntentAction.DECREASE, e, step, 1.0) == pytest.approx(max(e - step, -1.0))
    assert apply_action(IntentAction.FLAT, e, step, 1.0) == 0.0
    assert apply_action(IntentAction.REVERSE, e, step, 1.0) == pytest.approx(-e)


def test_vectorized_equals_scalar() -> None:
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 5, 1000)
    exp = np.round(rng.uniform(-1, 1, 1000) * 4) / 4
    vec = apply_actions(acts, exp, 0.25, 1.0)
    assert all(vec[i] == apply_action(ACTIONS[acts[i]], exp[i], 0.25, 1.0) for i in range(1000))
    with pytest.raises(ValueError, match="action index"):
        apply_actions([5], [0.0], 0.25, 1.0)


def test_labels_and_majority_vote() -> None:
    assert label_for(0.5, 0.5) is IntentAction.HOLD
    assert label_for(0.5, 0.0) is IntentAction.FLAT
    assert label_for(0.5, -0.5) is IntentAction.REVERSE
    assert label_for(0.0, 1.0) is IntentAction.INCREASE
    assert label_for(0.5, -1.0) is IntentAction.DECREASE
    L, S, F = Target.LONG, Target.SHORT, Target.FLAT
    assert majority_vote([L, L, S, F, F], 1.0) == 0.0  # tie long/flat: do not trade
    assert majority_vote([L, L, L, S, F], 1.0) == 1.0
    assert majority_vote([S, S, F, L, S], 0.5) == -0.5
    assert majority_vote([], 1.0) == 0.0


def test_observation_layout_and_batch_equals_single() -> None:
    spec = FeatureSpec(strategies=("a", "b"), max_age_ticks=10, vol_scale=0.02)
    kwargs = {
        "targets": [[1, -1], [0, 1]],
        "events": [[1, 0], [0, 4]],
        "confidence": [[0.9, 0.2], [0.5, 0.5]],
        "age": [[0, 25], [3, 1]],
        "present": [[True, True], [True, False]],
        "exposure": [0.25, -1.0],
        "unrealized_pnl": [0.01, -3.0],
        "volatility": [0.02, 0.04],
    }
    batch = build_observations(spec, **kwargs)
    assert batch.shape == (2, spec.dim) == (2, len(spec.feature_names()))
    names = spec.feature_names()
    row = dict(zip(names, batch[0], strict=True))
    assert row["a.target"] == 1 and row["a.ev_enter_long"] == 1 and row["a.confidence"] == pytest.approx(0.9)
    assert row["b.target"] == -1 and row["b.age"] == 1.0  # clipped at max_age
    assert row["volatility"] == pytest.approx(0.0) and row["exposure"] == 0.25
    row1 = dict(zip(names, batch[1], strict=True))
    assert row1["b.missing"] == 1 and row1["b.target"] == 0 and row1["b.ev_exit_short"] == 0
    assert row1["unrealized_pnl"] == -1.0 and row1["volatility"] == pytest.approx(1.0)
    for i in range(2):
        single = build_observations(spec, **{k: np.asarray(v)[i] for k, v in kwargs.items()})
        assert np.array_equal(single, batch[i])


def test_feature_spec_round_trip_and_strategy_set_check() -> None:
    spec = FeatureSpec(strategies=("ott", "bband_rsi"), vol_scale=0.013)
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert spec.missing_from(["ott", "supertrend"]) == (["bband_rsi"], ["supertrend"])
    with pytest.raises(ValueError):
        FeatureSpec(strategies=("a", "a"))


def test_rolling_volatility_window_equals_full_history_bit_for_bit() -> None:
    close = load_bundled_candles()["close"].to_numpy()[:3000]
    full = rolling_volatility(close, 24)
    expected = np.concatenate(
        [[np.nan] * 24, [np.std(np.diff(np.log(close[t - 24 : t + 1]))) for t in range(24, 3000)]]
    )
    np.testing.assert_allclose(full, expected, rtol=1e-12, equal_nan=True)
    for t in range(24, 3000, 7):
        window = close[max(0, t - 100) : t + 1]
        assert rolling_volatility(window, 24)[-1] == full[t]
