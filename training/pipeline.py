"""The training procedure on one split: train on train, choose on validation, score on test.

One function, :func:`run_fold`, is the whole honest procedure, used by ``all`` and ``retrain``
(recorded in the results DB by ``training.retrain``) and by ``walkforward`` (report.json):

1. normalization statistics are fitted on the train window only (``features.fit_stats``) and become
   the models' ``FeatureSpec``;
2. a *train hook* (``TrainContext -> trained models``) trains on that context; the default one,
   :func:`agents_hook`, trains the ElegantRL agents on an environment whose window is the train
   window (``training.rl``). Tests plug in hooks that return small fixed-weight models;
3. every candidate (trained models and baselines) is backtested on validation and test by the same
   ledger, models through their exported numpy policy (the live code path); the choice uses
   validation results only;
4. the test window is scored and reported, never consulted.

Which candidates can be *selected*: the trained models and the two rule-based policies the live
meta consumer can run without a model (``majority_vote``, its fallback, and ``flat``). The other
baselines (``buy_and_hold``, ``equal_weight``, ``single:*``) are references to beat, not something
the live system can switch on.

torch is imported only inside :func:`agents_hook`'s training call: this module stays torch-free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from common.policy import Policy, load_policy
from training.backtest import evaluate, ledger_for, policy_exposure, run_baselines
from training.features import FeatureStats, fit_stats
from training.ledger import CostModel, Ledger
from training.market import Market
from training.metrics import deflated_sharpe, pbo_cscv
from training.signals import SignalArrays
from training.split import Fold, Window

#: Baselines the live meta consumer can run as its fallback (``BTCMETA_META__FALLBACK``).
DEPLOYABLE_BASELINES = ("majority_vote", "flat")


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
    """The minimal trained-model shape (``training.rl.TrainedAgent`` is a richer one)."""

    algo: str
    artifact: bytes
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


TrainHook = Callable[[TrainContext], Iterable[Any]]


@dataclass(frozen=True)
class Candidate:
    """A trained model as the pipeline sees it: name, artifact, loaded policy, recorded params."""

    name: str
    algo: str
    artifact: bytes
    policy: Policy
    params: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artifact).hexdigest()


def as_policy(
    artifact: bytes, name: str, algo: str, *, step: float = 0.25, max_exposure: float = 1.0
) -> Policy:
    """Load an artifact with the live loader (refuses what the meta consumer would refuse)."""
    row = SimpleNamespace(
        model_id=name,
        algo=algo,
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        feature_spec={},
    )
    return load_policy(row, step=step, max_exposure=max_exposure)


def describe(obj: Any, *, step: float, max_exposure: float) -> Candidate:
    """A hook's return value -> :class:`Candidate` (needs ``.artifact`` bytes and ``.algo``)."""
    artifact = getattr(obj, "artifact", None)
    algo = getattr(obj, "algo", None)
    if not isinstance(artifact, bytes) or not isinstance(algo, str):
        raise TypeError(f"train hook returned {type(obj).__name__}: needs .artifact (bytes) and .algo (str)")
    name = getattr(obj, "name", None) or algo
    params = dict(getattr(obj, "params", None) or {})
    for key in (
        "seed",
        "budget_steps",
        "steps",
        "steps_per_second",
        "seconds",
        "checkpoint",
        "agent_class",
        "reward",
    ):
        value = getattr(obj, key, None)
        if value is not None:
            params[key] = str(value) if key == "checkpoint" else value
    policy = as_policy(artifact, name, algo, step=step, max_exposure=max_exposure)
    return Candidate(name, algo, artifact, policy, params)


def agents_hook(
    algos: Sequence[str],
    out_dir: Path,
    *,
    budgets: dict[str, int] | None = None,
    progress: bool = True,
    reward: str = "pnl",
) -> TrainHook:
    """The default hook: train each ElegantRL agent of ``algos`` on the fold's train window.

    ``reward`` is the training reward (``"pnl"`` or ``"dsr"``, ``training.env``); candidates are
    chosen and scored on the same ledger whichever reward trained them.

    Budget per algo: the context's ``budget_steps`` when positive, else ``budgets`` (default
    ``training.rl.DEFAULT_BUDGETS``). Files go to ``out_dir/fold<k>/<algo>/``.
    """

    def hook(ctx: TrainContext) -> list[Any]:
        from training.rl import DEFAULT_BUDGETS, train_agent

        table = budgets or DEFAULT_BUDGETS
        return [
            train_agent(
                algo,
                ctx.market,
                ctx.fold.train,
                budget_steps=ctx.budget_steps if ctx.budget_steps > 0 else table[algo],
                seed=ctx.seed,
                out_dir=out_dir / f"fold{ctx.fold_index}" / algo,
                step=ctx.step,
                max_exposure=ctx.max_exposure,
                costs=ctx.costs,
                progress=progress,
                reward=reward,
            )
            for algo in algos
        ]

    return hook


@dataclass
class FoldResult:
    """Everything one fold produced (ledgers per candidate name, in a stable order)."""

    fold: Fold
    fold_index: int
    stats: FeatureStats
    market: Market
    models: dict[str, Candidate] = field(default_factory=dict)
    validation: dict[str, Ledger] = field(default_factory=dict)
    test: dict[str, Ledger] = field(default_factory=dict)
    selected: str = ""
    selection_metric: str = "sharpe"

    @property
    def candidates(self) -> list[str]:
        return list(self.validation)

    def kind(self, name: str) -> str:
        return "model" if name in self.models else "baseline"

    def window(self, part: str) -> Window:
        return self.fold.validation if part == "validation" else self.fold.test

    def ledgers(self, part: str) -> dict[str, Ledger]:
        return self.validation if part == "validation" else self.test

    def metrics(self, part: str) -> dict[str, dict[str, float | int]]:
        return evaluate(self.ledgers(part))


