"""Walk-forward evaluation: per fold, train on train, choose on validation, report on test.

Each fold is one call of :func:`training.pipeline.run_fold` (agents trained on the fold's train
window, every candidate backtested on validation and test). Selection per fold: the deployable
candidate (trained models, ``majority_vote``, ``flat``) with the highest validation Sharpe; the test
window is only scored. The report's top-level ``selected`` is the deployable candidate with the best
mean validation Sharpe over the folds (validation only again). Each fold's ``results`` also holds
``"selected"``: the test metrics of that fold's choice, i.e. what the procedure itself would have
earned. Overfitting statistics per fold: PBO by CSCV over the candidates' validation returns, and
the deflated Sharpe ratio of the chosen candidate's test returns given the number of candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from training.ledger import CostModel
from training.pipeline import DEPLOYABLE_BASELINES, FoldResult, agents_hook, overfitting, run_fold
from training.signals import SignalArrays
from training.split import Window, walk_forward


def _span(index: pd.DatetimeIndex, w: Window) -> list[str]:
    return [index[w.start].isoformat(), index[w.end - 1].isoformat()]


def _fold_entry(res: FoldResult, index: pd.DatetimeIndex, cscv_blocks: int) -> dict[str, Any]:
    val, test = res.metrics("validation"), res.metrics("test")
    fold = res.fold
    return {
        "train": _span(index, fold.train),
        "validation": _span(index, fold.validation),
        "test": _span(index, fold.test),
        "bars": {"train": len(fold.train), "validation": len(fold.validation), "test": len(fold.test)},
        "vol_scale": res.stats.vol_scale,
        "selected": res.selected,
        "validation_results": val,
        "results": {**test, "selected": {**test[res.selected], "name": res.selected}},
        "models": {
            name: {"algo": m.algo, "artifact_sha256": m.sha256, **m.params} for name, m in res.models.items()
        },
        "overfitting": overfitting(res, blocks=cscv_blocks),
    }


def run_walkforward(
    candles: pd.DataFrame,
    signals: SignalArrays,
    *,
    folds: int,
    budget_steps: int = 0,
    algos: Sequence[str] = (),
    seed: int = 0,
    out_dir: Path | None = None,
    mode: Literal["expanding", "rolling"] = "expanding",
    embargo: int = 24,
    vol_window: int = 24,
    costs: CostModel | None = None,
    step: float = 0.25,
    max_exposure: float = 1.0,
    cscv_blocks: int = 8,
    progress: bool = False,
    reward: str = "pnl",
) -> dict[str, Any]:
    """The ``report.json`` document (see the module doc for the selection rule)."""
    c = costs or CostModel.configured()
    out_folds: list[dict[str, Any]] = []
    if algos and (budget_steps <= 0 or out_dir is None):
        raise ValueError("training agents needs --budget-steps > 0 and an output directory")
    hook = (
        agents_hook(algos, out_dir / "models", progress=progress, reward=reward)
        if algos and out_dir
        else None
    )
    for k, fold in enumerate(
        walk_forward(len(candles), folds=folds, start=signals.warmup, mode=mode, embargo=embargo)
    ):
        res = run_fold(
            candles,
            signals,
            fold,
            hook=hook,
            fold_index=k,
            budget_steps=budget_steps,
            seed=seed,
            costs=c,
            step=step,
            max_exposure=max_exposure,
            vol_window=vol_window,
        )
        out_folds.append(_fold_entry(res, signals.index, cscv_blocks))
    names = list(out_folds[0]["validation_results"])
    mean_val = {n: float(np.mean([f["validation_results"][n]["sharpe"] for f in out_folds])) for n in names}
    deployable = [n for n in names if n in out_folds[0]["models"] or n in DEPLOYABLE_BASELINES]
    return {
        "folds": out_folds,
        "selected": max(deployable, key=lambda n: mean_val[n]),
        "selection": "deployable candidate (trained models, majority_vote, flat) with the highest mean "
        "validation Sharpe over folds; test windows never consulted",
        "mean_validation_sharpe": mean_val,
        "candidates": names,
        "agents": list(algos),
        "budget_steps": budget_steps,
        "reward": reward,
        "seed": seed,
        "costs": {
            "taker_fee": c.taker_fee,
            "slippage_bps": c.slippage_bps,
            "funding_rate_hourly": c.funding_rate_hourly,
        },
        "split": {"mode": mode, "embargo": embargo, "folds": folds},
    }
