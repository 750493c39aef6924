"""The training procedure on one split: train agents on train, choose on validation, score on test.

One function, :func:`run_fold`, is the whole honest procedure, used by ``all`` (one chronological
split), ``walkforward`` (one call per fold) and scheduled retraining:

1. normalization statistics are fitted on the train window only (``features.fit_stats``) and become
   the models' ``FeatureSpec``;
2. each agent trains on an environment whose window is the train window (``training.agents``);
3. every candidate (trained models and baselines) is backtested on validation and test with the
   same ledger; the choice uses validation results only;
4. the test window is scored and reported, never consulted.

Which candidates can be *selected*: the trained models and the two rule-based policies the live
meta consumer can run without a model (``majority_vote``, its fallback, and ``flat``). The other
baselines (``buy_and_hold``, ``equal_weight``, ``single:*``) are references to beat, not something
the live system can deploy, so choosing one would name a policy nobody can switch on.

Agents are imported lazily: this module (and ``walkforward`` with no agents) stays torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.backtest import evaluate, ledger_for, policy_exposure, run_baselines
from training.features import FeatureStats, fit_stats
from training.ledger import CostModel, Ledger
from training.market import Market
from training.signals import SignalArrays
from training.split import Fold, Window

if TYPE_CHECKING:
    from training.agents import TrainedAgent

#: Baselines the live meta consumer can run as its fallback (``BTCMETA_META_FALLBACK``).
DEPLOYABLE_BASELINES = ("majority_vote", "flat")


@dataclass
class FoldResult:
    """Everything one fold produced (ledgers per candidate name, in a stable order)."""

    fold: Fold
    stats: FeatureStats
    market: Market
    agents: dict[str, TrainedAgent] = field(default_factory=dict)
    validation: dict[str, Ledger] = field(default_factory=dict)
    test: dict[str, Ledger] = field(default_factory=dict)
    selected: str = ""
    selection_metric: str = "sharpe"

    @property
    def candidates(self) -> list[str]:
        return list(self.validation)

    def kind(self, name: str) -> str:
        return "model" if name in self.agents else "baseline"

    def metrics(self, part: str) -> dict[str, dict[str, float | int]]:
        return evaluate(self.validation if part == "validation" else self.test)


def model_ledger(agent: TrainedAgent, market: Market, window: Window, costs: CostModel, *,
                 step: float, max_exposure: float) -> Ledger:
    """Backtest of a trained model: its exported numpy policy, bar by bar (the live code path)."""
    exposure = policy_exposure(agent.policy(), market, window, step=step, max_exposure=max_exposure)
    return ledger_for(exposure, market, window, costs)


def choose(validation: dict[str, dict[str, Any]], deployable: Sequence[str], metric: str = "sharpe") -> str:
    """Best deployable candidate by ``metric`` on validation (first one wins a tie)."""
    pool = [n for n in validation if n in deployable]
    if not pool:
        raise ValueError("no deployable candidate to choose from")
    return max(pool, key=lambda n: validation[n][metric])


def run_fold(candles: pd.DataFrame, signals: SignalArrays, fold: Fold, *, algos: Sequence[str] = (),
             budget_steps: int = 0, seed: int = 0, out_dir: Path | None = None,
             costs: CostModel | None = None, step: float = 0.25, max_exposure: float = 1.0,
             vol_window: int = 24, metric: str = "sharpe", progress: bool = False) -> FoldResult:
    """Train ``algos`` on ``fold.train``, evaluate everything on validation and test, choose on validation."""
    c = costs or CostModel()
    close = candles["close"].to_numpy(dtype=np.float64)
    stats = fit_stats(close, fold.train, vol_window=vol_window, funding_rate_hourly=c.funding_rate_hourly)
    market = Market.build(candles, signals, stats.spec(signals.strategies))
    result = FoldResult(fold, stats, market, selection_metric=metric)
    if algos:
        if budget_steps <= 0 or out_dir is None:
            raise ValueError("training agents needs budget_steps > 0 and an output directory")
        from training.agents import train_agent  # torch: only when agents are asked for

        for algo in algos:
            result.agents[algo] = train_agent(algo, market, fold.train, budget_steps=budget_steps, seed=seed,
                                              out_dir=out_dir / algo, step=step, max_exposure=max_exposure,
                                              costs=c, progress=progress)
    for part, window in (("validation", fold.validation), ("test", fold.test)):
        ledgers = {name: model_ledger(agent, market, window, c, step=step, max_exposure=max_exposure)
                   for name, agent in result.agents.items()}
        ledgers.update(run_baselines(market, window, c, step=step, max_exposure=max_exposure))
        setattr(result, part, ledgers)
    result.selected = choose(result.metrics("validation"), [*result.agents, *DEPLOYABLE_BASELINES], metric)
    return result
