"""The training pipeline behind ``retrain``: folds -> train (a hook) -> evaluate -> record -> propose.

Scheduled retraining (daily or weekly, from cron, a Kubernetes CronJob or CI) calls
``python -m training retrain``. Per walk-forward fold the pipeline fits the feature statistics on
the train window, asks the *train hook* for trained models, evaluates every model and every
baseline on the validation and test windows with the one backtest (``training.backtest``), and
records all of it (metrics, equity curves, model files) in the results database. The best
candidate by mean validation metric is marked *proposed*; nothing is ever selected for live
trading here, that stays a person's ``select``.

The hook is any callable ``TrainContext -> iterable of trained models``, where a trained model is
anything with ``artifact`` (``btcmeta.mlp.v1`` bytes) and ``algo`` (``name``, ``seed``,
``budget_steps``, ``checkpoint`` are recorded when present): the ElegantRL agents plug in here
(``--hook package.module:function``). Without a hook the run holds the baselines only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from training.ledger import CostModel
from training.metrics import summarize
from training.pipeline import (
    DEPLOYABLE_BASELINES,
    TrainContext,
    TrainedModel,
    TrainHook,
    overfitting,
    run_fold,
)
from training.results import ResultsDB, data_fingerprint
from training.signals import SignalArrays
from training.split import walk_forward

__all__ = ["PipelineResult", "TrainContext", "TrainHook", "TrainedModel", "load_hook", "run_pipeline"]

WINDOWS = ("validation", "test")


@dataclass(frozen=True)
class PipelineResult:
    run_id: str
    proposed: str | None
    proposed_kind: str | None
    candidates: tuple[str, ...]
    evaluations: int
    #: per fold: PBO (CSCV over validation returns) and deflated Sharpe of the fold's choice on test
    overfitting: tuple[dict[str, Any], ...] = ()


def load_hook(path: str) -> TrainHook:
    """``package.module:function`` -> the function (checked callable, named in errors)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"hook {path!r}: expected package.module:function")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"hook {path!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ValueError(f"hook {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


def run_pipeline(
    results: ResultsDB,
    candles: pd.DataFrame,
    signals: SignalArrays,
    *,
    hook: TrainHook | None = None,
    hook_name: str | None = None,
    folds: int = 1,
    mode: Literal["expanding", "rolling"] = "expanding",
    embargo: int = 24,
    seed: int = 0,
    budget_steps: int = 0,
    costs: CostModel | None = None,
    metric: str = "sharpe",
    vol_window: int = 24,
    step: float = 0.25,
    max_exposure: float = 1.0,
    kind: str = "retrain",
    extra_config: dict[str, Any] | None = None,
) -> PipelineResult:
    """Train (hook), evaluate and record one run; returns its id and the proposed candidate."""
    c = costs or CostModel.configured()
    split = walk_forward(len(candles), folds=folds, start=signals.warmup, mode=mode, embargo=embargo)
    config = {
        "folds": folds,
        "mode": mode,
        "embargo": embargo,
        "budget_steps": budget_steps,
        "hook": hook_name,
        "metric": metric,
        "vol_window": vol_window,
        "step": step,
        "max_exposure": max_exposure,
        "strategies": list(signals.strategies),
        "bars": len(candles),
        "data_span": [candles.index[0].isoformat(), candles.index[-1].isoformat()],
        "costs": {
            "taker_fee": c.taker_fee,
            "slippage_bps": c.slippage_bps,
            "funding_rate_hourly": c.funding_rate_hourly,
        },
        **(extra_config or {}),
    }
    run_id = results.start_run(
        config=config, seed=seed, data_fingerprint=data_fingerprint(candles), kind=kind
    )
    count = 0
    names: list[str] = []
    models_seen: set[str] = set()
    overfit: list[dict[str, Any]] = []
    try:
        for k, fold in enumerate(split):
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
                metric=metric,
            )
            models_seen.update(res.models)
            overfit.append({"fold": k, "chosen": res.selected, **overfitting(res)})
            saved = {
                name: results.save_model(run_id, name, m.artifact, fold=k) for name, m in res.models.items()
            }
            for wname in WINDOWS:
                index = signals.index[res.window(wname).as_slice()]
                for name, ledger in res.ledgers(wname).items():
                    model = res.models.get(name)
                    extra: dict[str, Any] = {}
                    if model is not None:
                        path, sha = saved[name]
                        extra = {
                            "algo": model.algo,
                            "model_path": path,
                            "model_sha256": sha,
                            "params": model.params,
                        }
                    results.record_evaluation(
                        run_id,
                        name,
                        kind=res.kind(name),
                        window=wname,
                        fold=k,
                        metrics=summarize(ledger),
                        ledger=ledger,
                        index=index,
                        **extra,
                    )
                    count += 1
                    names.append(name)
        deployable = [n for n in dict.fromkeys(names) if n in DEPLOYABLE_BASELINES or n in models_seen]
        proposed = results.propose(run_id, metric=metric, window="validation", only=deployable)
    except BaseException:
        results.finish_run(run_id, status="failed")
        raise
    results.finish_run(run_id)
    kind_of = {r.candidate: r.kind for r in results.evaluations(run_id=run_id)}
    return PipelineResult(
        run_id,
        proposed,
        kind_of.get(proposed) if proposed else None,
        tuple(dict.fromkeys(names)),
        count,
        tuple(overfit),
    )
