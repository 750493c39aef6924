"""Walk-forward evaluation: per fold, fit on train, select on validation, report on test.

Selection rule (this round, no trained agents yet): among the candidates that exist (the
baselines), pick the highest annualized Sharpe on the fold's *validation* window; the test window
is only scored, never consulted. The report's top-level ``selected`` is the candidate with the best
mean validation Sharpe over the folds (again validation only). Overfitting statistics per fold:
PBO by CSCV over the candidates' validation returns, and the deflated Sharpe ratio of the selected
candidate's test returns given the number of candidates tried.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from training.backtest import evaluate, run_baselines
from training.features import fit_stats
from training.ledger import CostModel
from training.market import Market
from training.metrics import deflated_sharpe, pbo_cscv
from training.signals import SignalArrays
from training.split import Window, walk_forward


def select(validation: dict[str, dict[str, Any]], metric: str = "sharpe") -> str:
    """Best candidate by ``metric`` on validation results (first one wins a tie)."""
    return max(validation, key=lambda name: validation[name][metric])


def _span(index: pd.DatetimeIndex, w: Window) -> list[str]:
    return [index[w.start].isoformat(), index[w.end - 1].isoformat()]


def run_walkforward(candles: pd.DataFrame, signals: SignalArrays, *, folds: int, budget_steps: int = 0,
                    mode: Literal["expanding", "rolling"] = "expanding", embargo: int = 24,
                    vol_window: int = 24, costs: CostModel | None = None, step: float = 0.25,
                    max_exposure: float = 1.0, cscv_blocks: int = 8) -> dict[str, Any]:
    """The ``report.json`` document (see the module doc for the selection rule)."""
    c = costs or CostModel()
    close = candles["close"].to_numpy(dtype=np.float64)
    out_folds: list[dict[str, Any]] = []
    for fold in walk_forward(len(candles), folds=folds, start=signals.warmup, mode=mode, embargo=embargo):
        stats = fit_stats(close, fold.train, vol_window=vol_window, funding_rate_hourly=c.funding_rate_hourly)
        market = Market.build(candles, signals, stats.spec(signals.strategies))
        val_ledgers = run_baselines(market, fold.validation, c, step=step, max_exposure=max_exposure)
        val = evaluate(val_ledgers)
        chosen = select(val)
        test_ledgers = run_baselines(market, fold.test, c, step=step, max_exposure=max_exposure)
        test = evaluate(test_ledgers)
        names = list(val_ledgers)
        val_matrix = np.stack([val_ledgers[n].net for n in names], axis=1)
        per_period = val_matrix.mean(axis=0) / np.where(val_matrix.std(axis=0, ddof=1) > 0,
                                                         val_matrix.std(axis=0, ddof=1), np.inf)
        out_folds.append({
            "train": _span(signals.index, fold.train),
            "validation": _span(signals.index, fold.validation),
            "test": _span(signals.index, fold.test),
            "bars": {"train": len(fold.train), "validation": len(fold.validation), "test": len(fold.test)},
            "vol_scale": stats.vol_scale,
            "selected": chosen,
            "validation_results": val,
            "results": test,
            "overfitting": {
                **pbo_cscv(val_matrix, blocks=cscv_blocks),
                "deflated_sharpe_selected_test": deflated_sharpe(
                    test_ledgers[chosen].net, trials=len(names), sharpe_variance=float(np.var(per_period))),
            },
        })
    names = list(out_folds[0]["validation_results"])
    mean_val = {n: float(np.mean([f["validation_results"][n]["sharpe"] for f in out_folds])) for n in names}
    return {
        "folds": out_folds,
        "selected": max(names, key=lambda n: mean_val[n]),
        "selection": "highest mean validation Sharpe over folds; test windows never consulted",
        "mean_validation_sharpe": mean_val,
        "candidates": names,
        "agents": [],
        "budget_steps": budget_steps,
        "note": "no trained agents in this build (torch-free core); candidates are the baselines",
        "costs": {"taker_fee": c.taker_fee, "slippage_bps": c.slippage_bps,
                  "funding_rate_hourly": c.funding_rate_hourly},
        "split": {"mode": mode, "embargo": embargo, "folds": folds},
    }
