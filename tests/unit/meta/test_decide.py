"""The pure decision: ages of not-due strategies, late answers never applied, fallbacks, state."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np

from common.events import IntentAction, SignalEvent, Target
from common.ids import make_tick_id
from common.observation import FeatureSpec
from common.policy import export_policy, load_policy
from config import FallbackMode
from meta_consumer.decide import Carry, Choice, Mark, TickInput, decide_tick

LIVE = ("a", "b", "c")
SPEC = FeatureSpec(strategies=LIVE, max_age_ticks=10)
T0 = datetime(2022, 8, 1, tzinfo=UTC)
VOTE = Choice("fallback:majority_vote", SPEC, None, FallbackMode.MAJORITY_VOTE)


def tin(
    i: int, recs: dict[str, Target], due: tuple[str, ...] | None = None, bar: Mark | None = None
) -> TickInput:
    t = T0 + timedelta(hours=i)
    return TickInput(
        make_tick_id("BTC/USD:USD", t),
        t,
        frozenset(recs if due is None else due),
        {s: (tg, SignalEvent.NONE, 0.5) for s, tg in recs.items()},
        bar,
        bar is not None,
    )


def policy_choice(model_id: str, artifact: bytes) -> Choice:
    row = SimpleNamespace(
        model_id=model_id,
        algo="test",
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        feature_spec=json.loads(SPEC.to_json()),
    )
    return Choice(model_id, SPEC, load_policy(row))


def run(ticks: list[TickInput], choice: Choice = VOTE) -> list:
    carry, outs = Carry(), []
    for t in ticks:
        out = decide_tick(t, carry, choice, LIVE, step=0.25, max_exposure=1.0)
        carry = out.carry
        outs.append(out)
    return outs


def test_not_due_strategies_contribute_their_latest_recommendation_with_its_age() -> None:
    outs = run(
        [
            tin(1, {"a": Target.LONG, "b": Target.SHORT, "c": Target.LONG}),
            tin(2, {"a": Target.LONG}),
            tin(3, {"a": Target.FLAT, "b": Target.LONG}),
        ]
    )
    f = outs[2].features
    assert (f["a.age"], f["b.age"], f["c.age"]) == (0.0, 0.0, np.float32(2 / 10))
    assert (f["a.target"], f["b.target"], f["c.target"]) == (0.0, 1.0, 1.0)
    assert f["c.missing"] == 0.0 and not outs[2].degraded


def test_missing_due_strategy_degrades_and_its_late_answer_never_reaches_later_ticks() -> None:
    first = tin(1, {"a": Target.LONG, "b": Target.LONG, "c": Target.SHORT})
    degraded = tin(2, {"a": Target.SHORT}, due=("a", "b"))
    nxt = tin(3, {"a": Target.SHORT})
    outs = run([first, degraded, nxt])
    assert outs[1].degraded and outs[1].late == ["b"] and "deadline passed without b" in outs[1].reason
    # b's late answer for tick 2 (SHORT) is stored elsewhere but never enters recs of any decision:
    # tick 3 still sees b's tick-1 LONG, two ticks old.
    assert outs[2].features["b.target"] == 1.0 and outs[2].features["b.age"] == np.float32(2 / 10)


def test_majority_vote_and_flat_fallbacks() -> None:
    outs = run(
        [
            tin(1, {"a": Target.LONG, "b": Target.LONG, "c": Target.SHORT}),
            tin(2, {"a": Target.SHORT, "b": Target.SHORT}),
        ]
    )
    assert (outs[0].action, outs[0].target_exposure) == (IntentAction.INCREASE, 1.0)
    assert (outs[1].action, outs[1].target_exposure) == (IntentAction.REVERSE, -1.0)
    flat = Choice("fallback:flat", SPEC, None, FallbackMode.FLAT)
    [o] = run([tin(1, {"a": Target.LONG, "b": Target.LONG, "c": Target.LONG})], flat)
    assert (o.action, o.target_exposure) == (IntentAction.HOLD, 0.0)


def test_portfolio_is_marked_at_the_bar_close_and_carried() -> None:
    closes = tuple(100.0 + i for i in range(40))
    bar1 = Mark("x", closes, offset=7)
    bar2 = Mark("y", (*closes[1:], 150.0), offset=8)
    outs = run(
        [
            tin(1, dict.fromkeys(LIVE, Target.LONG), bar=bar1),
            tin(2, dict.fromkeys(LIVE, Target.LONG), bar=bar2),
        ]
    )
    assert outs[0].carry.portfolio.entry_price == 139.0
    assert outs[1].features["unrealized_pnl"] == np.float32(1.0 * (150.0 / 139.0 - 1))
    assert outs[1].features["volatility"] != 0.0
    assert Carry.from_dict(outs[1].carry.to_dict()) == outs[1].carry


def test_policy_decides_through_the_shared_action_grid() -> None:
    w = np.zeros((SPEC.dim, 5))
    w[0, 1] = 1.0  # INCREASE scores a's target; HOLD scores 0
    choice = policy_choice("m", export_policy([(w, np.zeros(5))], ["identity"], algo="dqn", spec=SPEC))
    outs = run([tin(1, {"a": Target.LONG}), tin(2, {"a": Target.LONG}), tin(3, {"a": Target.SHORT})], choice)
    assert [o.target_exposure for o in outs] == [0.25, 0.5, 0.5]
    assert [o.action for o in outs] == [IntentAction.INCREASE, IntentAction.INCREASE, IntentAction.HOLD]


def test_continuous_policy_jumps_to_the_nearest_grid_point() -> None:
    w = np.zeros((SPEC.dim, 1))
    w[0, 0] = 0.6  # output = 0.6 * a's target, snapped: 0.6 -> 0.5, -0.6 -> -0.5
    choice = policy_choice(
        "c", export_policy([(w, np.zeros(1))], ["identity"], algo="sac", spec=SPEC, output="continuous")
    )
    outs = run([tin(1, {"a": Target.LONG}), tin(2, {"a": Target.SHORT}), tin(3, {"a": Target.SHORT})], choice)
    assert [(o.action, o.target_exposure) for o in outs] == [
        (IntentAction.INCREASE, 0.5),
        (IntentAction.REVERSE, -0.5),
        (IntentAction.HOLD, -0.5),
    ]
