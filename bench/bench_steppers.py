"""Benchmark the live per-bar strategy path: incremental stepper vs the warm window recomputation.

Run: ``.venv/bin/python bench/bench_steppers.py`` (writes bench/results/steppers.md).
Per strategy with a stepper (ADR 0022): every one of the 37,387 bundled bars pushed through the
stepper (state only, and with the warm transition that builds the published answer), against
``recommend(window, prev_target)`` on the last ``warmup_bars + 1`` bars, the path a bar took before
(median over 300 consecutive bars of 2022). CPU time of this process.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from common.dataset import load_bundled_candles  # noqa: E402
from strategy_consumers.strategies import BUILTIN, builtin_strategy  # noqa: E402
from strategy_consumers.strategies.stepping import as_arrays  # noqa: E402

WINDOW_BARS = 300


def main() -> None:
    candles = load_bundled_candles()
    times = candles.index.as_unit("ns").asi8.tolist()
    cols = [candles[c].to_numpy(np.float64).tolist() for c in ("open", "high", "low", "close", "volume")]
    bars = list(zip(times, *cols, strict=True))
    load = os.getloadavg()
    rows = []
    for name in BUILTIN:
        strategy = builtin_strategy(name)
        stepper = strategy.stepper()
        if stepper is None:
            continue
        t0 = time.process_time()
        for bar in bars:
            stepper.push(bar)
        state_us = (time.process_time() - t0) / len(bars) * 1e6
        stepper.reset()
        t0 = time.process_time()
        prev = 0
        for bar in bars:
            prev = strategy.warm_result(as_arrays(stepper.push(bar)), prev).target
        answer_us = (time.process_time() - t0) / len(bars) * 1e6
        target = strategy.evaluate(candles)["target"].to_numpy()
        first = len(candles) - 2 * WINDOW_BARS
        window_ms = []
        for t in range(first, first + WINDOW_BARS):
            window = candles.iloc[t - strategy.warmup_bars : t + 1]
            c0 = time.process_time()
            strategy.recommend(window, prev_target=int(target[t - 1]))
            window_ms.append((time.process_time() - c0) * 1e3)
        rows.append((name, strategy.warmup_bars + 1, state_us, answer_us, statistics.median(window_ms)))
    lines = [
        "# Live per-bar strategy path: stepper vs window (bench_steppers)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine); python {platform.python_version()}",
        f"- data: bundled BTC/USD 1h, {len(bars):,} bars; CPU time of this process",
        "",
        "| strategy | warm tail (bars) | stepper, state only (µs/bar) | stepper + published answer (µs/bar) "
        f"| window recomputation (ms/bar, median of {WINDOW_BARS}) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {w:,} | {s:.1f} | {a:.1f} | {m:.2f} |" for n, w, s, a, m in rows],
        "",
        "Stepped answers equal the window's bit for bit (tests/unit/strategies/test_stepping.py); the "
        "answer column adds `Strategy.warm_result` (numpy on one-element arrays, ~40-100 µs).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results" / "steppers.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
