"""Linear combiners (``ridge`` / ``logistic``, ADR 0025): the live decision == the research backtest.

The research candidate (``candidates.fit_predict``: fit on training bars, then the shared
arithmetic of ``common.combiner``) and the meta consumer's pure decision (``decide_tick``, fed tick
by tick with the answers, the closes a BarClosed carries and the last *published* funding rate)
must give the same exposure at every bar of a real slice, with the model fitted on its first half
and applied out of sample on the second. A no-lookahead test alters the future and requires the
decisions before it to be unchanged.
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from common.combiner import (
    LINEAR_CLOSES,
    CombinerError,
    export_combiner,
    fingerprint,
    linear_feature_names,
    linear_features,
    load_combiner,
)
from common.events import Target
from common.observation import FeatureSpec
from common.signals import SignalArrays
from config import FallbackMode
from meta_consumer.decide import BAR_CLOSES, MARK_CLOSES, Carry, Choice, decide_tick
from tests.unit.meta.real_data import PRICE, funding_events, live_tick, real_inputs, vote_context
from training.research.candidates import Context, apply_linear, build_context, fit_linear, fit_predict
from training.research.protocol import funding_known

N = 3000


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, SignalArrays, np.ndarray]:
    """The last 3,000 real hours (2022-05 .. 08), the price strategies, the published funding."""
    candles, sig, events = real_inputs(N)
    return candles, sig, funding_known(sig.index, events)


def context(real: tuple[pd.DataFrame, SignalArrays, np.ndarray]) -> Context:
    candles, sig, fund = real
    return vote_context(candles, sig, fund)


def artefact(ctx: Context, family: str, lam: float, train: np.ndarray) -> bytes:
    model = fit_linear(ctx, family, lam, train)
    return export_combiner(family, ctx.strategies, {"lam": lam, **model.to_params()})


def row(art: bytes, strategies: tuple[str, ...] = PRICE) -> SimpleNamespace:
    return SimpleNamespace(
        model_id="lin-test",
        artifact=art,
        artifact_sha256=hashlib.sha256(art).hexdigest(),
        feature_spec=json.loads(FeatureSpec(strategies=strategies).to_json()),
    )


def live_decisions(
    candles: pd.DataFrame, sig: SignalArrays, fund: np.ndarray, choice: Choice, upto: int | None = None
) -> tuple[np.ndarray, list[str], list[int]]:
    """(target exposures, reasons, carried close counts), one tick per bar as the service feeds them."""
    carry, out, reasons, carried = Carry(), [], [], []
    for t in range(len(candles) if upto is None else upto):
        tin = live_tick(candles, sig, fund, t)
        o = decide_tick(tin, carry, choice, sig.strategies, step=0.25, max_exposure=1.0)
        carry = o.carry
        out.append(o.target_exposure)
        reasons.append(o.reason)
        carried.append(len(carry.mark.closes) if carry.mark else 0)
    return np.asarray(out), reasons, carried


def test_features_read_only_the_last_721_closes() -> None:
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 2000)))
    votes = rng.integers(-1, 2, size=(2000, 3)).astype(np.float64)
    fund = rng.normal(0, 1e-4, 2000)
    full = linear_features(close, votes, fund)
    assert full.shape == (2000, 3 + 6)
    assert linear_feature_names(("a", "b", "c"))[-3:] == ("ret_720h", "vol_168h", "funding_last")
    for t in range(LINEAR_CLOSES - 1, 2000, 97):  # one row from its 721 closes: the same bits
        lo = t + 1 - LINEAR_CLOSES
        part = linear_features(close[lo : t + 1], votes[lo : t + 1], fund[lo : t + 1])
        assert np.array_equal(part[-1], full[t])
    changed = close.copy()
    changed[1500:] *= 1.5  # the future moves: no row before it may
    assert np.array_equal(linear_features(changed, votes, fund)[:1500], full[:1500])


@pytest.mark.parametrize("family,lam", [("ridge", 1.0), ("logistic", 1.0), ("logistic", 0.01)])
def test_live_linear_equals_the_research_path_bar_by_bar(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray], family: str, lam: float
) -> None:
    candles, sig, fund = real
    ctx = context(real)
    train = np.arange(LINEAR_CLOSES, N // 2)  # fitted on the first half, applied to every bar
    vectorized = fit_predict(ctx, family, lam, train)
    comb = load_combiner(row(artefact(ctx, family, lam, train)), max_closes=BAR_CLOSES)
    assert comb.kind == family and comb.closes_needed == LINEAR_CLOSES == 721 and comb.reads_funding
    spec = FeatureSpec(strategies=sig.strategies)
    choice = Choice("lin-test", spec, None, FallbackMode.MAJORITY_VOTE, combiner=comb)
    live, reasons, carried = live_decisions(candles, sig, fund, choice)
    # before bar 720 the 720 h return is unknown live: flat, and the decision says so
    assert np.all(live[: LINEAR_CLOSES - 1] == 0.0)
    assert all("721: 720 h return unknown, flat" in r for r in reasons[: LINEAR_CLOSES - 1])
    assert carried[-1] == LINEAR_CLOSES  # the carry keeps what the combiner reads, no more
    live, want = live[LINEAR_CLOSES - 1 : -1], vectorized[LINEAR_CLOSES - 1 : -1]
    k = np.flatnonzero(live != want)
    assert k.size == 0, f"first difference at bar {LINEAR_CLOSES - 1 + k[0]}: {live[k[0]]} vs {want[k[0]]}"
    # not vacuous: the book moves over several grid levels on both sides, out of sample too
    oos = live[N // 2 - LINEAR_CLOSES :]
    assert len(set(oos.tolist())) >= 4 and np.any(oos > 0) and np.any(oos < 0)


def test_the_funding_rate_is_part_of_the_decision(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray],
) -> None:
    """A live decision that ignored the funding rate (or read 0) would not equal the backtest."""
    ctx = context(real)
    train = np.arange(LINEAR_CLOSES, N // 2)
    model = fit_linear(ctx, "ridge", 0.01, train)
    assert model.beta[ctx.feature_names.index("funding_last")] != 0.0
    x = ctx.features.copy()
    x[:, ctx.feature_names.index("funding_last")] = 0.0
    assert np.count_nonzero(model.exposure(x) != apply_linear(ctx, model)) > 10


def test_no_lookahead_the_future_does_not_move_a_decision(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray],
) -> None:
    candles, sig, fund = real
    ctx = context(real)
    train = np.arange(LINEAR_CLOSES, N // 2)
    comb = load_combiner(row(artefact(ctx, "logistic", 1.0, train)), max_closes=BAR_CLOSES)
    choice = Choice(
        "lin-test", FeatureSpec(strategies=PRICE), None, FallbackMode.MAJORITY_VOTE, combiner=comb
    )
    cut = 2400
    before, _, _ = live_decisions(candles, sig, fund, choice, upto=cut + 50)
    moved = candles.copy()
    moved.iloc[cut:, moved.columns.get_loc("close")] *= 1.3  # prices after the cut change
    sig2 = SignalArrays(**{**sig.__dict__, "target": sig.target.copy()})
    sig2.target[cut:] = -sig2.target[cut:]  # and so do the answers
    fund2 = fund.copy()
    fund2[cut:] = 0.01  # and the funding published after the cut
    after, _, _ = live_decisions(moved, sig2, fund2, choice, upto=cut + 50)
    assert np.array_equal(before[:cut], after[:cut])
    assert np.any(before[cut:] != after[cut:])  # the change is visible from the cut on
    # the backtest with the same fitted model is causal too: its bar t reads nothing after t
    ctx2 = build_context(moved, sig2, ctx.majority, fund2)
    model = fit_linear(ctx, "logistic", 1.0, train)
    assert np.array_equal(apply_linear(ctx2, model)[:cut], apply_linear(ctx, model)[:cut])


def test_linear_artefacts_are_canonical_and_checked(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray],
) -> None:
    ctx = context(real)
    train = np.arange(LINEAR_CLOSES, N // 2)
    art = artefact(ctx, "ridge", 1.0, train)
    assert art == artefact(ctx, "ridge", 1.0, train)  # same fit, same bytes
    doc = json.loads(art)
    p = doc["params"]
    assert p["features"] == list(linear_feature_names(PRICE)) and len(p["beta"]) == len(p["mu"]) + 1
    assert p["center"] == 0.0 and p["scale"] > 0  # ridge is not centred
    lg = json.loads(artefact(ctx, "logistic", 1.0, train))["params"]
    assert lg["center"] != 0.0  # the logistic is centred by its training median

    def refused(edit: dict[str, object], strategies: tuple[str, ...] = PRICE) -> str:
        d = {**doc, "params": {**p, **edit}}
        bad = json.dumps({**d, "fingerprint": fingerprint(d)}).encode()
        with pytest.raises(CombinerError) as exc:
            load_combiner(row(bad, strategies))
        return str(exc.value)

    assert "features" in refused({"features": list(reversed(p["features"]))})
    assert "beta must be" in refused({"beta": p["beta"][:-1]})
    assert "sd must be > 0" in refused({"sd": [0.0] * len(p["sd"])})
    assert "expected" in refused({"extra": 1.0})
    with pytest.raises(CombinerError, match="needs 721 closes"):
        load_combiner(row(art), max_closes=MARK_CLOSES)


def live_equals_vectorized(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray], art: bytes, kind: str, vectorized: np.ndarray
) -> np.ndarray:
    """The 721-close, funding-reading ``kind`` artefact decided live at every bar: flat (and said so)
    before bar 720, then == ``vectorized`` at every bar but the last; the live exposures from 720."""
    candles, sig, fund = real
    comb = load_combiner(row(art), max_closes=BAR_CLOSES)
    assert comb.kind == kind and comb.closes_needed == 721 and comb.reads_funding
    choice = Choice(
        "lin-test", FeatureSpec(strategies=PRICE), None, FallbackMode.MAJORITY_VOTE, combiner=comb
    )
    live, reasons, _ = live_decisions(candles, sig, fund, choice)
    assert np.all(live[: LINEAR_CLOSES - 1] == 0.0) and "720 h return unknown" in reasons[0]
    live, want = live[LINEAR_CLOSES - 1 : -1], vectorized[LINEAR_CLOSES - 1 : -1]
    k = np.flatnonzero(live != want)
    assert k.size == 0, f"first difference at bar {LINEAR_CLOSES - 1 + k[0]}: {live[k[0]]} vs {want[k[0]]}"
    return live


@pytest.fixture(scope="module")
def real6k() -> tuple[pd.DataFrame, SignalArrays, np.ndarray]:
    """6,000 real hours (2021-12 .. 2022-08): the price strategies' vote is flat before ~bar 1,100
    of any slice (their warm-up), so 3,000 hours leave a meta-label fit a single training row."""
    candles, sig, events = real_inputs(6000)
    return candles, sig, funding_known(sig.index, events)


@pytest.mark.parametrize("horizon,threshold", [(24, 0.5), (24, 0.55)])
def test_live_metalabel_equals_the_research_path_bar_by_bar(
    real6k: tuple[pd.DataFrame, SignalArrays, np.ndarray], horizon: int, threshold: float
) -> None:
    """Meta-labeling: the vote where the fitted logistic says so, live == research at every bar."""
    from training.research.candidates import Config, exposure
    from training.research.learners import metalabel_model

    ctx = context(real6k)
    train = np.arange(LINEAR_CLOSES, 3000)
    params = {"horizon": horizon, "threshold": threshold, "lam": 1.0}
    vectorized = exposure(Config("metalabel", params), ctx, train)
    model = metalabel_model(ctx.features, ctx.majority, ctx.ret, train, horizon, 1.0, ctx.feature_names)
    assert model is not None
    stored = {k: v for k, v in model.to_params().items() if k not in ("center", "scale")}
    art = export_combiner("metalabel", PRICE, {**params, **stored})
    live = live_equals_vectorized(real6k, art, "metalabel", vectorized)
    vote = ctx.majority[LINEAR_CLOSES - 1 : -1]
    followed, vetoed = (
        np.count_nonzero((live == vote) & (vote != 0)),
        np.count_nonzero((live == 0) & (vote != 0)),
    )
    assert followed > 300 and vetoed > 300, (followed, vetoed)  # the logistic both follows and vetoes


def test_live_imitation_equals_the_research_path_bar_by_bar(
    real6k: tuple[pd.DataFrame, SignalArrays, np.ndarray],
) -> None:
    """Imitation of the oracle: P(long) - P(short) of two logistics, live == research at every bar."""
    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.ledger import CostModel
    from training.research.candidates import Config, exposure
    from training.research.export import _imitation_params
    from training.research.funding import bar_funding
    from training.research.learners import imitation_model

    candles, sig, fund = real6k
    per_bar = bar_funding(sig.index, funding_events(), DEFAULT_FUNDING_RATE_HOURLY).per_bar
    cost_rate = CostModel.configured().cost_rate
    ctx = vote_context(candles, sig, fund, per_bar, cost_rate)
    train = np.arange(LINEAR_CLOSES, 3000)
    lam = 0.001  # the grid's 1 and 100 shrink both legs to their base rates: flat at every bar
    vectorized = exposure(Config("imitation", {"lam": lam}), ctx, train)
    legs, rows = imitation_model(ctx.features, ctx.ret, per_bar, cost_rate, train, lam, ctx.feature_names)
    assert all(not isinstance(leg, float) for leg in legs)  # both legs fitted
    art = export_combiner(
        "imitation", PRICE, {"lam": lam, **_imitation_params(ctx.features[rows], ctx.feature_names, legs)}
    )
    live = live_equals_vectorized(real6k, art, "imitation", vectorized)
    assert np.count_nonzero(live > 0) > 100 and np.count_nonzero(live < 0) > 10  # both sides


def test_an_imitation_leg_with_constant_labels_is_that_probability() -> None:
    """A leg whose training labels were all equal is stored as a constant and decides as one."""
    names = linear_feature_names(("a",))
    f = len(names)
    base = {"lam": 1.0, "features": list(names), "mu": [0.0] * f, "sd": [1.0] * f}
    legs = {
        "beta_long": [0.0] * (f + 1),
        "beta_short": [0.0] * f + [2.0],
        "const_long": 1.0,
        "const_short": -1,
    }
    comb = load_combiner(row(export_combiner("imitation", ("a",), {**base, **legs}), ("a",)))
    closes = tuple(100.0 + 0.01 * i for i in range(LINEAR_CLOSES))
    # P(long) = 1 (constant), P(short) = sigmoid(2) = 0.88: 0.12 -> snapped to 0.0; with the
    # short leg constant 0 too it is 1.0
    assert comb.fraction({"a": Target.LONG}, closes, None) == 0.0
    legs0 = {**legs, "const_short": 0.0}
    comb0 = load_combiner(row(export_combiner("imitation", ("a",), {**base, **legs0}), ("a",)))
    assert comb0.fraction({"a": Target.LONG}, closes, None) == 1.0
    bad = {**legs, "const_long": 2.0}
    with pytest.raises(ValueError, match="const_long must be -1"):
        export_combiner("imitation", ("a",), {**base, **bad})
