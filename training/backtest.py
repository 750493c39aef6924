"""Deterministic backtests on one window: a policy (observation -> decision) or the baselines.

A policy runs bar by bar, because its observation contains the portfolio its own earlier decisions
built (exposure, unrealized PnL): exactly the loop of the live meta consumer, with the same
observation builder (``Market.observe``) and portfolio functions. Costs never feed back into the
observation, so the exposure path is decided first and the ledger is computed afterwards by the
one execution model (``training.ledger.simulate``) that also prices the baselines and the env.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from common.actions import apply_actions
from common.portfolio import next_entry_price
from training.baselines import baseline_exposure, baseline_names
from training.ledger import CostModel, Ledger, simulate
from training.market import Market
from training.metrics import summarize
from training.split import Window

PolicyFn = Callable[[np.ndarray], Any]


def policy_exposure(
    policy: Any,
    market: Market,
    window: Window,
    *,
    output: Literal["discrete", "target"] | None = None,
    step: float = 0.25,
    max_exposure: float = 1.0,
) -> np.ndarray:
    """Exposures a policy chooses at bars ``window.start .. window.end - 2``, starting flat.

    ``policy`` is a ``common.policy.Policy`` (its ``targets`` is what the live consumer
    moves to) or a callable ``obs[1, dim] -> [action index]`` (``output="discrete"``) or
    ``-> [target exposure]`` (``output="target"``, snapped to the grid).
    """
    exposure: np.ndarray = np.zeros(1)
    entry: np.ndarray = np.full(1, np.nan)
    out = np.empty(len(window) - 1)
    has_targets = hasattr(policy, "targets")
    for k, t in enumerate(range(window.start, window.end - 1)):
        obs = market.observe(np.array([t]), exposure, entry)
        if has_targets:
            new = np.asarray(policy.targets(obs, exposure), dtype=np.float64)
        elif output == "discrete":
            new = apply_actions(np.asarray(policy(obs)).reshape(1), exposure, step, max_exposure)
        elif output == "target":
            wanted = np.asarray(policy(obs), dtype=np.float64).reshape(1)
            new = apply_actions(np.zeros(1, dtype=np.int64), wanted, step, max_exposure)
        else:
            raise ValueError("a plain callable policy needs output='discrete' or 'target'")
        entry = next_entry_price(exposure, entry, new, market.close[t : t + 1])
        exposure = new
        out[k] = new[0]
    return out


def ledger_for(exposure: np.ndarray, market: Market, window: Window, costs: CostModel) -> Ledger:
    sl = window.as_slice()
    return simulate(exposure, market.close[sl], market.hours[sl], costs, open_=market.open[sl])


def run_baselines(
    market: Market,
    window: Window,
    costs: CostModel | None = None,
    *,
    step: float = 0.25,
    max_exposure: float = 1.0,
) -> dict[str, Ledger]:
    """Ledger of every baseline on ``window`` (same bars, same costs)."""
    c = costs or CostModel.configured()
    names = baseline_names(market.signals.strategies)
    return {
        n: ledger_for(
            baseline_exposure(n, market.signals, window, step=step, max_exposure=max_exposure),
            market,
            window,
            c,
        )
        for n in names
    }


def evaluate(ledgers: dict[str, Ledger]) -> dict[str, dict[str, float | int]]:
    """Metrics per name, in the given order."""
    return {name: summarize(ledger) for name, ledger in ledgers.items()}


def format_table(results: dict[str, dict[str, float | int]]) -> str:
    """A fixed-width text table (what the ``baselines`` command prints)."""
    cols = [
        ("total_return", "{:+.1%}"),
        ("cagr", "{:+.1%}"),
        ("sharpe", "{:.2f}"),
        ("sortino", "{:.2f}"),
        ("calmar", "{:.2f}"),
        ("max_drawdown", "{:.1%}"),
        ("win_rate", "{:.0%}"),
        ("trades", "{:d}"),
        ("turnover", "{:.1f}"),
        ("fees_paid", "{:.2%}"),
        ("funding_paid", "{:.2%}"),
        ("time_in_market", "{:.0%}"),
    ]
    width = max(len(n) for n in results) + 2
    head = "name".ljust(width) + "".join(c.rjust(15) for c, _ in cols)
    lines = [head, "-" * len(head)]
    for name, row in results.items():
        lines.append(name.ljust(width) + "".join(fmt.format(row[c]).rjust(15) for c, fmt in cols))
    return "\n".join(lines)
