"""Combiner artefacts (ADR 0020): the loader's refusals, and live decisions == the research backtest.

The parity test runs the research candidate's vectorized path (``training.research.candidates``)
and the meta consumer's pure decision (``decide_tick``, fed tick by tick with the strategies'
answers and the bar closes a live tick carries) over a slice of the real bundled data, and
requires the same exposure at every bar.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from common.combiner import (
    FORMAT,
    CombinerError,
    export_combiner,
    fingerprint,
    is_combiner_artifact,
    load_combiner,
    realized_vol,
)
from common.dataset import load_bundled_candles
from common.events import SignalEvent, Target
from common.ids import make_tick_id
from common.observation import FeatureSpec
from common.policy import export_policy
from common.signals import SignalArrays
from config import FallbackMode
from meta_consumer.decide import MARK_CLOSES, Carry, Choice, Mark, TickInput, decide_tick, signals_tick_input
from training.research.candidates import build_context, volmanaged_exposure
from training.research.protocol import _baseline_exposures
from training.signals import compute_signals, training_exogenous

LIVE = ("a", "b", "c")
PARAMS = {"target_vol": 0.5, "window": 168, "cap": 1.0}


def row(art: bytes, strategies: tuple[str, ...] = LIVE, sha: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        model_id="c-test",
        algo="combiner:volmanaged",
        artifact=art,
        artifact_sha256=hashlib.sha256(art).hexdigest() if sha is None else sha,
        feature_spec=json.loads(FeatureSpec(strategies=strategies).to_json()),
    )


def reason(art: bytes, **kw: object) -> str:
    strategies = kw.pop("strategies", LIVE)
    with pytest.raises(CombinerError) as exc:
        load_combiner(row(art, strategies), **kw)  # type: ignore[arg-type]
    return str(exc.value)


# --- the artefact --------------------------------------------------------------------------------


def test_export_is_canonical_and_fingerprinted() -> None:
    a = export_combiner("volmanaged", LIVE, PARAMS, provenance={"config": "volmanaged:x"})
    b = export_combiner(
        "volmanaged", LIVE, dict(reversed(list(PARAMS.items()))), provenance={"config": "volmanaged:x"}
    )
    assert a == b and is_combiner_artifact(a)
    doc = json.loads(a)
    assert doc["format"] == FORMAT and doc["fingerprint"] == fingerprint(doc)
    c = load_combiner(row(a))
    assert (c.kind, c.strategies, c.window, c.closes_needed) == ("volmanaged", LIVE, 168, 169)
    other = export_combiner("volmanaged", LIVE, {**PARAMS, "target_vol": 0.3})
    assert json.loads(other)["fingerprint"] != doc["fingerprint"]
    spec = FeatureSpec(strategies=LIVE)
    mlp = export_policy([(np.zeros((spec.dim, 5)), np.zeros(5))], ["identity"], algo="t", spec=spec)
    assert not is_combiner_artifact(mlp)


def test_loader_refuses_bad_or_mismatched_artefacts_with_the_reason() -> None:
    good = export_combiner("volmanaged", LIVE, PARAMS)
    doc = json.loads(good)
    with pytest.raises(CombinerError, match="sha256"):
        load_combiner(row(good, sha="0" * 64))
    edited = json.dumps({**doc, "params": {**doc["params"], "target_vol": 5.0}}).encode()
    assert "fingerprint" in reason(edited)
    assert "unreadable" in reason(b"{not json")
    refp = {**doc, "format": "btcmeta.combiner.v0"}
    assert "format" in reason(json.dumps({**refp, "fingerprint": fingerprint(refp)}).encode())
    unknown = {**doc, "kind": "oracle"}
    assert "kind 'oracle'" in reason(json.dumps({**unknown, "fingerprint": fingerprint(unknown)}).encode())
    missing = {**doc, "params": {"target_vol": 0.5, "cap": 1.0}}
    assert "expected" in reason(json.dumps({**missing, "fingerprint": fingerprint(missing)}).encode())
    assert "feature_spec strategies" in reason(good, strategies=("a", "b"))
    assert "grid" in reason(good, step=0.5)
    assert "needs 169 closes" in reason(good, max_closes=100)
    with pytest.raises(CombinerError, match="window"):
        export_combiner("volmanaged", LIVE, {**PARAMS, "window": 1.5})


def test_realized_vol_is_the_sample_std_and_causal() -> None:
    rng = np.random.default_rng(7)
    ret = np.concatenate([[0.0], rng.normal(0, 0.01, 500)])
    rv = realized_vol(ret, 24)
    ref = pd.Series(np.log1p(ret[1:])).rolling(24).std(ddof=1).to_numpy()
    assert np.all(np.isnan(rv[:24])) and np.allclose(rv[24:], ref[23:], rtol=1e-12, atol=0)
    moved = ret.copy()
    moved[300:] *= 3.0  # the future changes: nothing before it may move
    assert np.array_equal(realized_vol(moved, 24)[:300], rv[:300], equal_nan=True)
    # the value at t from the last window + 1 returns alone has the same bits as from the history
    assert all(realized_vol(ret[t - 24 : t + 1], 24)[-1] == rv[t] for t in range(24, 501, 37))


# --- live == vectorized on real data -------------------------------------------------------------


#: The price strategies: with all 14 registered ones (the exogenous ones mostly flat) the majority
#: vote is flat at 99 % of the bars, which would make the parity test nearly vacuous.
PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")


@pytest.fixture(scope="module")
def real_slice() -> tuple[pd.DataFrame, SignalArrays]:
    candles = load_bundled_candles().iloc[-4000:]  # 2022-03 .. 2022-08
    sig = compute_signals(candles, exogenous=training_exogenous())
    return candles, sig.restricted(PRICE)


def live_decisions(candles: pd.DataFrame, signals: SignalArrays, choice: Choice) -> np.ndarray:
    """Target exposures from the meta consumer's decision, one tick per bar, as the service feeds it."""
    close = candles["close"].to_numpy(np.float64)
    carry, out = Carry(), []
    t0 = datetime(2000, 1, 1, tzinfo=UTC)
    for t in range(len(close)):
        when = t0 + timedelta(hours=t)
        tin = signals_tick_input(close, signals, t, when, closes=MARK_CLOSES)
        o = decide_tick(tin, carry, choice, signals.strategies, step=0.25, max_exposure=1.0)
        carry = o.carry
        out.append(o.target_exposure)
    return np.asarray(out)


