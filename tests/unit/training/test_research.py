"""The research protocol (issue 16): CPCV splits and paths, Hedge, funding by publication time,
the gates on noise, the DP oracle, the DSR update, meta-labeling's purge, SPA, the worker pool,
the results DB, and an end-to-end ``--quick`` run on real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.signals import SignalArrays
from training.cli import app
from training.research import cpcv
from training.research.candidates import hedge_weights, net_returns, open_gaps
from training.research.funding import HOUR_NS, FundingEvents, bar_funding
from training.research.learners import dsr_step, dsr_trader, label_rows, metalabel_fit, oracle_path
from training.research.protocol import Settings, assemble, run_research
from training.research.stats import bootstrap_sharpes, reality_check, sharpe_cols, spa_test

N, START, GROUPS, K, PURGE, EMBARGO = 1200, 100, 6, 2, 30, 12


def test_cpcv_train_and_test_never_overlap_and_keep_purge_and_embargo() -> None:
    splits = cpcv.cpcv_splits(N, groups=GROUPS, test_groups=K, start=START, purge=PURGE, embargo=EMBARGO)
    assert len(splits) == math.comb(GROUPS, K) == 15
    bounds = cpcv.group_bounds(N, GROUPS, START)
    for sp in splits:
        assert not np.intersect1d(sp.train, sp.test).size
        assert sp.train.min() >= START
        for g in sp.test_groups:
            a, b = bounds[g]
            # no training bar within PURGE before a test group, or PURGE + EMBARGO after it
            assert not np.any((sp.train >= a - PURGE) & (sp.train < b + PURGE + EMBARGO))
        # and everything else is kept
        kept = np.ones(N, dtype=bool)
        kept[:START] = False
        for g in sp.test_groups:
            a, b = bounds[g]
            kept[max(START, a - PURGE) : min(N, b + PURGE + EMBARGO)] = False
        assert np.array_equal(np.flatnonzero(kept), sp.train)


def test_each_group_is_held_out_n_paths_times_and_paths_cover_every_bar_once() -> None:
    splits = cpcv.cpcv_splits(N, groups=GROUPS, test_groups=K, start=START, purge=PURGE, embargo=EMBARGO)
    held = np.zeros(GROUPS, dtype=int)
    for sp in splits:
        held[list(sp.test_groups)] += 1
    assert held.tolist() == [cpcv.n_paths(GROUPS, K)] * GROUPS == [5] * GROUPS
    path_map = cpcv.paths(splits, GROUPS)
    assert len(path_map) == 5
    used = sorted((i, g) for row in path_map for g, i in enumerate(row))
    assert used == sorted((i, g) for i, sp in enumerate(splits) for g in sp.test_groups)
    # tag each split's test returns with the bar number: each path must read bars START..N-1 once
    per_split = [sp.test.astype(np.float64) for sp in splits]
    bounds = cpcv.group_bounds(N, GROUPS, START)
    assembled = assemble(per_split, splits, path_map, bounds)
    assert assembled.shape == (5, N - START)
    for p in range(5):
        assert np.array_equal(assembled[p], np.arange(START, N, dtype=np.float64))


def test_inner_folds_never_touch_the_outer_test_groups() -> None:
    splits = cpcv.cpcv_splits(N, groups=GROUPS, test_groups=K, start=START, purge=PURGE, embargo=EMBARGO)
    bounds = cpcv.group_bounds(N, GROUPS, START)
    for sp in splits:
        inner = cpcv.inner_splits(sp, N, bounds, PURGE, EMBARGO)
        assert len(inner) == GROUPS - K
        for js in inner:
            assert np.isin(js.train, sp.train).all() and np.isin(js.test, sp.train).all()
            assert not np.intersect1d(js.train, js.test).size


def test_hedge_update_matches_a_hand_computed_case() -> None:
    # two experts: always long, always short; bar 1 returns +10 %, bar 2 returns -5 %
    experts = np.array([[1.0, -1.0]] * 3)
    ret = np.array([0.0, 0.10, -0.05])
    w = hedge_weights(experts, ret, eta=2.0)
    assert w[0] == pytest.approx([0.5, 0.5])
    # after bar 1: logw = 2 * [0.1, -0.1] -> w_long = 1 / (1 + e^-0.4)
    assert w[1, 0] == pytest.approx(1 / (1 + math.exp(-0.4)))
    # after bar 2: logw = [0.2 - 0.1, -0.2 + 0.1] = [0.1, -0.1] -> w_long = 1 / (1 + e^-0.2)
    assert w[2, 0] == pytest.approx(1 / (1 + math.exp(-0.2)))
    # with decay the old evidence fades: logw[2] = 0.5 * [0.2, -0.2] + 2 * [-0.05, 0.05]
    wd = hedge_weights(experts, ret, eta=2.0, decay=0.5)
    assert wd[2, 0] == pytest.approx(1 / (1 + math.exp(-0.0)))


def _hours(n: int, start: str = "2021-01-01T00:00Z") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="h", tz="UTC")


def test_funding_charges_the_rate_published_by_settlement_only() -> None:
    index = _hours(24)
    t0 = index[0].value
    settle = np.array([t0 + 8 * HOUR_NS, t0 + 16 * HOUR_NS])
    rate = np.array([1e-4, 5e-4])
    on_time = FundingEvents(settle, rate, settle.copy(), "test")
    f = bar_funding(index, on_time, default_hourly=0.0)
    # settlement at 08:00 is the close of bar 07:00 (held from 07:00 to 08:00)
    assert f.per_bar[7] == pytest.approx(1e-4) and f.per_bar[15] == pytest.approx(5e-4)
    assert f.per_bar.sum() == pytest.approx(6e-4)
    # the second rate published one hour late: at 16:00 only the first rate is known
    late = FundingEvents(settle, rate, settle + np.array([0, HOUR_NS]), "test")
    g = bar_funding(index, late, default_hourly=0.0)
    assert g.per_bar[15] == pytest.approx(1e-4)
    assert not np.allclose(f.per_bar, g.per_bar)
    # and a long position pays it, a short receives it
    e = np.ones(24)
    r = net_returns(e, np.zeros(24), f.per_bar, cost_rate=0.0)
    assert r[15] == pytest.approx(-5e-4)
    assert net_returns(-e, np.zeros(24), f.per_bar, cost_rate=0.0)[15] == pytest.approx(5e-4)


def test_reality_check_separates_an_edge_from_noise() -> None:
    rng = np.random.default_rng(1)
    t = 4000
    noise = rng.normal(0, 0.01, size=(t, 8))
    edge = rng.normal(0.002, 0.01, size=t)
    bench = np.zeros(t)
    m = np.column_stack([noise, edge, bench])
    point, boot = sharpe_cols(m), bootstrap_sharpes(m, reps=300, block=24)
    tried = np.arange(9)
    assert reality_check(point, boot, bench=9, tried=tried, selected=8)["p_corrected"] < 0.05
    best_noise = int(np.argmax(point[:8]))
    assert reality_check(point, boot, bench=9, tried=tried, selected=best_noise)["p_corrected"] > 0.05


def _noise_market(n: int, s: int, seed: int) -> tuple[pd.DataFrame, SignalArrays]:
    rng = np.random.default_rng(seed)
    index = _hours(n, "2019-01-01T00:00Z")
    close = 10_000 * np.exp(np.cumsum(rng.normal(0, 0.008, n)))
    candles = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index
    )
    # strategies that hold random positions for random spells: no information about the future
    target = np.repeat(rng.integers(-1, 2, size=(n // 48 + 1, s)), 48, axis=0)[:n].astype(np.int8)
    sig = SignalArrays(
        strategies=tuple(f"s{j}" for j in range(s)),
        index=pd.DatetimeIndex(index, name="date"),
        target=target,
        event=np.zeros((n, s), dtype=np.int8),
        confidence=np.ones((n, s)),
        age=np.zeros((n, s), dtype=np.int64),
        present=np.ones((n, s), dtype=bool),
        warmup=200,
    )
    return candles, sig


def test_gates_reject_a_candidate_on_data_with_no_edge(tmp_path: Path) -> None:
    candles, sig = _noise_market(6000, 4, seed=7)
    settings = Settings(purge=48, bootstrap_reps=200, quick=True)
    summary = run_research(candles, sig, None, tmp_path / "run", settings)
    assert summary["selected_passes"] is False
    assert summary["trials_logged"] == 15 * len(summary["configs"])
    assert not any(g["significant"] and g["ahead"] for g in summary["gates"].values())
    # resumable: a second run skips every logged trial and reproduces the result
    lines = (tmp_path / "run" / "trials.jsonl").read_text().splitlines()
    again = run_research(candles, sig, None, tmp_path / "run", settings)
    assert (tmp_path / "run" / "trials.jsonl").read_text().splitlines() == lines
    assert again["sharpe"] == summary["sharpe"]


def test_quick_research_run_on_real_data_writes_the_report(tmp_path: Path) -> None:
    out, rep = tmp_path / "run", tmp_path / "report"
    res = CliRunner().invoke(
        app,
        [
            "research",
            "--quick",
            "--last-bars",
            "8000",
            "--out",
            str(out),
            "--report-dir",
            str(rep),
            "--results-db",
            f"sqlite:///{tmp_path / 'results.db'}",
        ],
    )
    assert res.exit_code == 0, res.output
    text = (rep / "REPORT.md").read_text()
    assert "## Gates for the selected series" in text and "majority_vote" in text
    for png in ("equity_paths.png", "sharpe_paths.png", "pbo_logits.png", "bootstrap_intervals.png"):
        assert (rep / png).stat().st_size > 1000, png
    summary = json.loads((out / "summary.json").read_text())
    assert summary["costs"]["funding_covered_share"] > 0.99  # the real series, not the constant
    assert "p (SPA)" in text and "Upper bound" in text
    # the default block is Politis-White's, chosen on the tested series and named in the report
    assert summary["bootstrap"]["method"] == "politis-white"
    assert f"mean block {summary['bootstrap']['mean_block']:.0f} h (Politis-White" in text
    # the hindsight oracle bounds every honest series from above
    assert summary["oracle"]["sharpe"] > max(summary["sharpe"].values())
    assert summary["results_run_id"] in res.output
    assert set(summary["gates"]) == {
        "majority_vote",
        "equal_weight",
        "buy_and_hold",
        "flat",
        "ex_ante_best_single",
    }


# --- round 2: oracle, direct reinforcement, meta-labeling, SPA, worker pool, results DB ---------


def test_dp_oracle_stays_put_through_small_moves_and_reverses_on_big_ones() -> None:
    cost = 0.0006  # 5 bp fee + 1 bp slippage per unit traded
    zero = np.zeros(5)
    small = np.array([0.0, 0.0004, -0.0004, 0.0004, -0.0004])  # each move smaller than a round trip
    e, total = oracle_path(small, zero, cost)
    assert np.all(e == 0.0) and total == 0.0
    # +1 %, +1 %, -2 %: long for two bars, then reverse (2 units traded) for the last one
    big = np.array([0.0, 0.01, 0.01, -0.02, 0.0])
    e, total = oracle_path(big, zero, cost)
    assert e[:3].tolist() == [1.0, 1.0, -1.0]
    assert total == pytest.approx(0.04 - 3 * cost)
    # the DP value is what the ledger scores for that path
    assert net_returns(e, big, zero, cost).sum() == pytest.approx(total)
    # funding large enough to eat the long's gain turns the first leg flat or short
    fund = np.array([0.0, 0.02, 0.0, 0.0, 0.0])
    e2, _ = oracle_path(big, fund, cost)
    assert e2[0] <= 0.0


def test_dsr_update_matches_a_hand_computed_case() -> None:
    # A = 0.01, B = 0.0005, R = 0.02, eta = 0.1: dA = 0.01, dB = -0.0001, B - A^2 = 0.0004
    d, d_dr, a, b = dsr_step(0.01, 0.0005, 0.02, 0.1)
    assert d == pytest.approx((0.0005 * 0.01 + 0.5 * 0.01 * 0.0001) / 0.0004**1.5)  # 0.6875
    assert d == pytest.approx(0.6875)
    assert d_dr == pytest.approx((0.0005 - 0.01 * 0.02) / 0.0004**1.5)  # 37.5
    assert (a, b) == (pytest.approx(0.011), pytest.approx(0.00049))
    # the derivative is the finite difference of D in R
    h = 1e-7
    assert (dsr_step(0.01, 0.0005, 0.02 + h, 0.1)[0] - d) / h == pytest.approx(d_dr, rel=1e-4)


def test_dsr_trader_learns_a_persistent_signal_and_is_causal() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.normal(size=(n, 2))
    ret = np.zeros(n)
    ret[1:] = 0.004 * x[:-1, 0] + rng.normal(0, 0.002, n - 1)  # feature 0 known at t predicts t+1
    pos = dsr_trader(x, ret, np.zeros(n), 0.0, rho=0.05, seed=0)
    late = slice(n // 2, n - 1)
    assert np.corrcoef(pos[late], x[late, 0])[0, 1] > 0.5
    # causality: changing the future does not change the past positions
    ret2 = ret.copy()
    ret2[3000:] *= -1
    pos2 = dsr_trader(x, ret2, np.zeros(n), 0.0, rho=0.05, seed=0)
    assert np.array_equal(pos[:3000], pos2[:3000]) and not np.array_equal(pos, pos2)


def test_metalabeling_never_reads_a_label_across_the_purge() -> None:
    rng = np.random.default_rng(5)
    n, horizon = 3000, 24
    feats = rng.normal(size=(n, 3))
    majority = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    ret = rng.normal(0, 0.01, n)
    train = np.concatenate([np.arange(0, 1000), np.arange(1500, 3000)])  # test block 1000..1499
    rows = label_rows(train, n, horizon)
    in_train = np.zeros(n, dtype=bool)
    in_train[train] = True
    for t in rows:
        assert in_train[t + 1 : t + horizon + 1].all()
    assert rows.max() <= n - 1 - horizon and 1000 - horizon - 1 in rows and 1000 - horizon not in rows
    beta, used = metalabel_fit(feats, majority, ret, train, horizon, lam=0.1)
    # scrambling the test block's returns leaves the fitted model unchanged ...
    shuffled = ret.copy()
    shuffled[1000:1500] = rng.normal(0, 0.05, 500)
    assert np.array_equal(metalabel_fit(feats, majority, shuffled, train, horizon, lam=0.1)[0], beta)
    # ... while the same change to training returns does change it (the check can fail)
    moved = ret.copy()
    moved[2000:2500] = rng.normal(0, 0.05, 500)
    assert not np.array_equal(metalabel_fit(feats, majority, moved, train, horizon, lam=0.1)[0], beta)
    assert used.size > 2000


def test_spa_separates_an_edge_from_noise_and_ignores_hopeless_candidates() -> None:
    rng = np.random.default_rng(1)
    t = 4000
    noise = rng.normal(0, 0.01, size=(t, 8))
    edge = rng.normal(0.0012, 0.01, size=t)
    bad = rng.normal(-0.003, 0.01, size=(t, 30))  # far below the benchmark
    bench = np.zeros(t)
    m = np.column_stack([noise, edge, bench, bad])
    point, boot = sharpe_cols(m), bootstrap_sharpes(m, reps=300, block=24)
    tried = np.array([*range(9), *range(10, 40)])
    spa = spa_test(point, boot, bench=9, tried=tried, selected=8, n_obs=t)
    rc = reality_check(point, boot, bench=9, tried=tried, selected=8)
    assert spa["p_spa"] < 0.05
    assert spa["p_spa"] <= rc["p_corrected"]  # the RC's least-favourable null pays for the 30 duds
    best_noise = int(np.argmax(point[:8]))
    assert spa_test(point, boot, bench=9, tried=tried, selected=best_noise, n_obs=t)["p_spa"] > 0.05


def test_worker_pool_gives_the_serial_log_and_the_results_db_holds_one_copy(tmp_path: Path) -> None:
    from training.results import ResultsDB

    candles, sig = _noise_market(3000, 3, seed=11)
    settings = Settings(purge=48, bootstrap_reps=50, quick=True)
    db = ResultsDB(f"sqlite:///{tmp_path / 'results.db'}", tmp_path / "artifacts")
    serial = run_research(candles, sig, None, tmp_path / "w1", settings, workers=1, results=db)
    pooled = run_research(candles, sig, None, tmp_path / "w2", settings, workers=2, results=db)
    assert (tmp_path / "w1" / "trials.jsonl").read_text() == (tmp_path / "w2" / "trials.jsonl").read_text()
    assert serial["sharpe"] == pooled["sharpe"]
    # one run in the DB (same data and splits -> same research run id), no duplicate rows
    run_id = serial["results_run_id"]
    assert pooled["results_run_id"] == run_id and len(db.runs()) == 1
    rows = db.evaluations(run_id=run_id)
    keys = [(r.candidate, r.window, r.fold) for r in rows]
    assert len(keys) == len(set(keys))
    assert sum(r.window == "cpcv" for r in rows) == serial["trials_logged"] == 15 * len(serial["configs"])
    test = {r.candidate: r for r in db.evaluations(run_id=run_id, window="test")}
    assert {"buy_and_hold", "flat", "majority_vote", "equal_weight", "ex_ante_best_single"} <= set(test)
    assert {f"single:{s}" for s in sig.strategies} <= set(test)
    assert set(serial["configs"]) | {"selected"} <= set(test)
    assert test["majority_vote"].kind == "baseline" and test["selected"].kind == "candidate"
    assert test["selected"].metrics["sharpe"] == pytest.approx(serial["sharpe"]["selected"])
    # nothing passes on noise, so nothing is marked
    assert not any(r.proposed for r in rows)
    assert [r.kind for r in db.evaluations(run_id=run_id, window="upper_bound")] == ["bound"]
    db.close()
    # the leaderboard command lists baselines and candidates of that run side by side
    res = CliRunner().invoke(
        app, ["leaderboard", "--run", run_id, "--results-db", f"sqlite:///{tmp_path / 'results.db'}"]
    )
    assert res.exit_code == 0, res.output
    assert "majority_vote" in res.output and "selected" in res.output and "dsr:" in res.output


def test_next_open_fill_hand_case_and_signal_close_identity() -> None:
    """ADR 0017 in the research ledger: the new exposure is filled at the next open, the old one
    carries the gap; with every open equal to the previous close it is the close fill, bit for bit."""
    candles = pd.DataFrame({"open": [100.0, 105.0, 110.0, 120.0], "close": [100.0, 110.0, 121.0, 121.0]})
    close = candles["close"].to_numpy()
    ret = np.zeros(4)
    ret[1:] = close[1:] / close[:-1] - 1.0
    gap = open_gaps(candles)
    assert gap == pytest.approx([0.0, 0.05, 0.0, 120.0 / 121.0 - 1.0])
    e = np.array([1.0, 1.0, 0.0, 0.0])  # long decided at close 0, flat decided at close 2
    fee = 0.001
    r = net_returns(e, ret, np.zeros(4), fee, gap=gap)
    # bar 1: bought at open 105, marked at close 110; bar 2: 110 -> 121; bar 3: sold at open 120
    assert r == pytest.approx([0.0, 110 / 105 - 1 - fee, 121 / 110 - 1, 120 / 121 - 1 - fee])
    r_close = net_returns(e, ret, np.zeros(4), fee)
    assert r_close == pytest.approx([0.0, 0.1 - fee, 0.1, -fee])
    assert not np.allclose(r, r_close)
    # opens equal to the previous close: the two fill models agree exactly
    flat_gap = candles.assign(open=[100.0, 100.0, 110.0, 121.0])
    rng = np.random.default_rng(3)
    ex = np.round(rng.uniform(-1, 1, size=(4, 5)) * 4) / 4
    assert np.array_equal(
        net_returns(ex, ret, np.zeros(4), fee, gap=open_gaps(flat_gap)),
        net_returns(ex, ret, np.zeros(4), fee),
    )
