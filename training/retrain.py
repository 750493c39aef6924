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

import hashlib
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd

from meta_consumer.policy import Policy, load_policy
from training.backtest import ledger_for, policy_exposure, run_baselines
from training.features import fit_stats
from training.ledger import CostModel, Ledger
from training.market import Market
from training.metrics import summarize
from training.results import ResultsDB, data_fingerprint
from training.signals import SignalArrays
from training.split import Fold, Window, walk_forward

WINDOWS = ("validation", "test")


@dataclass(frozen=True)
class TrainContext:
    """What a train hook gets for one fold: fit on ``fold.train`` only, never look past it."""

    candles: pd.DataFrame
    signals: SignalArrays
    market: Market  # FeatureSpec fitted on fold.train
    fold: Fold
    fold_index: int
    costs: CostModel
    seed: int
    budget_steps: int
    step: float = 0.25
    max_exposure: float = 1.0


@dataclass(frozen=True)
class TrainedModel:
    """The minimal trained-model shape the pipeline records (agents may return richer objects)."""

    algo: str
    artifact: bytes
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


TrainHook = Callable[[TrainContext], Iterable[Any]]


@dataclass(frozen=True)
class PipelineResult:
    run_id: str
    proposed: str | None
    proposed_kind: str | None
    candidates: tuple[str, ...]
    evaluations: int


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


def as_policy(
    artifact: bytes, name: str, algo: str, *, step: float = 0.25, max_exposure: float = 1.0
) -> Policy:
    row = SimpleNamespace(
        model_id=name,
        algo=algo,
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        feature_spec={},
    )
    return load_policy(row, step=step, max_exposure=max_exposure)


def evaluate_policy(
    policy: Policy,
    candles: pd.DataFrame,
    signals: SignalArrays,
    market: Market,
    window: Window,
    costs: CostModel,
) -> Ledger:
    """Backtest ledger of a policy on ``window``, on the market as the policy's own spec sees it."""
    m = market if policy.spec == market.spec else Market.build(candles, signals, policy.spec)
    return ledger_for(policy_exposure(policy, m, window), m, window, costs)


def _describe(obj: Any) -> tuple[str, str, bytes, dict[str, Any]]:
    artifact = getattr(obj, "artifact", None)
    algo = getattr(obj, "algo", None)
    if not isinstance(artifact, bytes) or not isinstance(algo, str):
        raise TypeError(f"train hook returned {type(obj).__name__}: needs .artifact (bytes) and .algo (str)")
    name = getattr(obj, "name", None) or algo
    params = dict(getattr(obj, "params", None) or {})
    for key in ("seed", "budget_steps", "checkpoint"):
        value = getattr(obj, key, None)
        if value is not None:
            params[key] = str(value) if key == "checkpoint" else value
    return name, algo, artifact, params


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
    c = costs or CostModel()
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
    try:
        close = candles["close"].to_numpy(dtype=np.float64)
        for k, fold in enumerate(split):
            stats = fit_stats(
                close, fold.train, vol_window=vol_window, funding_rate_hourly=c.funding_rate_hourly
            )
            market = Market.build(candles, signals, stats.spec(signals.strategies))
            ctx = TrainContext(
                candles, signals, market, fold, k, c, seed + k, budget_steps, step, max_exposure
            )
            trained = [_describe(obj) for obj in (hook(ctx) if hook is not None else ())]
            models = []
            for name, algo, artifact, params in trained:
                policy = as_policy(artifact, name, algo, step=step, max_exposure=max_exposure)
                path, sha = results.save_model(run_id, name, artifact, fold=k)
                models.append((name, algo, policy, path, sha, params))
            for wname in WINDOWS:
                window: Window = getattr(fold, wname)
                index = signals.index[window.as_slice()]
                for bname, ledger in run_baselines(
                    market, window, c, step=step, max_exposure=max_exposure
                ).items():
                    results.record_evaluation(
                        run_id,
                        bname,
                        kind="baseline",
                        window=wname,
                        fold=k,
                        metrics=summarize(ledger),
                        ledger=ledger,
                        index=index,
                    )
                    count += 1
                    names.append(bname)
                for name, algo, policy, path, sha, params in models:
                    ledger = evaluate_policy(policy, candles, signals, market, window, c)
                    results.record_evaluation(
                        run_id,
                        name,
                        kind="model",
                        algo=algo,
                        window=wname,
                        fold=k,
                        metrics=summarize(ledger),
                        ledger=ledger,
                        index=index,
                        model_path=path,
                        model_sha256=sha,
                        params=params,
                    )
                    count += 1
                    names.append(name)
        proposed = results.propose(run_id, metric=metric, window="validation")
    except BaseException:
        results.finish_run(run_id, status="failed")
        raise
    results.finish_run(run_id)
    kind_of = {r.candidate: r.kind for r in results.evaluations(run_id=run_id)}
    return PipelineResult(
        run_id, proposed, kind_of.get(proposed) if proposed else None, tuple(dict.fromkeys(names)), count
    )