def model_ledger(
    policy: Policy,
    candles: pd.DataFrame,
    signals: SignalArrays,
    market: Market,
    window: Window,
    costs: CostModel,
) -> Ledger:
    """Backtest of a policy bar by bar (the live code path), on the market as its own spec sees it."""
    m = market if policy.spec == market.spec else Market.build(candles, signals, policy.spec)
    exposure = policy_exposure(policy, m, window, step=policy.step, max_exposure=policy.max_exposure)
    return ledger_for(exposure, m, window, costs)


def choose(validation: dict[str, dict[str, Any]], deployable: Sequence[str], metric: str = "sharpe") -> str:
    """Best deployable candidate by ``metric`` on validation (first one wins a tie)."""
    pool = [n for n in validation if n in deployable]
    if not pool:
        raise ValueError("no deployable candidate to choose from")
    return max(pool, key=lambda n: validation[n][metric])


def run_fold(
    candles: pd.DataFrame,
    signals: SignalArrays,
    fold: Fold,
    *,
    hook: TrainHook | None = None,
    fold_index: int = 0,
    budget_steps: int = 0,
    seed: int = 0,
    costs: CostModel | None = None,
    step: float = 0.25,
    max_exposure: float = 1.0,
    vol_window: int = 24,
    metric: str = "sharpe",
) -> FoldResult:
    """Train (``hook``) on ``fold.train``, evaluate all on validation and test, choose on validation."""
    c = costs or CostModel.configured()
    close = candles["close"].to_numpy(dtype=np.float64)
    stats = fit_stats(close, fold.train, vol_window=vol_window, funding_rate_hourly=c.funding_rate_hourly)
    market = Market.build(candles, signals, stats.spec(signals.strategies))
    result = FoldResult(fold, fold_index, stats, market, selection_metric=metric)
    if hook is not None:
        ctx = TrainContext(
            candles, signals, market, fold, fold_index, c, seed + fold_index, budget_steps, step, max_exposure
        )
        for obj in hook(ctx):
            model = describe(obj, step=step, max_exposure=max_exposure)
            if model.name in result.models:
                raise ValueError(f"train hook returned two models named {model.name!r}")
            result.models[model.name] = model
    for part in ("validation", "test"):
        window = result.window(part)
        ledgers = {
            name: model_ledger(m.policy, candles, signals, market, window, c)
            for name, m in result.models.items()
        }
        ledgers.update(run_baselines(market, window, c, step=step, max_exposure=max_exposure))
        setattr(result, part, ledgers)
    result.selected = choose(result.metrics("validation"), [*result.models, *DEPLOYABLE_BASELINES], metric)
    return result


#: A proposed model whose validation deflated Sharpe ratio is below this is flagged: its validation
#: Sharpe is within what the best of that many candidates reaches by luck (P[true SR > 0] < 95 %).
SIGNIFICANT_DEFLATED_SHARPE = 0.95


def proposal_caution(proposed: str, folds: Sequence[dict[str, Any]], candidates: int) -> str | None:
    """Why a proposed model should not be selected on this run alone, or None.

    ``folds``: :func:`overfitting` per fold. Judged on validation only (the weakest fold the
    candidate took part in; a custom hook may name its models differently per fold), so the
    warning itself never consults a test window.
    """
    scores = [
        o["deflated_sharpe_validation"][proposed]
        for o in folds
        if proposed in o["deflated_sharpe_validation"]
    ]
    weakest = min(scores, default=0.0)
    if weakest >= SIGNIFICANT_DEFLATED_SHARPE:
        return None
    return (
        f"{proposed}'s validation Sharpe is not significant after {candidates} candidates (deflated "
        f"Sharpe {weakest:.2f} < {SIGNIFICANT_DEFLATED_SHARPE}): it may be the luck of the pick. "
        "Check it over walk-forward folds (walkforward --folds K) before selecting it."
    )


def overfitting(res: FoldResult, *, blocks: int = 8) -> dict[str, Any]:
    """How likely the fold's choice is overfitted: PBO by CSCV over every candidate's validation
    returns; the deflated Sharpe ratio of the chosen candidate's test returns given how many
    candidates were tried (the variance of their per-period validation Sharpe ratios); and each
    candidate's deflated Sharpe ratio on validation under the same deflation, which is what a
    proposal may be judged on without looking at the test window."""
    names = res.candidates
    val = np.stack([res.validation[n].net for n in names], axis=1)
    std = val.std(axis=0, ddof=1)
    per_period = val.mean(axis=0) / np.where(std > 0, std, np.inf)
    variance = float(np.var(per_period))
    return {
        **pbo_cscv(val, blocks=blocks),
        "deflated_sharpe_selected_test": deflated_sharpe(
            res.test[res.selected].net, trials=len(names), sharpe_variance=variance
        ),
        "deflated_sharpe_validation": {
            n: deflated_sharpe(res.validation[n].net, trials=len(names), sharpe_variance=variance)
            for n in names
        },
    }
