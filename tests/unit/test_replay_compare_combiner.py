"""The replay-backtest's vectorized side of a combiner applies the meta consumer's cold-start rule.

``ops.replay_compare.combiner_fractions`` is the research candidate's exposure path, made flat
where the consumer holds fewer than ``window + 1`` closes (:func:`closes_seen`, ADR 0020). Here it
is checked against the real chain it stands for, tick by tick: the tick emitter's BarClosed window
(``tick_emitter.core.prepare_bars``), the consumer's trim to ``BAR_CLOSES`` and its pure
decision (``decide_tick``), on real closes with a gap in them. The same for a fitted linear
combiner (ADR 0025: 721 closes, the funding rate last published by each tick). The gap matters: after it the
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

from common.combiner import Combiner, export_combiner, imitation_path, load_combiner
from common.combiner import snap as combiner_snap
from common.dataset import load_bundled_candles
from common.events import SignalEvent, Target
from common.ids import make_tick_id
from common.observation import FeatureSpec
from common.signals import SignalArrays
from config import FallbackMode
from meta_consumer.decide import BAR_CLOSES, MARK_CLOSES, Carry, Choice, Mark, TickInput, decide_tick
from ops.replay_compare import closes_seen, combiner_fractions
from tick_emitter.core import BaseCandles, DuePlan, prepare_bars
from training.baselines import baseline_exposure
from training.research.candidates import Context, build_context, volmanaged_exposure
from training.split import Window

STRATEGIES = ("a", "b", "c")
TARGETS = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
WINDOW_BARS = 200  # the BarClosed window of the decision timeframe (the strategies' longest)
GAP = slice(400, 550)  # 150 stored hours missing: windows after it hold fewer closes


@pytest.fixture(scope="module")
def inputs() -> tuple[pd.DataFrame, SignalArrays]:
    candles = gapped_candles(1200, GAP)
    target = regime_targets(np.random.default_rng(16), len(candles))
    present = np.ones_like(target, dtype=bool)
    present[:30, 2] = False  # a strategy that has not answered yet does not vote
    sig = signals(candles, target, ("c", "a", "b"), present)  # registry order differs from the combiner's
    return candles, sig


def gapped_candles(last: int, gap: slice) -> pd.DataFrame:
    """The last ``last`` real hours, the stored hours ``gap`` (positions in them) missing."""
    raw = load_bundled_candles().iloc[-last:]
    return raw.drop(raw.index[gap])


def regime_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Persistent answers (regimes of 24..120 bars), so the vote holds positions as real ones do."""
    target = np.empty((n, len(STRATEGIES)), dtype=np.int8)
    for k in range(len(STRATEGIES)):
        t = 0
        while t < n:
            span = int(rng.integers(24, 120))
            target[t : t + span, k] = rng.choice([-1, 0, 1], p=[0.3, 0.2, 0.5])
            t += span
    return target


def signals(
    candles: pd.DataFrame,
    target: np.ndarray,
    strategies: tuple[str, ...] = STRATEGIES,
    present: np.ndarray | None = None,
) -> SignalArrays:
    """The answers ``target`` over the candles' bars (all present unless told)."""
    return SignalArrays(
        strategies=strategies,
        index=pd.DatetimeIndex(candles.index),
        target=target,
        event=np.zeros_like(target),
        confidence=np.full(target.shape, 0.5),
        age=np.zeros(target.shape, dtype=np.int64),
        present=np.ones_like(target, dtype=bool) if present is None else present,
        warmup=0,
    )


def load_test_combiner(art: bytes, max_closes: int) -> Combiner:
    """The artefact as the meta consumer loads it from its ``models`` row (id ``c-test``)."""
    return load_combiner(
        SimpleNamespace(
            model_id="c-test",
            artifact=art,
            artifact_sha256=hashlib.sha256(art).hexdigest(),
            feature_spec=json.loads(FeatureSpec(strategies=STRATEGIES).to_json()),
        ),
        max_closes=max_closes,
    )


def combiner_choice(comb: Combiner) -> Choice:
    """The consumer's choice of the combiner ``c-test``."""
    return Choice(
        "c-test", FeatureSpec(strategies=STRATEGIES), None, FallbackMode.MAJORITY_VOTE, combiner=comb
    )


