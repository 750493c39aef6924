"""Vectorized training env throughput: env steps per second (num_envs x steps / wall time).

Run: ``.venv/bin/python bench/bench_env.py`` (about a minute). Real bundled data and the real
strategy signals; random actions drawn up front so only the env is timed (observation building with
the live builder, action rule, portfolio, ledger, auto-reset). Target: > 1,000,000 steps/s on 2
cores. Writes ``bench/results/env.md``.

Next to it, FinRL 0.3.7's crypto env (``finrl/meta/env_cryptocurrency_trading/env_multiple_crypto.py``,
``CryptoEnv``) on the same bars: price array = the bundled closes, tech array = our observation
features at zero exposure (so its state, 45 wide, carries what ours carries), random continuous
actions, one env (FinRL's env is not vectorized), stepped from its reset through the training
window. ``import finrl...`` runs ``finrl/__init__.py``, which imports FinRL's train/trade/test
stack (gymnasium, stable-baselines3, ...: not installed, and FinRL's wheel declares no
dependencies); the env module itself needs only numpy, so it is loaded alone from its file.
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

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

from training.data import load_candles  # noqa: E402
from training.env import BtcPerpVecEnv  # noqa: E402
from training.features import fit_stats  # noqa: E402
from training.market import Market  # noqa: E402
from training.signals import compute_signals  # noqa: E402
from training.split import time_split  # noqa: E402

STEPS = 200
REPEATS = 5
FINRL_STEPS = 5_000


def measure(market: Market, window, num_envs: int, reward: str, steps: int = STEPS) -> list[float]:
    env = BtcPerpVecEnv(market, window, num_envs=num_envs, max_step=720, seed=0, reward=reward)  # type: ignore[arg-type]
    env.reset()
    actions = np.random.default_rng(0).integers(0, env.action_dim, size=(steps, num_envs))
    for a in actions[:20]:  # warm-up
        env.step(a)
    rates = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        rates.append(num_envs * steps / (time.perf_counter() - t0))
    return rates


def load_finrl_crypto_env() -> type:
    """FinRL's ``CryptoEnv`` class, from its module file alone (see the module doc)."""
    spec = importlib.util.find_spec("finrl")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("finrl is not installed (training dependency group)")
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "meta"
        / "env_cryptocurrency_trading"
        / ("env_multiple_crypto.py")
    )
    mod_spec = importlib.util.spec_from_file_location("finrl_env_multiple_crypto", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.CryptoEnv  # type: ignore[no-any-return]


def measure_finrl(market: Market, window, steps: int) -> list[float]:
    close = market.close[window.as_slice()]
    t = np.arange(window.start, window.end)
    tech = market.observe(t, np.zeros(len(t)), np.full(len(t), np.nan)).astype(np.float64)
    crypto_env = load_finrl_crypto_env()
    env = crypto_env({"price_array": close[:, None], "tech_array": tech}, lookback=1)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, 1))
    rates = []
    for _ in range(REPEATS):
        env.reset()
        t0 = time.perf_counter()
        for a in actions:
            env.step(a.copy())  # CryptoEnv scales its action argument in place
        rates.append(steps / (time.perf_counter() - t0))
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
            rows.append(
                f"| {n:,} | {reward} | {statistics.median(r):,.0f} | {max(r):,.0f} | "
                f"{1e6 * n / statistics.median(r):,.0f} |"
            )
            print(rows[-1], flush=True)
    single = measure(market, fold.train, 1, "pnl", steps=FINRL_STEPS)
    finrl = measure_finrl(market, fold.train, FINRL_STEPS)
    finrl_rows = [
        f"| ours (`BtcPerpVecEnv`), num_envs=1, pnl | {statistics.median(single):,.0f} | "
        f"{1e6 / statistics.median(single):,.1f} |",
        f"| FinRL `CryptoEnv` (one env) | {statistics.median(finrl):,.0f} | "
        f"{1e6 / statistics.median(finrl):,.1f} |",
    ]
    print("\n".join(finrl_rows), flush=True)
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
        f"## Next to FinRL's crypto env\n\n"
        f"FinRL 0.3.7 `CryptoEnv` (finrl/meta/env_cryptocurrency_trading/env_multiple_crypto.py, loaded "
        f"from its file alone) on the same training window: price array = bundled closes, tech array = "
        f"our {market.spec.dim} observation features, random continuous actions, {FINRL_STEPS:,} "
        f"steps x {REPEATS} repeats, median. FinRL's env is one episode at a time (no vector form); "
        f"its state is cash, holdings and the tech row; it is long-only (it sells only what it holds), "
        f"has no funding and starts every episode at the window's first bar. Per step it reads a "
        f"precomputed tech row and does its cash/holdings arithmetic in plain Python; ours builds the "
        f"observation with the live builder (exposure, unrealized PnL, signal ages) and the ledger terms, "
        f"numpy calls whose fixed cost is why one env alone is slower and why the vector form (table "
        f"above) is what training uses.\n\n"
        "| env | env steps/s | µs per step |\n|---|---:|---:|\n" + "\n".join(finrl_rows) + "\n"
    )
    out = REPO / "bench" / "results" / "env.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
