"""The RL combiner (ADR 0027): FeatureSpec v2 rows and the greedy step, one code for research and live.

``old_features_v2`` below is the research code before ADR 0027 (a verbatim copy); the research rows
must not move at any bar of several thousand real hours, and one live row computed from the last
721 bars with the carried cumulative P&L must have the bits of the whole-history row.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import combiner, combiner_rl
from common.dataset import load_bundled_candles
from common.signals import SignalArrays
from config import load_settings
from tests.unit.meta.test_combiner_online import choose, run_live
from training.research import rl
from training.research.candidates import Context, build_context, exposure, open_gaps
from training.research.export import FitData, export, parse_key, train_bars
from training.research.funding import bar_funding, load_funding
from training.research.protocol import _baseline_exposures, funding_known
from training.signals import compute_signals, training_exogenous

PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")
N = 4000
WINDOWS = rl.WINDOWS


@pytest.fixture(scope="module")
def ctx() -> Context:
    """The last 4,000 real hours, the price strategies, published and per-bar funding, 10 bp cost."""
    candles = load_bundled_candles().iloc[-N:]
    sig = compute_signals(candles, exogenous=training_exogenous()).restricted(PRICE)
    events = load_funding(Path(load_settings().exogenous.data_dir))
    fund = bar_funding(sig.index, events, 1e-5)
    return build_context(
        candles, sig, _baseline_exposures(sig)["majority_vote"], funding_known(sig.index, events),
        fund.per_bar, 0.001,
    )  # fmt: skip


def _trailing_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Sum over rows ``t-k+1 .. t`` (fewer at the start), per column."""
    c = np.cumsum(np.vstack([np.zeros((1, *x.shape[1:])), x]), axis=0)
    out = c[1:].copy()
    out[k:] -= c[1 : x.shape[0] - k + 1]
    return out


def old_features_v2(ctx: Context) -> tuple[np.ndarray, tuple[str, ...]]:
    """The research ``features_v2`` before ADR 0027 (a verbatim copy)."""
    tg, ret, n = ctx.targets, ctx.ret, len(ctx)
    held = np.vstack([np.zeros((1, tg.shape[1])), tg[:-1]])  # each strategy's target over bar t
    sret = held * ret[:, None]
    in_pos = (held != 0).astype(np.float64)
    won = (sret > 0).astype(np.float64)
    cols: list[np.ndarray] = [tg]
    names: list[str] = [f"vote:{s}" for s in ctx.strategies]
    for k in WINDOWS:
        cols.append(_trailing_sum(sret, k))
        names += [f"pnl_{k}h:{s}" for s in ctx.strategies]
        bets = _trailing_sum(in_pos, k)
        hits = _trailing_sum(won, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols.append(np.where(bets > 0, hits / np.maximum(bets, 1.0), 0.5))
        names += [f"hit_{k}h:{s}" for s in ctx.strategies]
    vote_mean = tg.mean(axis=1)
    side = np.sign(ctx.majority)
    active = (tg != 0).sum(axis=1)
    agree = np.where(active > 0, (np.sign(tg) == side[:, None]).sum(axis=1) / np.maximum(active, 1), 0.0)
    logp = np.log(ctx.close)
    trend = [np.concatenate([np.zeros(k), logp[k:] - logp[:-k]]) for k in WINDOWS]
    vol = {k: np.nan_to_num(combiner.realized_vol(ret, k)) for k in WINDOWS}
    with np.errstate(invalid="ignore", divide="ignore"):
        regime = np.where((vol[24] > 0) & (vol[720] > 0), np.log(vol[24] / vol[720]), 0.0)
    funding = (
        ctx.features[:, ctx.feature_names.index("funding_last")]
        if "funding_last" in ctx.feature_names
        else np.zeros(n)
    )
    extra = [ctx.majority, vote_mean, np.abs(vote_mean), agree, *trend, *vol.values(), regime, funding]
    cols.append(np.column_stack(extra))
    names += ["majority", "vote_mean", "vote_abs_mean", "agreement"]
    names += (
        [f"trend_{k}h" for k in WINDOWS] + [f"vol_{k}h" for k in WINDOWS] + ["vol_regime", "funding_last"]
    )
    x = np.hstack(cols)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), tuple(names)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def test_research_rows_unchanged_at_every_bar(ctx: Context) -> None:
    old, old_names = old_features_v2(ctx)
    new, names = rl.features_v2(ctx)
    assert names == old_names == combiner_rl.rl_feature_names(ctx.strategies)
    assert _same_bits(new, old)
    assert np.unique(new[:, names.index("pnl_720h:supertrend")]).size > 1000  # not vacuous