def live_targets(
    candles: pd.DataFrame,
    sig: SignalArrays,
    choice: Choice,
    window_bars: int = WINDOW_BARS,
    funding: np.ndarray | None = None,
    charge: np.ndarray | None = None,
    start: int = 0,
) -> tuple[np.ndarray, list[str]]:
    """What the consumer decides at each bar's tick, fed the emitter's own BarClosed window
    (``choice`` from bar ``start`` on, the majority-vote fallback before)."""
    fallback = Choice("fallback", choice.spec, None, FallbackMode.MAJORITY_VOTE)
    opens_ms = pd.DatetimeIndex(candles.index).asi8 // 1_000_000
    base = BaseCandles(opens_ms, candles[["open", "high", "low", "close", "volume"]].to_numpy(), 60)
    carry, targets, reasons = Carry(), [], []
    for t, opened in enumerate(pd.DatetimeIndex(candles.index)):
        when = (opened + pd.Timedelta(hours=1)).to_pydatetime()
        window = prepare_bars(base, when, DuePlan(when, (), {"1h": window_bars}))["1h"]
        assert window.closing_bar_complete
        tick = make_tick_id("BTC/USD:USD", when)
        mark = Mark(tick, tuple(window.values[-BAR_CLOSES:, 3].tolist()))  # as meta_consumer.bars
        recs = {
            s: (TARGETS[int(sig.target[t, k])], SignalEvent.NONE, 0.5)
            for k, s in enumerate(sig.strategies)
            if sig.present[t, k]
        }
        out = decide_tick(
            TickInput(
                tick,
                when,
                frozenset(recs),
                recs,
                mark,
                True,
                None if funding is None or np.isnan(funding[t]) else float(funding[t]),
                0.0 if charge is None else float(charge[t]),
            ),
            carry,
            choice if t >= start else fallback,
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
    comb = load_test_combiner(art, MARK_CLOSES)
    bars = np.arange(len(candles))
    seen = closes_seen(pd.DatetimeIndex(candles.index), bars, WINDOW_BARS)
    vectorized, cold = combiner_fractions(candles, sig, comb, bars, seen)
    choice = combiner_choice(comb)
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
    long = pd.date_range("2022-01-01", periods=1000, freq="h", tz="UTC")
    assert closes_seen(long, np.array([599]), 500)[0] == 500 > MARK_CLOSES
    assert closes_seen(long, np.array([999]), 900)[0] == BAR_CLOSES == 721  # what a linear one needs


@pytest.mark.parametrize("family", ["ridge", "metalabel", "imitation"])
def test_vectorized_linear_combiner_is_the_live_decision_with_its_cold_start(family: str) -> None:
    """A ridge (meta-label, imitation) combiner over real closes with a gap: 721 closes, funding."""
    from config import load_settings
    from training.research.candidates import fit_linear
    from training.research.funding import load_funding
    from training.research.learners import metalabel_model
    from training.research.protocol import funding_known

    gap = slice(1700, 1850)
    candles = gapped_candles(2600, gap)
    n = len(candles)
    sig = signals(candles, regime_targets(np.random.default_rng(25), n))
    from pathlib import Path

    fund = funding_known(sig.index, load_funding(Path(load_settings().exogenous.data_dir)))
    majority = baseline_exposure("majority_vote", sig, Window(0, n + 1))
    ctx = build_context(candles, sig, majority, fund)
    train = np.arange(721, 1500)
    if family == "imitation":
        from training.research.export import _imitation_params
        from training.research.learners import imitation_model

        legs, rows = imitation_model(
            ctx.features, ctx.ret, np.zeros(n), 0.0005, train, 0.001, ctx.feature_names
        )
        params = {"lam": 0.001, **_imitation_params(ctx.features[rows], ctx.feature_names, legs)}
    elif family == "metalabel":
        fitted = metalabel_model(ctx.features, majority, ctx.ret, train, 24, 0.01, ctx.feature_names)
        assert fitted is not None
        model = fitted
        stored = {k: v for k, v in model.to_params().items() if k not in ("center", "scale")}
        params = {"lam": 0.01, "horizon": 24, "threshold": 0.5, **stored}
    else:
        model = fit_linear(ctx, "ridge", 0.01, train)
        params = {"lam": 0.01, **model.to_params()}
    art = export_combiner(family, STRATEGIES, params)
    comb = load_test_combiner(art, BAR_CLOSES)
    window_bars = 800  # after the 150 h gap: 650 closes < 721, cold for a while
    bars = np.arange(n)
    seen = closes_seen(pd.DatetimeIndex(candles.index), bars, window_bars)
    vectorized, cold = combiner_fractions(candles, sig, comb, bars, seen, fund)
    choice = combiner_choice(comb)
    live, reasons = live_targets(candles, sig, choice, window_bars, fund)
    k = np.flatnonzero(live != vectorized)
    assert k.size == 0, f"first difference at bar {k[0]}: live {live[k[0]]} vs vectorized {vectorized[k[0]]}"
    assert [("720 h return unknown, flat" in r) for r in reasons] == cold.tolist()
    assert cold[:720].all() and not cold[720 : gap.start].any() and cold[gap.start :].sum() > 0
    if family == "imitation":
        research = combiner_snap(imitation_path(ctx.features, legs))
    elif family == "metalabel":
        research = learners_metalabel(ctx, majority, train)
    else:
        research = model.exposure(ctx.features)  # the research path is not flat after the gap
    assert np.count_nonzero(research[cold][720:]) > 0
    assert np.array_equal(research[~cold], vectorized[~cold]) and len(set(vectorized[~cold])) >= 3
    # without the funding the consumer reads, the vectorized side would differ
    no_funding, _ = combiner_fractions(candles, sig, comb, bars, seen, None)
    assert np.any(no_funding != vectorized)


def learners_metalabel(ctx: Context, majority: np.ndarray, train: np.ndarray) -> np.ndarray:
    from training.research.learners import metalabel_exposure

    return metalabel_exposure(ctx.features, majority, ctx.ret, train, 24, 0.01, 0.5)


@pytest.mark.parametrize("family", ["hedge", "dsr", "rl"])
def test_vectorized_online_combiner_is_the_live_decision_seeded_from_its_state(family: str) -> None:
    """A hedge (dsr, rl) combiner over real closes with a 150 h gap: the vectorized side seeded from
    the artefact's state at the first decided tick, stepped at the ticks where the consumer learns,
    holding where it does not (dsr, rl: fewer than 721 closes, at the start and after the gap)."""
    from pathlib import Path

    from common import combiner
    from config import DEFAULT_FUNDING_RATE_HOURLY, load_settings
    from ops.replay_compare import hourly_funding_charge
    from training.research import learners
    from training.research.candidates import hedge_experts, hedge_run
    from training.research.funding import load_funding
    from training.research.protocol import funding_known

    gap = slice(2500, 2650)
    candles = gapped_candles(3400, gap)
    n = len(candles)
    sig = signals(candles, regime_targets(np.random.default_rng(26), n))
    events = load_funding(Path(load_settings().exogenous.data_dir))
    fund = funding_known(sig.index, events)
    charge = hourly_funding_charge(sig.index, events, DEFAULT_FUNDING_RATE_HOURLY)
    # the artefact learned on the 800 bars before the replayed ones (a separate, earlier history)
    head = build_context(
        candles.iloc[:800], sig_head(sig, 800), np.zeros(800), fund[:800], charge[:800], 0.001
    )
    if family == "rl":  # random actors on the head's FeatureSpec v2 (ADR 0027)
        from tests.unit.meta.test_combiner_rl import synthetic_rl_artefact

        art = synthetic_rl_artefact(head.close, head.targets, STRATEGIES, seeds=3, seed=5)
    elif family == "hedge":
        _, st = hedge_run(hedge_experts(head.targets), head.ret, 20.0, 1 / 720)
        params = {"eta": 20.0, "decay": 1 / 720, **st.to_params()}
    else:
        _, ds = learners.dsr_run(head.features, head.ret, charge[:800], 0.001, rho=0.01, seed=3)
        params = {"rho": 0.01, "seed": 3.0, "eta": combiner.DSR_ETA, "cost_rate": 0.001}
        params = {**params, "features": list(head.feature_names), **ds.to_params()}
    if family != "rl":
        art = export_combiner(family, STRATEGIES, params)
    comb = load_test_combiner(art, BAR_CLOSES)
    window_bars = 800
    bars = np.arange(800, n)  # the replay: the consumer decides from bar 800 on
    seen = closes_seen(pd.DatetimeIndex(candles.index), bars, window_bars)
    vectorized, cold = combiner_fractions(candles, sig, comb, bars, seen, fund, charge)
    choice = combiner_choice(comb)
    live, reasons = live_targets(candles, sig, choice, window_bars, fund, charge, start=800)
    live, reasons = live[800:], reasons[800:]  # selected at bar 800: the fallback decided before
    k = np.flatnonzero(live != vectorized)
    assert k.size == 0, (
        f"first difference at bar {800 + k[0]}: live {live[k[0]]} vs vectorized {vectorized[k[0]]}"
    )
    assert [("from this bar" in r) for r in reasons] == cold.tolist()
    if family in ("dsr", "rl"):  # after the gap the window holds fewer than 721 closes: held, not learning
        after = gap.start - 800
        assert not cold[:after].any() and cold[after:].sum() > 0 and not cold[-1]
    else:
        assert not cold.any()
    assert len(set(vectorized.tolist())) >= 3
    # the funding charge matters to dsr (its reward), not to hedge
    no_charge, _ = combiner_fractions(candles, sig, comb, bars, seen, fund, None)
    assert np.any(no_charge != vectorized) == (family == "dsr")


def sig_head(sig: SignalArrays, n: int) -> SignalArrays:
    from dataclasses import replace

    cols = {f: getattr(sig, f)[:n] for f in ("target", "event", "confidence", "age", "present")}
    return replace(sig, index=sig.index[:n], **cols)
