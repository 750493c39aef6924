"""Vectorized training env throughput: env steps per second (num_envs x steps / wall time).

Run: ``.venv/bin/python bench/bench_env.py`` (about a minute). Real bundled data and the real
strategy signals; random actions drawn up front so only the env is timed (observation building with
the live builder, action rule, portfolio, ledger, auto-reset). Target: > 1,000,000 steps/s on 2
cores. Writes ``bench/results/env.md``. A FinRL comparison needs the ``training`` group (finrl,
torch), which this round does not install; it is left for the round that adds the agents.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from training.data import load_candles  # noqa: E402
from training.env import BtcPerpVecEnv  # noqa: E402
from training.features import fit_stats  # noqa: E402
from training.market import Market  # noqa: E402
from training.signals import compute_signals  # noqa: E402
from training.split import time_split  # noqa: E402

STEPS = 200
REPEATS = 5


def measure(market: Market, window, num_envs: int, reward: str) -> list[float]:
    env = BtcPerpVecEnv(market, window, num_envs=num_envs, max_step=720, seed=0, reward=reward)  # type: ignore[arg-type]
    env.reset()
    actions = np.random.default_rng(0).integers(0, env.action_dim, size=(STEPS, num_envs))
    for a in actions[:20]:  # warm-up
        env.step(a)
    rates = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        rates.append(num_envs * STEPS / (time.perf_counter() - t0))
    return rates


def main() -> None:
    candles = load_candles()
    sig = compute_signals(candles)
    fold = time_split(len(candles), start=sig.warmup)
    stats = fit_stats(candles["close"].to_numpy(), fold.train)
    market = Market.build(candles, sig, stats.spec(sig.strategies))
    rows = []
    for reward in ("pnl", "dsr"):
        for n in (256, 1024, 4096, 16384):
            r = measure(market, fold.train, n, reward)
            rows.append(f"| {n:,} | {reward} | {statistics.median(r):,.0f} | {max(r):,.0f} | "
                        f"{1e6 * n / statistics.median(r):,.0f} |")
            print(rows[-1], flush=True)
    machine = subprocess.run(["uname", "-srmo"], capture_output=True, text=True).stdout.strip()
    text = (
        f"# bench_env\n\nDate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  \n"
        f"Machine: {machine}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load average at start {os.getloadavg()[0]:.1f} (shared)  \n"
        f"Data: bundled real BTC/USD 1h ({len(candles):,} bars), {len(sig.strategies)} strategies, "
        f"observation dim {market.spec.dim}; {STEPS} steps x {REPEATS} repeats per row, random actions, "
        f"episodes of 720 steps with auto-reset. Target: > 1,000,000 env steps/s.\n\n"
        "| num_envs | reward | median env steps/s | best env steps/s | µs per vector step |\n"
        "|---:|---|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "FinRL's env was not measured: finrl and torch belong to the `training` dependency group, "
        "which this round does not install.\n"
    )
    out = REPO / "bench" / "results" / "env.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