def test_one_live_row_has_the_bits_of_the_whole_history_row(ctx: Context) -> None:
    """Row ``t`` from bars ``t-720 .. t`` and the cumulative P&L at ``t-720``: every bar >= 720."""
    fund = ctx.features[:, ctx.feature_names.index("funding_last")]
    full, cum = combiner_rl.rl_rows(ctx.close, ctx.ret, ctx.targets, ctx.majority, fund)
    w = combiner_rl.RL_ROWS
    for t in range(w - 1, len(ctx)):
        a = t - w + 1
        c = ctx.close[a : t + 1]
        row, wcum = combiner_rl.rl_rows(
            c, combiner.simple_returns(c), ctx.targets[a : t + 1], ctx.majority[a : t + 1],
            fund[a : t + 1], cum[a],
        )  # fmt: skip
        assert row[-1].tobytes() == full[t].tobytes(), f"bar {t}"
        assert wcum[1].tobytes() == cum[a + 1].tobytes()


# --- the artefact and the live decision -------------------------------------------------------

M = 5000  # real hours the live tests read (the signals' warm-up is 2,880 of them)
K = 4200  # the artefact's training range ends at bar K - 1 (1,320 training bars); live from K on
KEY = 'rl:{"horizon":168.0,"seeds":2,"steps":8192}'
Real = tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def fit_data() -> FitData:
    """The last M real hours, every registry strategy's answers, the funding series."""
    candles = load_bundled_candles().iloc[-M:]
    sig = compute_signals(candles, exogenous=training_exogenous())
    return FitData(candles, sig, load_funding(Path(load_settings().exogenous.data_dir)))


@pytest.fixture(scope="module")
def real(fit_data: FitData) -> Real:
    """What the meta consumer is fed per tick (``test_combiner_online.tick_input``'s inputs)."""
    sig = fit_data.signals.restricted(PRICE)
    known = funding_known(sig.index, fit_data.events)
    return fit_data.candles, sig, known, bar_funding(sig.index, fit_data.events, 1e-5).per_bar


def rl_artefact(fit_data: FitData, upto: int = K, key: str = KEY) -> bytes:
    """``export-combiner KEY`` trained up to bar ``upto - 1`` (cached: PPO fits take seconds)."""
    until = pd.Timestamp(fit_data.signals.index[upto - 1])
    cache_key = (key, upto, id(fit_data))
    if cache_key not in _ARTEFACTS:
        _ARTEFACTS[cache_key] = export(key, PRICE, data=replace(fit_data, train_until=until)).artifact
    return _ARTEFACTS[cache_key]


_ARTEFACTS: dict[tuple[str, int, int], bytes] = {}


def research_path(fit_data: FitData, upto: int = K, key: str = KEY) -> np.ndarray:
    """The research's ``rl`` exposure over all N bars (``protocol.prepare``'s context), fitted on the
    export's training bars: what the artefact must decide live from bar ``upto`` on."""
    from config import DEFAULT_FUNDING_RATE_HOURLY, FillPrice
    from training.ledger import CostModel

    sig = fit_data.signals.restricted(PRICE)
    costs = CostModel.configured()
    gap = open_gaps(fit_data.candles) if costs.fill_price == FillPrice.NEXT_OPEN else None
    ctx = build_context(
        fit_data.candles, sig, _baseline_exposures(sig)["majority_vote"],
        funding_known(sig.index, fit_data.events),
        bar_funding(sig.index, fit_data.events, DEFAULT_FUNDING_RATE_HOURLY).per_bar, costs.cost_rate,
    )  # fmt: skip
    ctx = replace(ctx, gap=gap)
    bars = train_bars(sig, pd.Timestamp(sig.index[upto - 1]))
    return exposure(parse_key(key), ctx, bars)


def test_live_rl_equals_the_research_path_bar_by_bar(fit_data: FitData, real: Real) -> None:
    """Selected at bar K (fallback before): every live exposure from K on == the research's greedy
    ensemble path over all bars (fitted on the same training bars), bit for bit."""
    art = rl_artefact(fit_data)
    research = research_path(fit_data)
    chosen, fallback = choose(art), choose(None)
    live, reasons, carry = run_live(real, lambda t: chosen if t >= K else fallback, range(K - 3, M))
    live = live[3:]
    k = np.flatnonzero(live != research[K:])
    assert k.size == 0, f"first difference at bar {K + k[0]}: {live[k[0]]} vs {research[K + k[0]]}"
    assert np.unique(live).size >= 2  # not vacuous: it moves
    assert all(r == "" for r in reasons[3:])
    assert carry.online is not None and carry.online.model == chosen.combiner.fingerprint  # type: ignore[union-attr]
    assert len(carry.mark.closes) == combiner_rl.RL_ROWS  # type: ignore[union-attr]
