"""The research protocol (issue 16): CPCV splits and paths, Hedge, funding by publication time,
the gates on noise, and an end-to-end ``--quick`` run on real data."""

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
from training.research.candidates import hedge_weights, net_returns
from training.research.funding import HOUR_NS, FundingEvents, bar_funding
from training.research.protocol import Settings, assemble, run_research
from training.research.stats import bootstrap_sharpes, reality_check, sharpe_cols

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
        ["research", "--quick", "--last-bars", "8000", "--out", str(out), "--report-dir", str(rep)],
    )
    assert res.exit_code == 0, res.output
    text = (rep / "REPORT.md").read_text()
    assert "## Gates for the selected series" in text and "majority_vote" in text
    for png in ("equity_paths.png", "sharpe_paths.png", "pbo_logits.png", "bootstrap_intervals.png"):
        assert (rep / png).stat().st_size > 1000, png
    summary = json.loads((out / "summary.json").read_text())
    assert summary["costs"]["funding_covered_share"] > 0.99  # the real series, not the constant
    assert set(summary["gates"]) == {
        "majority_vote",
        "equal_weight",
        "buy_and_hold",
        "flat",
        "ex_ante_best_single",
    }
