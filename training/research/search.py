"""The Optuna inner search (issue 16): TPE over the continuous hyper-parameters, per outer split.

Why a search at all: the grid tries 3 values per hyper-parameter and stops; a TPE sampler spends
the same budget where the inner folds say the good region is. Why it stays honest:

* **Inside the outer training groups only.** One study per outer split; its objective is the mean
  Sharpe over that split's inner folds (``cpcv.inner_splits``), exactly the score the grid's inner
  choice maximizes. The outer test returns of each trial are computed for the log, never told to
  the sampler (tested by poisoning the outer test bars: the proposals do not move).
* **Every trial is a logged trial.** Each configuration the sampler proposes is evaluated and
  written to ``trials.jsonl`` / the results DB like a grid trial; the DSR counts every distinct
  configuration any split's search tried, and the CSCV matrix holds the search's trials (column
  ``search:j`` = the j-th proposal of each split's study, an out-of-sample series, since each
  split's j-th proposal depends on that split's training groups only).
* **Resumable and deterministic.** The sampler is seeded per split (``seed * 1000 + split``) and a
  trial is keyed by its parameters (``Config.key``, values rounded to 3 significant digits). A
  rerun replays each study: a proposal already in the log is told its logged score instead of
  being evaluated again; the scores round-trip through JSON exactly, so the replayed study
  proposes the same next trial and a resumed run ends where an uninterrupted one does.

Only the families whose hyper-parameters are continuous are searched (Hedge's ``eta`` / ``decay``,
the volatility-managed vote's ``target_vol`` / ``window``, ridge's and logistic's ``lam``). The
round-2 families (meta-labeling, the Moody-Saffell trader, oracle imitation) keep their grid: their
choices are few and discrete (horizon, seed), and each evaluation costs seconds.

Optuna is imported here, lazily, only when the search runs (the CLIs import no heavy library).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.research.candidates import Config, round2_grid

#: the searched families (continuous hyper-parameters); the others keep their grid
SEARCH_FAMILIES = ("hedge", "volmanaged", "ridge", "logistic")


def _r(x: float) -> float:
    """3 significant digits: readable keys, and a proposal a hair away from a logged one reuses it."""
    return float(f"{x:.3g}")


def suggest(trial: Any) -> Config:
    """The configuration an Optuna trial proposes (define-by-run: the family, then its parameters).

    Parameter names carry the family (``ridge_lam`` vs ``logistic_lam``) so TPE models each
    family's parameter on that family's trials only.
    """
    family = trial.suggest_categorical("family", list(SEARCH_FAMILIES))
    if family == "hedge":
        return Config(
            "hedge",
            {
                "eta": _r(trial.suggest_float("hedge_eta", 0.5, 50.0, log=True)),
                "decay": _r(trial.suggest_float("hedge_decay", 1e-4, 1e-2, log=True)),
            },
        )
    if family == "volmanaged":
        return Config(
            "volmanaged",
            {
                "target_vol": _r(trial.suggest_float("volmanaged_target_vol", 0.1, 1.5)),
                "window": int(trial.suggest_int("volmanaged_window", 24, 720, log=True)),
            },
        )
    return Config(family, {"lam": _r(trial.suggest_float(f"{family}_lam", 1e-3, 1e3, log=True))})


def fixed_configs(quick: bool = False) -> list[Config]:
    """The configurations still run as a grid beside the search (every split, as in grid mode)."""
    return round2_grid(quick)


def split_seed(seed: int, split: int) -> int:
    """The sampler seed of one outer split's study: deterministic, different per split."""
    return seed * 1000 + split


def run_study(n_trials: int, seed: int, score: Callable[[Config], float]) -> list[Config]:
    """``n_trials`` TPE proposals, each told ``score(config)`` (the mean inner-fold Sharpe).

    Returns the proposals in order (a configuration may repeat; its score is then the same).
    ``score`` is the only channel from the data to the sampler: it must read training bars only.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    proposed: list[Config] = []
    for _ in range(n_trials):
        trial = study.ask()
        cfg = suggest(trial)
        study.tell(trial, float(score(cfg)))
        proposed.append(cfg)
    return proposed
