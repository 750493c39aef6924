"""Politis-White automatic block length for the gates' stationary bootstrap (issue 16).

The reference is the closed form for an AR(1) ``x_t = phi x_{t-1} + e_t`` with unit innovation
variance: ``gamma(k) = phi^|k| / (1 - phi^2)``, so

* ``g(0) = sum_k gamma(k) = 1 / (1 - phi)^2``,
* ``G = sum_k |k| gamma(k) = 2 phi / ((1 - phi^2) (1 - phi)^2)``,
* ``b_SB = (2 G^2 / D_SB)^(1/3) n^(1/3)`` with ``D_SB = 2 g(0)^2``, i.e.
  ``b_SB = (G / g(0))^(2/3) n^(1/3) = (2 phi / (1 - phi^2))^(2/3) n^(1/3)``:
  32.9 at phi = 0.5 and 121.5 at phi = 0.9 for n = 20,000.

Tolerances, from 20 seeds of the estimator at n = 20,000 (measured when this was written):
phi = 0.5 gave mean 32.0, sd 1.4 (4 % of the truth), so 15 % is over 3 sd; phi = 0.9 gave mean
114.9, sd 10.9 (9 %; the flat-top window truncates a slowly decaying correlogram, a 5 % downward
bias), range 92..134, so 30 % covers 3 sd plus the bias. A D_SB off by a factor 2 moves the
estimate by 26 %, a G off by 2 by 37 %: the phi = 0.5 check fails for either.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.unit.training.test_research import _noise_market
from training.cli import app
from training.research.protocol import Settings, run_research
from training.research.report import write_report
from training.research.stats import block_lengths, optimal_block_length

N = 20_000


def _ar1(phi: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 500)
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, e.size):
        x[t] = phi * x[t - 1] + e[t]
    return x[500:]  # burn-in: start from the stationary distribution


def _ar1_optimal_block(phi: float, n: int) -> float:
    gamma = lambda k: phi ** abs(k) / (1 - phi**2)  # noqa: E731
    ks = range(-2000, 2001)
    g0 = sum(gamma(k) for k in ks)
    big_g = sum(abs(k) * gamma(k) for k in ks)
    return float((2 * big_g**2 / (2 * g0**2)) ** (1 / 3) * n ** (1 / 3))


def test_closed_form_reference() -> None:
    # the sums above against the algebra in the module doc
    for phi in (0.5, 0.9):
        closed = (2 * phi / (1 - phi**2)) ** (2 / 3) * N ** (1 / 3)
        assert _ar1_optimal_block(phi, N) == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize(("phi", "rel"), [(0.5, 0.15), (0.9, 0.30)])
def test_ar1_estimate_is_close_to_the_closed_form(phi: float, rel: float) -> None:
    est = optimal_block_length(_ar1(phi, N, seed=3))
    assert est == pytest.approx(_ar1_optimal_block(phi, N), rel=rel)


def test_iid_noise_needs_no_block_and_more_persistence_a_longer_one() -> None:
    noise = np.random.default_rng(5).normal(size=N)
    assert optimal_block_length(noise) < 2.0
    blocks = [optimal_block_length(_ar1(phi, N, seed=5)) for phi in (0.2, 0.5, 0.9)]
    assert blocks[0] < blocks[1] < blocks[2]
    # far below the cap ceil(min(3 sqrt n, n / 3)) = 425: the estimate, not the bound, decides
    assert blocks[2] < 425


def test_matrix_uses_the_most_persistent_column_and_constant_columns_need_nothing() -> None:
    m = np.column_stack([_ar1(0.5, N, seed=7), np.zeros(N), _ar1(0.9, N, seed=8)])
    per_col = block_lengths(m)
    assert per_col[1] == 1.0
    assert per_col[0] == pytest.approx(optimal_block_length(m[:, 0]))
    assert optimal_block_length(m) == per_col.max() == per_col[2]
    # bounded: a near-unit-root series is capped at ceil(min(3 sqrt n, n / 3))
    walk = np.cumsum(np.random.default_rng(9).normal(size=40_000))
    assert optimal_block_length(walk) == math.ceil(min(3 * math.sqrt(40_000), 40_000 / 3)) == 600


def test_research_run_chooses_and_records_the_block(tmp_path: Path) -> None:
    candles, sig = _noise_market(3000, 3, seed=11)
    auto = run_research(
        candles, sig, None, tmp_path / "run", Settings(purge=48, bootstrap_reps=50, quick=True)
    )
    b = auto["bootstrap"]
    assert auto["settings"]["bootstrap_block"] is None and b["method"] == "politis-white"
    assert 1.0 <= b["mean_block"] <= math.ceil(min(3 * math.sqrt(2800), 2800 / 3))
    pooled = np.load(tmp_path / "run" / "series.npz")["pooled1"]
    assert b["mean_block"] == pytest.approx(optimal_block_length(pooled))  # every column is tested
    assert b["columns"] == pooled.shape[1] - len(sig.strategies)  # all but the single strategies
    text = write_report(tmp_path / "run", tmp_path / "rep", command="test").read_text()
    assert f"mean block {b['mean_block']:.0f} h (Politis-White" in text
    assert "Politis-White block length" not in text  # no longer under "Not done"
    # a fixed block reuses every logged trial (the block is no part of the fingerprint)
    lines = (tmp_path / "run" / "trials.jsonl").read_text()
    settings = Settings(purge=48, bootstrap_reps=50, quick=True, bootstrap_block=24.0)
    fixed = run_research(candles, sig, None, tmp_path / "run", settings)
    assert (tmp_path / "run" / "trials.jsonl").read_text() == lines and fixed["trials_run_now"] == 0
    assert fixed["bootstrap"] == {"mean_block": 24.0, "method": "fixed"}
    assert fixed["sharpe"] == auto["sharpe"]
    text = write_report(tmp_path / "run", tmp_path / "rep", command="test").read_text()
    assert "mean block 24 h (fixed)" in text


@pytest.mark.parametrize("bad", ["0.5", "week", "inf", "nan"])
def test_cli_rejects_a_bad_block_before_loading_data(tmp_path: Path, bad: str) -> None:
    res = CliRunner().invoke(
        app, ["research", "--bootstrap-block", bad, "--data", str(tmp_path / "missing.csv"), "--no-db"]
    )
    assert res.exit_code != 0 and "--bootstrap-block" in res.output


def test_report_reads_a_summary_from_before_the_automatic_block() -> None:
    from training.research.report import _block_text

    # summary.json of an older run folder: only the fixed setting, no ``bootstrap`` entry
    assert _block_text({"settings": {"bootstrap_block": 168.0}}) == "mean block 168 h (fixed)"
