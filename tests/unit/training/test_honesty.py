"""Nothing from a test window reaches normalization or selection; results are reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.pipeline import proposal_caution
from training.signals import compute_signals
from training.split import walk_forward
from training.walkforward import run_walkforward


def _perturbed(candles: pd.DataFrame, start: int) -> pd.DataFrame:
    """Scramble every price from bar ``start`` on (OHLC moved together, so candles stay valid)."""
    out = candles.copy()
    noise = np.random.default_rng(42).uniform(0.7, 1.3, size=len(out) - start)
    for col in ("open", "high", "low", "close"):
        out.iloc[start:, out.columns.get_loc(col)] *= noise
    return out


def test_test_window_prices_do_not_reach_stats_or_selection(real_candles: pd.DataFrame) -> None:
    candles = real_candles.iloc[-14_000:]
    sig = compute_signals(candles)
    base = run_walkforward(candles, sig, folds=2)
    last_test = walk_forward(len(candles), folds=2, start=sig.warmup)[-1].test
    changed = _perturbed(candles, last_test.start)
    other = run_walkforward(changed, compute_signals(changed), folds=2)
    for a, b in zip(base["folds"], other["folds"], strict=True):
        assert a["vol_scale"] == b["vol_scale"]
        assert a["validation_results"] == b["validation_results"]
        assert a["selected"] == b["selected"]
        assert a["overfitting"]["pbo"] == b["overfitting"]["pbo"]
        # ... and so is the significance a proposal is judged on.
        key = "deflated_sharpe_validation"
        assert a["overfitting"][key] == b["overfitting"][key]
    assert base["selected"] == other["selected"]
    assert base["folds"][0]["results"] == other["folds"][0]["results"]  # fold 0's test ends before the cut
    assert base["folds"][-1]["results"] != other["folds"][-1]["results"]  # the perturbation did land
    assert run_walkforward(candles, sig, folds=2) == base  # same inputs, same numbers


def test_a_proposal_is_judged_on_its_validation_significance(real_candles: pd.DataFrame) -> None:
    candles = real_candles.iloc[-14_000:]
    report = run_walkforward(candles, compute_signals(candles), folds=2)
    folds = [f["overfitting"] for f in report["folds"]]
    for o in folds:
        dsr = o["deflated_sharpe_validation"]
        assert set(dsr) == set(report["candidates"]) and all(0.0 <= v <= 1.0 for v in dsr.values())
        assert dsr["flat"] == 0.0  # no returns, no evidence
    weak = min(report["candidates"], key=lambda n: min(o["deflated_sharpe_validation"][n] for o in folds))
    caution = proposal_caution(weak, folds, len(report["candidates"]))
    assert caution is not None and f"after {len(report['candidates'])} candidates" in caution
    sure = [{"deflated_sharpe_validation": {"m": 0.99}}, {"deflated_sharpe_validation": {"m": 0.97}}]
    assert proposal_caution("m", sure, 12) is None
    assert proposal_caution("m", [*sure, {"deflated_sharpe_validation": {}}], 12) is None  # not in that fold
    assert proposal_caution("m", [*sure, {"deflated_sharpe_validation": {"m": 0.5}}], 12) is not None
