"""Per-window compute of the issue-15 strategies (4h/1d, exogenous inputs): prints a table.

Run: ``.venv/bin/python bench/bench_strategies_exogenous.py [--windows N]``. For each strategy,
on the real data (bundled hourly candles, the shared exogenous files), over N windows spread where
its inputs exist, the median and p95 of:

* warm: ``recommend(window, prev_target=..., exogenous=...)``, what the live service runs per bar
  (the budget is < 5 ms per window);
* cold: ``recommend(window, exogenous=...)``, the restart path (target rebuilt from the window);
* cut: ``Strategy.cut_exogenous`` (each input cut to what the live path delivers: published by the
  window's close, from the strategy's reach on), part of tick preparation;
plus the whole-history batch pass. Timings are not asserted anywhere (the machine is shared).

``--stats`` prints, instead, each strategy's standalone record on the same data: its target per
1h bar (as the signals command writes it) traded alone with the training ledger's costs (taker fee,
slippage, funding), Sharpe over the whole set and over its last 40 %, turnover, time in the
market, coverage (share of 1h bars with an opinion), and the correlation of the hourly positions
with every other strategy, old and new.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from strategy_consumers.strategies import BUILTIN, builtin_strategy  # noqa: E402
from strategy_consumers.strategies.base import Strategy  # noqa: E402
from tests.unit.strategies.exo_parity import NEW, frame_of, inputs, make  # noqa: E402
from training.data import hours_between  # noqa: E402
from training.ledger import CostModel, simulate  # noqa: E402
from training.metrics import sharpe  # noqa: E402
from training.signals import hourly_targets  # noqa: E402


def timed(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def hourly_opinion(strategy: Strategy, candles: pd.DataFrame, exo: dict[str, pd.DataFrame]) -> np.ndarray:
    """True at the 1h bars where the strategy's latest answer had an opinion (no reason given)."""
    frame = frame_of(strategy.timeframe)
    ev = strategy.evaluate(frame, exogenous=exo)
    if "reason" not in ev:
        return np.ones(len(candles), dtype=bool)
    ok = (ev["reason"] == "").to_numpy()
    tf_close = (frame.index + pd.Timedelta(strategy.timeframe)).asi8
    last = np.searchsorted(tf_close, (candles.index + pd.Timedelta(hours=1)).asi8, side="right") - 1
    return np.where(last >= 0, ok[np.maximum(last, 0)], False)


def stats() -> None:
    candles, exo = inputs()
    close = candles["close"].to_numpy(np.float64)
    hours = hours_between(pd.DatetimeIndex(candles.index))
    costs = CostModel()
    positions: dict[str, np.ndarray] = {}
    for name in BUILTIN:
        positions[name] = hourly_targets(builtin_strategy(name), candles).astype(np.float64)
    split = int(len(candles) * 0.6)
    print(
        f"data: {candles.index[0]} .. {candles.index[-1]} ({len(candles)} 1h bars); last 40 % from "
        f"{candles.index[split]}; costs: taker {costs.taker_fee:.4%} + slippage {costs.slippage_bps:g} bp "
        f"per fill, funding {costs.funding_rate_hourly:.5%}/h on longs"
    )
    print("| strategy | tf | Sharpe, all | Sharpe, last 40 % | turnover (sides/yr) | in market | coverage |")
    print("|---|---|---:|---:|---:|---:|---:|")
    years = len(candles) / (24 * 365)
    for name in NEW:
        strategy = make(name)
        pos = hourly_targets(strategy, candles, exo).astype(np.float64)
        positions[name] = pos
        ledger = simulate(pos[:-1], close, hours, costs, open_=candles["open"].to_numpy(dtype=np.float64))
        net = ledger.net
        turnover = float(np.abs(np.diff(np.concatenate([[0.0], pos]))).sum()) / years
        cover = hourly_opinion(strategy, candles, exo).mean()
        print(
            f"| {name} | {strategy.timeframe} | {sharpe(net):.2f} | {sharpe(net[split:]):.2f} "
            f"| {turnover:.0f} | {np.mean(pos != 0):.0%} | {cover:.0%} |"
        )
    corr = pd.DataFrame(positions).corr().round(2)
    print()
    print("Correlation of hourly positions (new strategies in rows):")
    print("| | " + " | ".join(corr.columns) + " |")
    print("|---|" + "---:|" * len(corr.columns))
    for name in NEW:
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in corr.loc[name]) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=200, help="windows per strategy")
    ap.add_argument("--stats", action="store_true", help="standalone Sharpe/turnover/coverage instead")
    args = ap.parse_args()
    if args.stats:
        stats()
        return
    _, exo = inputs()
    rows = []
    for name in NEW:
        strategy = make(name)
        df = frame_of(strategy.timeframe)
        need = strategy.bars_needed()
        full = strategy.evaluate(df, exogenous=exo)  # also warms imports and the headline scores
        batch = min(timed(strategy.evaluate, df, exogenous=exo) for _ in range(3))
        target = full["target"].to_numpy()
        # Windows where the strategy has an opinion (inputs present) when it reads any, else anywhere.
        usable = [
            t for t in range(need, len(df)) if not strategy.exogenous_inputs or full["reason"].iloc[t] == ""
        ]
        step = max(1, len(usable) // args.windows)
        warm: list[float] = []
        cold: list[float] = []
        cut_t: list[float] = []
        for t in usable[::step][: args.windows]:
            window = df.iloc[t - need + 1 : t + 1]
            cut_t.append(timed(strategy.cut_exogenous, exo, window))
            delivered = strategy.cut_exogenous(exo, window)
            prev = int(target[t - 1])
            warm.append(timed(strategy.recommend, window, prev_target=prev, exogenous=delivered))
            cold.append(timed(strategy.recommend, window, exogenous=delivered))
        rows.append(
            (
                name,
                strategy.timeframe,
                need,
                len(warm),
                statistics.median(warm),
                p95(warm),
                statistics.median(cold),
                p95(cold),
                statistics.median(cut_t),
                batch,
                len(df),
            )
        )
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, load average {load}; "
        f"python {platform.python_version()}"
    )
    print(
        "| strategy | tf | window bars | windows | warm median (ms) | warm p95 | cold median | cold p95 "
        "| cut inputs (ms) | whole history (ms, bars) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, tf, need, k, wm, wp, cm, cp, cut_ms, batch, n in rows:
        print(
            f"| {name} | {tf} | {need} | {k} | {wm * 1e3:.2f} | {wp * 1e3:.2f} | {cm * 1e3:.2f} "
            f"| {cp * 1e3:.2f} | {cut_ms * 1e3:.2f} | {batch * 1e3:.0f} ({n}) |"
        )


if __name__ == "__main__":
    main()
