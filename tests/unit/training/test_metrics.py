"""Metrics against values worked out by hand, and the overfitting statistics on built cases."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from config import FillPrice
from training.ledger import CostModel, simulate
from training.metrics import (
    cagr,
    deflated_sharpe,
    max_drawdown,
    pbo_cscv,
    position_returns,
    sharpe,
    sortino,
    summarize,
)

YEAR = math.sqrt(24 * 365)


def test_sharpe_and_sortino_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03])
    # mean 0.02/3; sample variance ((1/300)^2 + (8/300)^2 + (7/300)^2) / 2 = 114/180000
    assert sharpe(r) == pytest.approx((0.02 / 3) / math.sqrt(114 / 180_000) * YEAR, rel=1e-12)
    # downside deviation sqrt((0 + 0.0004 + 0) / 3)
    assert sortino(r) == pytest.approx((0.02 / 3) / math.sqrt(0.0004 / 3) * YEAR, rel=1e-12)
    assert sharpe(np.zeros(5)) == 0.0 and sortino(np.array([0.01, 0.02])) == 0.0


def test_drawdown_and_cagr_by_hand() -> None:
    assert max_drawdown(np.array([1.0, 1.2, 0.9, 1.1, 0.6, 1.3])) == pytest.approx(0.5)
    assert max_drawdown(np.array([1.0, 1.1, 1.2])) == 0.0
    two_years = np.geomspace(1.0, 1.21, 2 * 24 * 365 + 1)  # +21 % in two years = +10 % a year
    assert cagr(two_years) == pytest.approx(0.10, rel=1e-9)


def test_positions_trades_turnover_by_hand() -> None:
    exposure = np.array([0.0, 1, 1, 0, -1, -1, 1])
    net = np.array([0.0, 0.1, -0.05, -0.001, 0.02, 0.01, -0.03])
    got = position_returns(exposure, net)
    assert got == pytest.approx([1.1 * 0.95 * 0.999 - 1, 1.02 * 1.01 - 1, -0.03])
    close = np.array([100.0, 100, 110, 115.5, 115.5, 110, 105, 100])
    ledger = simulate(
        exposure,
        close,
        np.ones(8),
        CostModel(
            taker_fee=0.001, slippage_bps=0.0, funding_rate_hourly=0.0, fill_price=FillPrice.SIGNAL_CLOSE
        ),  # closes only: the fill model is not under test
    )
    m = summarize(ledger)
    assert m["trades"] == 4 and m["turnover"] == pytest.approx(5.0)
    assert m["time_in_market"] == pytest.approx(5 / 7)
    assert m["win_rate"] == pytest.approx(2 / 3)  # long +, short +, last long -
    # bar 0 flat; bar 1 long 100 -> 110 less the opening fee; bar 3 flat, paying the closing fee
    assert ledger.net[1] == pytest.approx(0.1 - 0.001)
    assert ledger.net[3] == pytest.approx(-0.001)
    assert ledger.net[4] == pytest.approx(-(110 / 115.5 - 1) - 0.001)  # short earns the fall
    assert m["fees_paid"] == pytest.approx(float(np.sum(ledger.fees * ledger.equity[:-1])))


def test_deflated_sharpe() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, size=2000)
    # with one trial the DSR is the probabilistic Sharpe ratio against 0, written out here
    n, mu = r.size, sum(r.tolist()) / r.size
    sd = math.sqrt(sum((x - mu) ** 2 for x in r.tolist()) / (n - 1))
    pop = math.sqrt(sum((x - mu) ** 2 for x in r.tolist()) / n)
    skew = sum(((x - mu) / pop) ** 3 for x in r.tolist()) / n
    kurt = sum(((x - mu) / pop) ** 4 for x in r.tolist()) / n
    sr = mu / sd
    psr = NormalDist().cdf(sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr))
    assert deflated_sharpe(r, trials=1, sharpe_variance=0.0) == pytest.approx(psr, rel=1e-9)
    # more trials, a higher bar: the same track record is worth less
    many = [deflated_sharpe(r, trials=k, sharpe_variance=0.0004) for k in (2, 10, 100)]
    assert psr > many[0] > many[1] > many[2]
    assert deflated_sharpe(np.zeros(10), trials=5, sharpe_variance=1.0) == 0.0


def test_pbo_cscv_extreme_cases() -> None:
    good, bad = [0.02, 0.01, 0.03, 0.02], [-0.01, -0.02, 0.0, -0.01]
    flip = np.array([good + bad, bad + good]).T  # the in-sample winner always loses out of sample
    res = pbo_cscv(flip, blocks=2)
    assert res["pbo"] == 1.0 and res["splits"] == 2
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, size=(800, 6))
    noise[:, 2] += 0.01  # one configuration truly better everywhere
    assert pbo_cscv(noise, blocks=8)["pbo"] == 0.0
    with pytest.raises(ValueError):
        pbo_cscv(noise, blocks=3)
