"""The RL combiner (ADR 0027): FeatureSpec v2 rows and the greedy step, one code for research and live.

``old_features_v2`` below is the research code before ADR 0027 (a verbatim copy); the research rows
must not move at any bar of several thousand real hours, and one live row computed from the last
721 bars with the carried cumulative P&L must have the bits of the whole-history row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common import combiner, combiner_rl
from common.dataset import load_bundled_candles
from common.signals import SignalArrays
from meta_consumer.decide import Carry, decide_tick
from ops.replay_compare import combiner_fractions
from tests.unit.meta.real_data import PRICE, funding_events, real_context, vote_context
from tests.unit.meta.test_combiner_online import choose, run_live, tick_input
from training.research import rl
from training.research.candidates import Context, exposure, open_gaps
from training.research.export import FitData, export, parse_key, train_bars
from training.research.funding import bar_funding
from training.research.protocol import funding_known
from training.signals import compute_signals, training_exogenous

N = 4000
WINDOWS = rl.WINDOWS


@pytest.fixture(scope="module")
def ctx() -> Context:
    """The last 4,000 real hours, the price strategies, published and per-bar funding, 10 bp cost."""
    return real_context(N)


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
    return FitData(candles, sig, funding_events())


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
    ctx = vote_context(
        fit_data.candles, sig, funding_known(sig.index, fit_data.events),
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


def synthetic_rl_artefact(
    close: np.ndarray, targets: np.ndarray, strategies: tuple[str, ...], seeds: int = 2, seed: int = 0
) -> bytes:
    """An ``rl`` artefact without torch: random actors (tanh hidden layer) on the FeatureSpec v2 of
    ``close`` / ``targets`` (the history before live), its statistics and the state at its end."""
    majority = np.sign(targets.sum(axis=1))
    x, cum = combiner_rl.rl_rows(
        close, combiner.simple_returns(close), targets, majority, np.zeros(close.size)
    )
    rows = np.arange(combiner_rl.RL_ROWS, close.size)
    mu, sd, keep = rl.standardization(x, rows)
    rng = np.random.default_rng(seed)
    width = keep.size + len(combiner_rl.RL_TARGETS)
    actors = [
        [(rng.normal(0, 0.5, (width, 16)), rng.normal(0, 0.1, 16), "tanh"),
         (rng.normal(0, 1.0, (16, 5)), np.zeros(5), "identity")]
        for _ in range(seeds)
    ]  # fmt: skip
    w = combiner_rl.RL_ROWS - 1
    state = combiner_rl.RlState(cum[-w], targets[-w:], tuple(2 for _ in range(seeds)))
    params = combiner_rl.rl_params(
        horizon=168.0, steps=1, seeds=range(seeds), names=combiner_rl.rl_feature_names(strategies),
        keep=keep, mu=mu, sd=sd, actors=actors, state=state,
    )  # fmt: skip
    return combiner.export_combiner("rl", strategies, params, provenance={"synthetic": True})


def continued(real: Real, art: bytes, start: int, stop: int = M) -> np.ndarray:
    """The vectorized side (``ops.replay_compare.combiner_fractions``) seeded from the artefact's
    state at bar ``start``: what the live decisions from ``start`` on must be."""
    candles, sig, fund, _ = real
    comb = choose(art).combiner
    assert comb is not None
    bars = np.arange(start, stop)
    out, cold = combiner_fractions(candles, sig, comb, bars, np.full(bars.size, 10_000), fund)
    assert not cold.any()
    return out


def test_restart_from_the_serialized_carry_continues_exactly(fit_data: FitData, real: Real) -> None:
    """Ticks K..M in one go == K..j, the Carry through JSON (as the decision row stores it), j+1..M;
    a tick decided again from the same carry gives the same decision and state."""
    chosen = choose(rl_artefact(fit_data))
    j = K + 300
    pre = run_live(real, lambda t: choose(None), range(K - 5, K))[2]
    once, _, c1 = run_live(real, lambda t: chosen, range(K, M), pre)
    a, _, mid = run_live(real, lambda t: chosen, range(K, j), pre)
    mid = Carry.from_dict(json.loads(json.dumps(mid.to_dict())))
    b, _, c2 = run_live(real, lambda t: chosen, range(j, M), mid)
    assert np.array_equal(np.concatenate([a, b]), once)
    assert json.dumps(c1.to_dict()) == json.dumps(c2.to_dict())
    again = decide_tick(tick_input(real, j), mid, chosen, PRICE, step=0.25, max_exposure=1.0)
    first = decide_tick(tick_input(real, j), mid, chosen, PRICE, step=0.25, max_exposure=1.0)
    assert again.carry.to_dict() == first.carry.to_dict() and again.target_exposure == b[0]
    assert set(c1.to_dict()["online"]["state"]) == {"cum", "votes", "held"}


def test_hot_reload_gap_and_cold_ticks(fit_data: FitData, real: Real) -> None:
    """A hot reload to another rl artefact continues from that artefact's state; a tick without its
    bar holds; a bar after missed bars is stepped and said; too few closes: flat, said."""
    candles, sig, _, _ = real
    one = rl_artefact(fit_data)
    two = synthetic_rl_artefact(
        candles["close"].to_numpy()[: K - 200], sig.target[: K - 200].astype(float), PRICE
    )
    c1, c2 = choose(one), choose(two)
    m = K + 300
    live, reasons, carry = run_live(real, lambda t: c1 if t < m else c2, range(K, M))
    assert np.array_equal(live[: m - K], research_path(fit_data)[K:m])
    assert np.array_equal(live[m - K :], continued(real, two, m))  # two's own state, seeded at m
    assert np.unique(live[m - K :]).size >= 2 and all(r == "" for r in reasons)
    o = decide_tick(replace(tick_input(real, M - 1), bar=None), carry, c2, PRICE, step=0.25, max_exposure=1.0)
    assert o.carry.online == carry.online and o.target_exposure == live[-1]
    assert "no new bar: rl state held" in o.reason
    _, _, c = run_live(real, lambda t: c2, range(m, m + 10))
    skipped = decide_tick(tick_input(real, m + 12), c, c2, PRICE, step=0.25, max_exposure=1.0)
    assert "does not follow the state's last bar" in skipped.reason
    short = tick_input(real, m)
    assert short.bar is not None
    short = replace(short, bar=replace(short.bar, closes=short.bar.closes[-700:]))
    cold = decide_tick(short, Carry(), c2, PRICE, step=0.25, max_exposure=1.0)
    assert cold.target_exposure == 0.0 and cold.carry.online is None
    assert "700 closes of 721: rl FeatureSpec v2 unknown" in cold.reason


def test_no_lookahead_live_vectorized_and_export(fit_data: FitData, real: Real) -> None:
    """Prices, answers and funding changed after bar ``cut``: no decision at or before it moves
    (live and vectorized), and an export up to ``cut`` has the same bytes."""
    candles, sig, fund, charge = real
    cut = K + 200
    c2 = candles.copy()
    c2.iloc[cut + 1 :, c2.columns.get_loc("close")] *= 1.3
    tg = sig.target.copy()
    tg[cut + 1 :] = -tg[cut + 1 :]
    sig2 = replace(sig, target=tg)
    fund2 = fund.copy()
    fund2[cut + 1 :] += 0.01
    real2 = (c2, sig2, fund2, charge)
    art = synthetic_rl_artefact(candles["close"].to_numpy()[:K], sig.target[:K].astype(float), PRICE, 3, 7)
    v1, v2 = continued(real, art, K), continued(real2, art, K)
    assert np.array_equal(v1[: cut - K + 1], v2[: cut - K + 1]) and not np.array_equal(v1, v2)
    ch = choose(art)
    l1 = run_live(real, lambda t: ch, range(K, M))[0]
    l2 = run_live(real2, lambda t: ch, range(K, M))[0]
    assert np.array_equal(l1[: cut - K + 1], l2[: cut - K + 1]) and not np.array_equal(l1, l2)
    assert np.array_equal(l1, v1)
    # the export: the same data give the same bytes; bars after --train-until do not change them
    key = 'rl:{"horizon":72.0,"seed":3,"steps":8192}'
    until = pd.Timestamp(sig.index[cut])
    a = export(key, PRICE, data=replace(fit_data, train_until=until)).artifact
    assert a == export(key, PRICE, data=replace(fit_data, train_until=until)).artifact
    full2 = fit_data.signals
    col = [full2.strategies.index(s) for s in PRICE]
    t2 = full2.target.copy()
    t2[cut + 1 :, col] = -t2[cut + 1 :, col]
    changed = replace(fit_data, candles=c2, signals=replace(full2, target=t2), train_until=until)
    assert export(key, PRICE, data=changed).artifact == a
    doc = json.loads(a)
    assert doc["kind"] == "rl" and doc["provenance"]["train"]["last_bar"] == until.isoformat()
    assert doc["provenance"]["config"] == key and len(doc["params"]["actors"]) == 1


def _tampered(art: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(art)
    edit(doc["params"])
    doc["fingerprint"] = combiner.fingerprint(doc)
    return combiner._canonical(doc)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda p: p.__setitem__(key, value)


@pytest.mark.parametrize(
    "edit,why",
    [
        (lambda p: p["features"].reverse(), "are not columns of this code's row"),
        (lambda p: p["features"].__setitem__(0, "vote:nobody"), "are not columns of this code's row"),
        (lambda p: p["mu"].pop(), "mu must be"),
        (lambda p: p["sd"].__setitem__(0, 0.0), "sd must be > 1e-12"),
        (lambda p: p["actors"][0][0][0].pop(), "w must have"),
        (lambda p: p["actors"][0][1].__setitem__(1, [0.0] * 4), "w rows and b must be"),
        (lambda p: p["actors"][0][1].__setitem__(2, "softmax"), "activation in"),
        (lambda p: p["actors"][0].pop(), "output width 16"),
        (lambda p: p["held"].__setitem__(0, 5.0), "held must be"),
        (lambda p: p["held"].pop(), "held must be 2 target"),
        (lambda p: p["votes"].__setitem__(0, p["votes"][0][1:]), "votes must be"),
        (lambda p: p["votes"].__setitem__(0, "x" * 720), "votes must be"),
        (lambda p: p["cum"].pop(), "cum must be"),
        (_set("horizon", -1.0), "horizon must be a number > 0"),
        (lambda p: p.pop("steps"), "rl params"),
        (_set("extra", 1.0), "rl params"),
    ],
)
def test_loader_refuses_what_this_code_cannot_run(edit: Callable[[dict[str, Any]], None], why: str) -> None:
    close = load_bundled_candles()["close"].to_numpy()[-1000:]
    votes = np.sign(np.sin(np.arange(1000)[:, None] / np.array([30.0, 50.0, 70.0])))
    art = synthetic_rl_artefact(close, votes, ("a", "b", "c"), seeds=2)
    assert combiner.parse(art, "ok").rl is not None
    with pytest.raises(combiner.CombinerError, match=why):
        combiner.parse(_tampered(art, edit), "bad")
    doc = json.loads(art)
    doc["params"]["mu"][0] += 1.0  # edited without a re-export: the fingerprint no longer matches
    with pytest.raises(combiner.CombinerError, match="fingerprint"):
        combiner.parse(combiner._canonical(doc), "edited")


def test_live_side_runs_an_rl_artefact_without_torch(tmp_path: Path) -> None:
    """The meta consumer loads and steps an rl artefact in a fresh interpreter that never imports
    torch (the policy is numpy; torch stays in the training process that fitted it)."""
    import subprocess
    import sys

    close = load_bundled_candles()["close"].to_numpy()[-1000:]
    votes = np.sign(np.sin(np.arange(1000)[:, None] / np.array([30.0, 50.0, 70.0])))
    path = tmp_path / "rl.json"
    path.write_bytes(synthetic_rl_artefact(close, votes, ("a", "b", "c")))
    np.save(tmp_path / "close.npy", close[-combiner_rl.RL_ROWS :])
    code = f"""