@pytest.mark.parametrize("target_vol,window", [(0.5, 168), (0.3, 72)])
def test_live_volmanaged_equals_the_research_path_bar_by_bar(
    real_slice: tuple[pd.DataFrame, SignalArrays], target_vol: float, window: int
) -> None:
    candles, signals = real_slice
    majority = _baseline_exposures(signals)["majority_vote"]
    ctx = build_context(candles, signals, majority, np.full(len(signals), np.nan))
    vectorized = volmanaged_exposure(ctx, target_vol, window)
    art = export_combiner(
        "volmanaged", signals.strategies, {"target_vol": target_vol, "window": window, "cap": 1.0}
    )
    comb = load_combiner(row(art, signals.strategies), max_closes=MARK_CLOSES)
    spec = FeatureSpec(strategies=signals.strategies)
    live = live_decisions(
        candles, signals, Choice("c-test", spec, None, FallbackMode.MAJORITY_VOTE, combiner=comb)
    )
    assert live.shape == vectorized.shape == (4000,)
    # the research path leaves the last bar flat (no bar follows to hold it over, never scored)
    live, vectorized, majority = live[:-1], vectorized[:-1], majority[:-1]
    k = np.flatnonzero(live != vectorized)
    assert k.size == 0, f"first difference at bar {k[0]}: live {live[k[0]]} vs vectorized {vectorized[k[0]]}"
    # not a vote in disguise: sizing moves the book at many bars, over several grid levels
    assert np.count_nonzero(live != majority) > 500
    assert {0.25, 0.5, 0.75}.issubset(set(live[window:])) and np.count_nonzero(live < 0) > 0
    assert np.all(live[:window] == 0.0)  # volatility unknown before the window: flat, on both sides


def test_a_cold_start_is_flat_and_says_why() -> None:
    art = export_combiner("volmanaged", LIVE, {"target_vol": 0.5, "window": 4, "cap": 1.0})
    choice = Choice("c-test", FeatureSpec(strategies=LIVE), combiner=load_combiner(row(art)))
    carry, outs = Carry(), []
    closes = (100.0, 101.0, 99.5, 100.5, 102.0, 101.0)
    for i in range(2, 7):
        when = datetime(2022, 8, 1, tzinfo=UTC) + timedelta(hours=i)
        tick = make_tick_id("BTC/USD:USD", when)
        recs = {s: (Target.LONG, SignalEvent.NONE, 0.5) for s in LIVE}
        tin = TickInput(tick, when, frozenset(recs), recs, Mark(tick, closes[:i]), True)
        out = decide_tick(tin, carry, choice, LIVE, step=0.25, max_exposure=1.0)
        carry = out.carry
        outs.append(out)
    assert [o.target_exposure for o in outs[:3]] == [0.0, 0.0, 0.0]
    assert all("closes of 5: volatility unknown, flat" in o.reason for o in outs[:3])
    assert outs[3].target_exposure > 0 and "closes of" not in outs[3].reason  # 5 closes: sized long
