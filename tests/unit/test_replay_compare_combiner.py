"""The replay-backtest's vectorized side of a combiner applies the meta consumer's cold-start rule.

``ops.replay_compare.combiner_fractions`` is the research candidate's exposure path, made flat
where the consumer holds fewer than ``window + 1`` closes (:func:`closes_seen`, ADR 0020). Here it
is checked against the real chain it stands for, tick by tick: the tick emitter's BarClosed window
(``tick_emitter.core.prepare_bars``), the consumer's trim to ``MARK_CLOSES`` and its pure
decision (``decide_tick``), on real closes with a gap in them. The gap matters: after it the
BarClosed window holds fewer closes than the window needs, so the consumer is flat again while
the research path (which counts bars, not hours) is not; a vectorized side without the rule would
differ there, and one that hid it would not find it.
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from common.combiner import export_combiner, load_combiner
from common.dataset import load_bundled_candles
from common.events import SignalEvent, Target
from common.ids import make_tick_id
from common.observation import FeatureSpec
from common.signals import SignalArrays
from config import FallbackMode
from meta_consumer.decide import MARK_CLOSES, Carry, Choice, Mark, TickInput, decide_tick
from ops.replay_compare import closes_seen, combiner_fractions
from tick_emitter.core import BaseCandles, DuePlan, prepare_bars
from training.baselines import baseline_exposure
from training.research.candidates import build_context, volmanaged_exposure
from training.split import Window

STRATEGIES = ("a", "b", "c")
TARGETS = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
WINDOW_BARS = 200  # the BarClosed window of the decision timeframe (the strategies' longest)
GAP = slice(400, 550)  # 150 stored hours missing: windows after it hold fewer closes


@pytest.fixture(scope="module")
def inputs() -> tuple[pd.DataFrame, SignalArrays]:
    raw = load_bundled_candles().iloc[-1200:]
    candles = raw.drop(raw.index[GAP])
    rng = np.random.default_rng(16)
    n = len(candles)
    # persistent answers (regimes of 24..120 bars), so the vote holds positions as real ones do
    target = np.empty((n, len(STRATEGIES)), dtype=np.int8)
    for k in range(len(STRATEGIES)):
        t = 0
        while t < n:
            span = int(rng.integers(24, 120))
            target[t : t + span, k] = rng.choice([-1, 0, 1], p=[0.3, 0.2, 0.5])
            t += span
    present = np.ones_like(target, dtype=bool)
    present[:30, 2] = False  # a strategy that has not answered yet does not vote
    sig = SignalArrays(
        strategies=("c", "a", "b"),  # registry order differs from the combiner's
        index=pd.DatetimeIndex(candles.index),
        target=target,
        event=np.zeros_like(target),
        confidence=np.full(target.shape, 0.5),
        age=np.zeros(target.shape, dtype=np.int64),
        present=present,
        warmup=0,
    )
    return candles, sig


def live_targets(candles: pd.DataFrame, sig: SignalArrays, choice: Choice) -> tuple[np.ndarray, list[str]]:
    """What the consumer decides at each bar's tick, fed the emitter's own BarClosed window."""
    opens_ms = pd.DatetimeIndex(candles.index).asi8 // 1_000_000
    base = BaseCandles(opens_ms, candles[["open", "high", "low", "close", "volume"]].to_numpy(), 60)
    carry, targets, reasons = Carry(), [], []
    for t, opened in enumerate(pd.DatetimeIndex(candles.index)):
        when = (opened + pd.Timedelta(hours=1)).to_pydatetime()
        window = prepare_bars(base, when, DuePlan(when, (), {"1h": WINDOW_BARS}))["1h"]
        assert window.closing_bar_complete
        tick = make_tick_id("BTC/USD:USD", when)
        mark = Mark(tick, tuple(window.values[-MARK_CLOSES:, 3].tolist()))  # as meta_consumer.bars
        recs = {
            s: (TARGETS[int(sig.target[t, k])], SignalEvent.NONE, 0.5)
            for k, s in enumerate(sig.strategies)
            if sig.present[t, k]
        }
        out = decide_tick(
            TickInput(tick, when, frozenset(recs), recs, mark, True),
            carry,
            choice,
            STRATEGIES,
            step=0.25,
            max_exposure=1.0,
        )
        carry = out.carry
        targets.append(out.target_exposure)
        reasons.append(out.reason)
    return np.asarray(targets), reasons


def test_vectorized_combiner_applies_the_consumers_cold_start(
    inputs: tuple[pd.DataFrame, SignalArrays],
) -> None:
    candles, sig = inputs
    art = export_combiner("volmanaged", STRATEGIES, {"target_vol": 0.3, "window": 72, "cap": 1.0})
    comb = load_combiner(
        SimpleNamespace(
            model_id="c-test",
            artifact=art,
            artifact_sha256=hashlib.sha256(art).hexdigest(),
            feature_spec=json.loads(FeatureSpec(strategies=STRATEGIES).to_json()),
        ),
        max_closes=MARK_CLOSES,
    )
    bars = np.arange(len(candles))
    seen = closes_seen(pd.DatetimeIndex(candles.index), bars, WINDOW_BARS)
    vectorized, cold = combiner_fractions(candles, sig, comb, bars, seen)
    choice = Choice(
        "c-test", FeatureSpec(strategies=STRATEGIES), None, FallbackMode.MAJORITY_VOTE, combiner=comb
    )
    live, reasons = live_targets(candles, sig, choice)

    k = np.flatnonzero(live != vectorized)
    assert k.size == 0, f"first difference at bar {k[0]}: live {live[k[0]]} vs vectorized {vectorized[k[0]]}"
    assert [("volatility unknown, flat" in r) for r in reasons] == cold.tolist()
    # cold at the start of the history (1..72 closes) and again after the gap
    after_gap = GAP.start
    assert cold[:72].all() and not cold[72:after_gap].any()
    assert cold[after_gap:].sum() > 0
    # there the research path alone is not flat: the rule is what makes the two sides agree
    ordered = sig.restricted(STRATEGIES)
    n = len(ordered)
    majority = baseline_exposure("majority_vote", ordered, Window(0, n + 1))
    research = volmanaged_exposure(build_context(candles, ordered, majority, np.full(n, np.nan)), 0.3, 72)
    assert np.count_nonzero(research[after_gap:][cold[after_gap:]]) > 0
    assert np.array_equal(research[~cold], vectorized[~cold])
    assert len(set(vectorized[~cold])) >= 3, "the sizing moves over several grid levels"


def test_closes_seen_counts_stored_candles_in_the_window_capped_at_the_carry() -> None:
    hours = pd.date_range("2022-01-01", periods=10, freq="h", tz="UTC").delete([4, 5])  # a 2 h gap
    seen = closes_seen(hours, np.arange(len(hours)), 4)
    # window [tick - 4 h, tick): bar opens 00,01,02,03,06,07,08,09
    assert seen.tolist() == [1, 2, 3, 4, 2, 2, 3, 4]
    assert closes_seen(hours, np.arange(len(hours)), 0).tolist() == [0] * 8  # no BarClosed at all
    long = pd.date_range("2022-01-01", periods=600, freq="h", tz="UTC")
    assert closes_seen(long, np.array([599]), 500)[0] == MARK_CLOSES