import sys, numpy as np
import meta_consumer.service
from common.combiner import parse
from common.events import Target
comb = parse(open({str(path)!r}, "rb").read(), "m")
state, frac = comb.step(comb.initial_state(), {{"a": Target.LONG}}, np.load({str(tmp_path / "close.npy")!r}))
assert -1 <= frac <= 1 and set(state) == {{"cum", "votes", "held"}}
assert "torch" not in sys.modules and "elegantrl" not in sys.modules, "torch imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_last_window_std_has_the_bits_of_window_std() -> None:
    """The live step's one-value std (``np.add.accumulate``) == ``window_std``'s loop, bit for bit,
    on real hourly log returns and on awkward values (signed zeros, mixed magnitudes)."""
    from common.observation import last_window_std, window_std

    lr = np.diff(np.log(load_bundled_candles()["close"].to_numpy()[-6000:]))
    rng = np.random.default_rng(27)
    odd = np.concatenate([[-0.0, 0.0, -0.0], rng.normal(0, 1, 800) * 10.0 ** rng.integers(-12, 6, 800)])
    for x in (lr, odd, np.full(30, -0.0)):
        for w in (2, 3, 24, 25, 168, 720):
            if x.size < w:
                continue
            for end in range(w, x.size + 1, max(1, x.size // 37)):
                for ddof in (0, 1):
                    got = last_window_std(x[:end], w, ddof)
                    want = float(window_std(x[:end], w, ddof)[-1])
                    assert np.float64(got).tobytes() == np.float64(want).tobytes(), (w, end, ddof)
