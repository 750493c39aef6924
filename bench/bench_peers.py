"""The project side by side with the tools users would pick instead: vectorbt, NautilusTrader, freqtrade.

Same bars (the shared 37,387 hourly Bitstamp candles, ``--csv``), same strategies (the registry's
``supertrend`` and ``bband_rsi`` with the registry's parameters: every engine trades the targets the
project's own strategy code computes, so the strategies cannot differ), same fee model (taker fee
``--fee`` on every fill's notional, no slippage, no funding), long only with the whole equity, one
machine. Each (engine, strategy) job runs ``--runs`` times as a fresh process: wall seconds (spawn to
exit, median), CPU seconds (user + system of the process, median), peak RSS (max), and the job's own
numbers: compute seconds (the backtest without imports and CSV reading), trades, final return and
the fill model it used.

Engines:

* ``project_vectorized``: ``Strategy.evaluate`` over the history + ``training.ledger.simulate``;
* ``project_event``: one process, bar by bar, no Kafka: the strategy consumer's catch-up path
  (``Strategy.recommend_run``), the meta consumer's ``decide_tick`` (majority-vote fallback over the
  one strategy), the executor's average-cost book (``executor.ledger.apply_fill``) with the paper
  venue's fill arithmetic (``slipped_price``, ``taker_fee``);
* ``vectorbt_cold`` / ``vectorbt_warm``: ``Portfolio.from_signals``, with an empty numba cache
  directory per run, or one warmed before the timed runs;
* ``nautilus``: NautilusTrader's ``BacktestEngine`` on bars, a strategy that submits market orders;
* ``freqtrade``: ``freqtrade backtesting`` (its own process entry point, offline markets).

The project's engines run in the project's ``.venv``; the peers in ``bench/.venv-peers``
(``bench/peers-env.sh``), on the same numpy/pandas. A missing peer environment is reported, not
faked. Writes ``bench/results/peers.md``.

    bench/peers-env.sh && .venv/bin/python bench/bench_peers.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
#: The shared 37,387-bar set; a clone without it uses the bundled copy of the same bars.
SHARED_CSV = REPO.parent / "shared" / "data" / "btcusd_1h_bitstamp.csv"
BUNDLED_CSV = REPO / "data" / "btcusd_1h_bitstamp.csv.gz"
DEFAULT_CSV = SHARED_CSV if SHARED_CSV.exists() else BUNDLED_CSV
REPLAY_E2E = BENCH / "results" / "replay_e2e.md"
STRATEGIES = ("supertrend", "bband_rsi")
PROJECT_ENGINES = ("project_vectorized", "project_event")
PEER_ENGINES = ("vectorbt_cold", "vectorbt_warm", "nautilus", "freqtrade")
FILL = {
    "project_vectorized": "signal_close",
    "project_event": "signal_close",
    "vectorbt_cold": "signal_close",
    "vectorbt_warm": "signal_close",
    "nautilus": "signal_close",
    "freqtrade": "next_open",
}
#: How each engine puts the whole equity in a long (bench/peers_logic.py explains both).
SIZING = {
    "project_vectorized": "fee_inside",
    "project_event": "fee_on_top",
    "vectorbt_cold": "fee_inside",
    "vectorbt_warm": "fee_inside",
    "nautilus": "fee_inside",
    "freqtrade": "fee_on_top",
}


# --------------------------------------------------------------------------- the jobs (child side)


def _candles(csv: str) -> Any:
    sys.path.insert(0, str(REPO))
    from common.dataset import read_ohlcv_csv

    return read_ohlcv_csv(csv, strict=True)


def _strategy(name: str) -> Any:
    """The registry's strategy object, with the registry's parameters (what the services run)."""
    sys.path.insert(0, str(REPO))
    from common.registry import load_registry

    spec = next(s for s in load_registry().enabled if s.name == name)
    return spec.load_class()(
        params=dict(spec.params), lookback_hours=spec.lookback_hours, version=spec.version
    )


def _targets(candles: Any, strategy: str) -> Any:
    import numpy as np

    return _strategy(strategy).evaluate(candles)["target"].to_numpy(dtype=np.int64)


def job_project_vectorized(csv: str, strategy: str, fee: float) -> dict[str, Any]:
    import numpy as np

    from config import FillPrice
    from training.ledger import CostModel, simulate

    candles = _candles(csv)
    t0 = time.perf_counter()
    target = _targets(candles, strategy)
    close = candles["close"].to_numpy()
    ledger = simulate(
        target[:-1].astype(np.float64),
        close,
        np.zeros(len(close)),
        # The engine's fill model here (FILL): the signal bar's close, like vectorbt and Nautilus.
        CostModel(
            taker_fee=fee, slippage_bps=0.0, funding_rate_hourly=0.0, fill_price=FillPrice.SIGNAL_CLOSE
        ),
    )
    compute = time.perf_counter() - t0
    trades = int(((target[1:] == 1) & (target[:-1] == 0)).sum() + (target[0] == 1))
    return {"compute_s": compute, "trades": trades, "final_return": float(ledger.equity[-1] - 1.0)}


def job_project_event(csv: str, strategy: str, fee: float) -> dict[str, Any]:
    from common.events import OrderSide, SignalEvent, Target
    from common.observation import FeatureSpec
    from config import FallbackMode
    from executor.costs import slipped_price, taker_fee
    from executor.ledger import Holding, apply_fill
    from meta_consumer.decide import Carry, Choice, Mark, TickInput, decide_tick

    candles = _candles(csv)
    t0 = time.perf_counter()
    strat = _strategy(strategy)
    close = candles["close"].to_numpy().tolist()
    n, warm = len(close), strat.warmup_bars
    # Bars of the warm-up are answered FLAT (as the live service publishes them); the rest come from
    # the consumer's catch-up path, one frame for the run (ADR 0004: equal to bar-by-bar windows).
    flat = (Target.FLAT, SignalEvent.NONE, 0.0)
    run = strat.recommend_run(candles, n - warm, 0)
    recs = [flat] * warm + [(Target(_SIDE[r.target]), SignalEvent(r.event), r.confidence) for r in run]
    choice = Choice(
        model_id="", spec=FeatureSpec(strategies=(strategy,)), fallback=FallbackMode.MAJORITY_VOTE
    )
    # USD, as the executor books: its quantities are rounded to 1e-8 BTC, which must not bind.
    start_cash = 1_000_000.0
    carry, holding, cash, trades = Carry(), Holding(), start_cash, 0
    due = frozenset({strategy})
    stamps = candles.index.to_pydatetime()
    for t in range(n):
        tick = TickInput(
            tick_id=str(t),
            tick_time=stamps[t],
            due=due,
            recs={strategy: recs[t]},
            bar=Mark(str(t), (close[t],)),
            needs_bar=True,
        )
        out = decide_tick(tick, carry, choice, (strategy,), step=0.25, max_exposure=1.0)
        carry = out.carry
        if out.target_exposure == out.current_exposure:
            continue
        # The executor sizes the move at the bar's close (signal_close) against its equity.
        equity = cash + holding.quantity * close[t]
        qty = out.target_exposure * equity / close[t] - holding.quantity
        side = OrderSide.BUY if qty > 0 else OrderSide.SELL
        price = slipped_price(close[t], side, 0.0)
        cash -= qty * price + taker_fee(qty, price, fee)
        if holding.quantity == 0.0 and qty > 0:
            trades += 1
        holding, _ = apply_fill(holding, qty, price)
    compute = time.perf_counter() - t0
    final = cash + holding.quantity * close[-1]
    return {"compute_s": compute, "trades": trades, "final_return": final / start_cash - 1.0}


_SIDE = {1: "LONG", 0: "FLAT", -1: "SHORT"}


def job_vectorbt(csv: str, strategy: str, fee: float) -> dict[str, Any]:
    import vectorbt as vbt
    from peers_logic import entries_exits

    candles = _candles(csv)
    t0 = time.perf_counter()
    entries, exits = entries_exits(_targets(candles, strategy))
    pf = vbt.Portfolio.from_signals(
        candles["close"], entries, exits, fees=fee, init_cash=1.0, size=float("inf"), freq="1h"
    )
    final = float(pf.total_return())
    trades = int(pf.trades.count())
    compute = time.perf_counter() - t0
    return {"compute_s": compute, "trades": trades, "final_return": final}


def _freqtrade_user_dir(csv: str) -> Path:
    """freqtrade's user_data for the bench: the candles in its format, the config, the strategy.

    Made by the untimed first run (a freqtrade user converts or downloads data once); the timed runs
    read it as freqtrade always does. Markets are given offline (see :func:`_offline_markets`).
    """
    user = Path(os.environ["BENCH_PEERS_WORKDIR"]) / "user_data"
    data = user / "data" / "binance" / "BTC_USDT-1h.feather"
    if not data.exists():
        candles = _candles(csv).reset_index()
        data.parent.mkdir(parents=True, exist_ok=True)
        candles.to_feather(data)
        (user / "strategies").mkdir(parents=True, exist_ok=True)
        shutil.copy(BENCH / "peers_freqtrade_strategy.py", user / "strategies" / "project_targets.py")
        config = {
            "max_open_trades": 1,
            "stake_currency": "USDT",
            "stake_amount": "unlimited",
            "tradable_balance_ratio": 1.0,
            "dry_run": True,
            "dry_run_wallet": 1_000_000,
            "timeframe": "1h",
            "trading_mode": "spot",
            "exchange": {"name": "binance", "key": "", "secret": "", "pair_whitelist": ["BTC/USDT"]},
            "pairlists": [{"method": "StaticPairList"}],
            "entry_pricing": {"price_side": "same", "use_order_book": False},
            "exit_pricing": {"price_side": "same", "use_order_book": False},
            "dataformat_ohlcv": "feather",
        }
        (user / "config.json").write_text(json.dumps(config))
    return user


def _offline_markets() -> None:
    """The bench machine cannot reach an exchange, and freqtrade loads markets at start even to
    backtest. This gives its ccxt client one BTC/USDT spot market instead (what Binance lists,
    precision and limits that do not bind here); nothing else of freqtrade is changed."""
    from freqtrade.exchange.exchange import Exchange

    market = {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "baseId": "BTC",
        "quoteId": "USDT",
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "active": True,
        "linear": None,
        "inverse": None,
        "settle": None,
        "contractSize": None,
        "taker": 0.0005,
        "maker": 0.0005,
        "precision": {"amount": 1e-8, "price": 0.01},
        "limits": {
            "amount": {"min": 1e-8, "max": 1e9},
            "price": {"min": 0.01, "max": 1e9},
            "cost": {"min": 1e-8, "max": None},
            "leverage": {"min": None, "max": None},
        },
        "info": {},
    }

    async def load(self: Any, reload: bool = False) -> None:
        self._api_async.set_markets([market])

    Exchange._api_reload_markets = load  # type: ignore[method-assign]


def job_freqtrade(csv: str, strategy: str, fee: float) -> dict[str, Any]:
    user = _freqtrade_user_dir(csv)
    os.environ["BENCH_PEERS_STRATEGY"] = strategy
    os.environ["BENCH_PEERS_REPO"] = str(REPO)
    from freqtrade.commands import Arguments
    from freqtrade.commands.optimize_commands import setup_optimize_configuration
    from freqtrade.enums import RunMode
    from freqtrade.optimize.backtesting import Backtesting

    _offline_markets()
    argv = ["backtesting", "-c", str(user / "config.json"), "--userdir", str(user)]
    argv += ["--strategy", "ProjectTargets", "--fee", str(fee), "--export", "none", "--cache", "none"]
    args = Arguments(argv).get_parsed_arg()
    config = setup_optimize_configuration(args, RunMode.BACKTEST)
    t0 = time.perf_counter()
    bt = Backtesting(config)
    bt.start()
    compute = time.perf_counter() - t0
    stats = bt.results["strategy"]["ProjectTargets"]
    return {
        "compute_s": compute,
        "trades": int(stats["total_trades"]),
        "final_return": float(stats["profit_total"]),
    }


def job_nautilus(csv: str, strategy: str, fee: float) -> dict[str, Any]:
    """NautilusTrader's BacktestEngine on hourly bars; a nautilus Strategy that follows the targets."""
    from decimal import Decimal

    import pandas as pd
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.trading.strategy import Strategy

    candles = _candles(csv)
    t0 = time.perf_counter()
    target = _targets(candles, strategy).tolist()
    venue = Venue("BENCH")
    pair = CurrencyPair(
        instrument_id=InstrumentId(Symbol("BTCUSDT"), venue),
        raw_symbol=Symbol("BTCUSDT"),
        base_currency=BTC,
        quote_currency=USDT,
        price_precision=2,
        size_precision=8,
        price_increment=Price.from_str("0.01"),
        size_increment=Quantity.from_str("0.00000001"),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(str(fee)),
        taker_fee=Decimal(str(fee)),
    )
    bar_type = BarType.from_str("BTCUSDT.BENCH-1-HOUR-LAST-EXTERNAL")
    # Nautilus stamps a bar at its close: the candle's open time + 1 h.
    frame = candles.set_axis(candles.index + pd.Timedelta(hours=1)).rename_axis("timestamp")
    bars = BarDataWrangler(bar_type, pair).process(frame)
    start_cash = 10_000.0  # a size the bars' volume covers: nautilus fills against the bar's volume

    class FollowTargets(Strategy):  # type: ignore[misc]
        """Buys with the free cash when the target turns LONG, sells everything when it turns FLAT."""

        def __init__(self) -> None:
            super().__init__()
            self.k = 0
            self.trades = 0

        def on_start(self) -> None:
            self.subscribe_bars(bar_type)

        def on_bar(self, bar: Bar) -> None:
            k, self.k = self.k, self.k + 1
            was = target[k - 1] if k else 0
            if target[k] == was:
                return
            if target[k] == 1:
                free = float(self.portfolio.account(venue).balance_free(USDT).as_double())
                # The cash account must cover notional + commission, so the fee comes out of the cash.
                qty = pair.make_qty(free / (float(bar.close) * (1.0 + fee)) * (1 - 1e-6))  # 1 ppm: rounding
                self.submit_order(self.order_factory.market(pair.id, OrderSide.BUY, qty))
                self.trades += 1
            else:
                held = self.portfolio.net_position(pair.id)
                if held > 0:
                    qty = pair.make_qty(float(held))
                    self.submit_order(self.order_factory.market(pair.id, OrderSide.SELL, qty))

    engine = BacktestEngine(
        BacktestEngineConfig(trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=None,
        starting_balances=[Money(start_cash, USDT), Money(0, BTC)],
    )
    engine.add_instrument(pair)
    engine.add_data(bars)
    follow = FollowTargets()
    engine.add_strategy(follow)
    engine.run()
    compute = time.perf_counter() - t0
    account = engine.portfolio.account(venue)
    held = float(account.balance_total(BTC).as_double())
    cash = float(account.balance_total(USDT).as_double())
    final = (cash + held * float(candles["close"].iloc[-1])) / start_cash - 1.0
    if os.environ.get("BENCH_PEERS_DEBUG"):
        print(engine.trader.generate_order_fills_report().head(6).to_string(), file=sys.stderr)
    engine.dispose()
    return {"compute_s": compute, "trades": follow.trades, "final_return": final}


JOBS = {
    "project_vectorized": job_project_vectorized,
    "project_event": job_project_event,
    "vectorbt_cold": job_vectorbt,
    "vectorbt_warm": job_vectorbt,
    "freqtrade": job_freqtrade,
    "nautilus": job_nautilus,
}


def run_job(engine: str, csv: str, strategy: str, fee: float) -> None:
    """Child side: one job, its result as one JSON line on stdout."""
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(REPO))
    result = JOBS[engine](csv, strategy, fee)
    result["fill"] = FILL[engine]
    result["sizing"] = SIZING[engine]
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------ the orchestrator (parent)


def python_for(engine: str) -> Path:
    return Path(sys.executable) if engine in PROJECT_ENGINES else PEERS_PYTHON


def spawn(engine: str, strategy: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One fresh process: wall, CPU and peak RSS from the kernel (wait4), and its result line."""
    cmd = [str(python_for(engine)), str(Path(__file__).resolve()), "--job", engine, "--strategy", strategy]
    cmd += ["--csv", str(args.csv), "--fee", str(args.fee)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{engine}/{strategy} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    result.update(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024)
    return result


def measure(engine: str, strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    """Median of ``args.runs`` fresh processes (vectorbt_cold: each with an empty numba cache)."""
    cache = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    env = dict(os.environ, PYTHONHASHSEED="0", BENCH_PEERS_WORKDIR=str(cache))
    runs = []
    try:
        if engine in ("vectorbt_warm", "freqtrade", "nautilus"):
            # Not timed: vectorbt compiles into its numba cache, freqtrade's candles are written in
            # its own format (once, as its users do), and every engine finds the files in the page
            # cache, as the project's engines do after their first run.
            env["NUMBA_CACHE_DIR"] = str(cache / "numba")
            spawn(engine, strategy, args, env)
        for _ in range(args.runs):
            if engine == "vectorbt_cold":
                shutil.rmtree(cache / "numba", ignore_errors=True)
                env["NUMBA_CACHE_DIR"] = str(cache / "numba")
            runs.append(spawn(engine, strategy, args, env))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    first = runs[0]
    return {
        "engine": engine,
        "strategy": strategy,
        "fill": first["fill"],
        "sizing": SIZING[engine],
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "compute_s": statistics.median(r["compute_s"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "trades": first["trades"],
        "final_return": first["final_return"],
        "runs": len(runs),
    }


def references(csv: Path, fee: float) -> dict[tuple[str, str, str], Any]:
    """The bench's own trades/return per (strategy, fill model), from the project's targets."""
    sys.path.insert(0, str(BENCH))
    from peers_logic import FILL_MODELS, SIZINGS, fill_prices, simulate_long_only

    candles = _candles(str(csv))
    o, c = candles["open"].to_numpy(), candles["close"].to_numpy()
    out: dict[tuple[str, str, str], Any] = {}
    for s in STRATEGIES:
        target = _targets(candles, s)
        for model in FILL_MODELS:
            for sizing in SIZINGS:
                out[(s, model, sizing)] = simulate_long_only(
                    target, fill_prices(o, c, model), c[-1], fee, sizing
                )
    return out


def versions() -> str:
    if not PEERS_PYTHON.exists():
        return "bench/.venv-peers missing"
    code = (
        "import importlib.metadata as m;print(', '.join(f'{p} {m.version(p)}' for p in "
        "('vectorbt','numba','nautilus_trader','freqtrade','numpy','pandas')))"
    )
    return subprocess.run(
        [str(PEERS_PYTHON), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


NOTES = """\
Reading the table:
- wall s: spawn to exit of a fresh process (imports, CSV read, backtest, result), median; CPU s:
  user + system of that process (from wait4), median; compute s: the backtest alone, as the job
  timed it (signals from the project's strategy code included, imports and CSV read not); peak
  RSS: the largest of the runs.
- fill: the price a change decided at a bar's close gets. signal_close: that close (the
  project's vectorized backtest and its event-driven path as measured here, vectorbt with
  price = close, NautilusTrader filling a market order against the bar it was sent on);
  next_open: the next bar's open (freqtrade). The close and the next open differ on part of the
  bars by a few bp, so the same trades give a different return.
- sizing: how "the whole equity" is put in a long. fee_inside: notional + entry fee = equity
  (vectorbt size=inf; the Nautilus cash account, which must cover the commission; the project's
  ledger, whose fee is a fraction of the equity before the bar); fee_on_top: notional = equity,
  the fee is owed on top (the executor at exposure 1.0; freqtrade stake_amount unlimited).
- reference: bench/peers_logic.py over the project's targets with the row's fill and sizing.
  A return that differs from it in the second decimal is that engine's rounding (vectorbt and
  Nautilus keep a ppm of cash idle or round quantities; the project's ledger takes the entry
  fee before the bar's return instead of after it; freqtrade closes a position still open at the
  end at the last bar's open, with the exit fee, where the reference marks it at the last close).
- vectorbt_cold: an empty numba cache directory per run (every jitted function compiles);
  vectorbt_warm: the cache filled by one untimed run. freqtrade's candles are written once,
  untimed, in its feather format; its markets are given offline (the bench machine reaches no
  exchange).
- project_event answers the strategy from the consumer's catch-up path (Strategy.recommend_run,
  one frame, equal bar for bar: ADR 0004); the meta decision (decide_tick, majority vote over the
  one strategy) and the book run bar by bar. The live service's per-bar path, the incremental
  stepper plus the warm transition (ADR 0022), would cost 6.0 s CPU for supertrend and 3.5 s for
  bband_rsi over this set (measured 2026-12-07, load 3) instead of ~1 s; before the steppers, the
  per-bar window recomputation cost ~3 ms per bar, ~2 min per strategy."""


def kafka_reference() -> str:
    """The topic replay through Kafka, quoted from bench_replay_e2e's last result (not re-run)."""
    if not REPLAY_E2E.exists():
        return "Kafka topic replay: no bench/results/replay_e2e.md to quote (bench/bench_replay_e2e.py)."
    rows = REPLAY_E2E.read_text().splitlines()
    date = next((x for x in rows if x.startswith("Date:")), "Date: ?").removeprefix("Date:").strip()

    def cells(key: str) -> str:
        row = next((x for x in rows if key in x and x.startswith("|")), "")
        return ": ".join(c.strip().replace("**", "") for c in row.strip("| ").split("|"))

    return (
        f"For reference, quoted from bench_replay_e2e ({date}), not re-run here: the topic replay "
        "through Kafka, every service its own process, majority vote over five strategies, paper "
        f"venue; {cells('window')}; {cells('ticks (')}; {cells('end to end')}."
    )


def report(
    rows: list[dict[str, Any]], refs: dict[tuple[str, str, str], Any], args: argparse.Namespace
) -> str:
    from machine import cpu_model  # bench/machine.py (this script's folder is on sys.path)

    load = os.getloadavg()
    lines = [
        "# bench_peers",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"load average before {args.load_before}, after {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"- data: {args.csv} ({args.bars:,} bars); fee {args.fee:g} per fill (taker), no slippage, "
        f"no funding; long only, whole equity; each row: median of its runs, fresh processes, peak RSS max",
        f"- project python {platform.python_version()}; peers: {versions()}",
        "",
        "| strategy | engine | fill | sizing | wall s | CPU s | compute s | peak RSS MB | trades |"
        " final return | reference (same fill, sizing) | runs |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = refs[(r["strategy"], r["fill"], SIZING[r["engine"]])]
        lines.append(
            f"| {r['strategy']} | {r['engine']} | {r['fill']} | {SIZING[r['engine']]} | "
            f"{r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['compute_s']:.3f} | {r['rss_mb']:.0f} | "
            f"{r['trades']} | {r['final_return']:+.2%} | "
            f"{ref.trades} / {ref.final_return:+.2%} | {r['runs']} |"
        )
    sys.path.insert(0, str(BENCH))
    from peers_logic import close_vs_next_open

    candles = _candles(str(args.csv))
    differ, compared, gap_bp = close_vs_next_open(candles["open"].to_numpy(), candles["close"].to_numpy())
    lines += [
        "",
        *NOTES.splitlines(),
        "",
        f"On these bars the next open differs from the signal bar's close on {differ:,} of {compared:,} "
        f"bars, by {gap_bp:.1f} bp on average (bench/peers_logic.py close_vs_next_open).",
        "",
        kafka_reference(),
    ]
    for s in STRATEGIES:
        for sizing in ("fee_inside", "fee_on_top"):
            a, b = refs[(s, "signal_close", sizing)], refs[(s, "next_open", sizing)]
            lines.append(
                f"\n{s}, {sizing}: reference signal_close {a.trades} trades {a.final_return:+.2%}, "
                f"next_open {b.trades} trades {b.final_return:+.2%}"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="supertrend")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--engines", default=",".join(PROJECT_ENGINES + PEER_ENGINES))
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--fee", type=float, default=0.0005, help="taker fee per fill (config default)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "peers.md")
    args = parser.parse_args()
    if args.job:
        run_job(args.job, str(args.csv), args.strategy, args.fee)
        return
    if not args.csv.exists():
        sys.exit(f"no candle CSV at {args.csv}: pass --csv (the shared 37,387-bar hourly set)")
    engines = [e for e in args.engines.split(",") if e]
    peers = [e for e in engines if e not in PROJECT_ENGINES]
    if peers and not PEERS_PYTHON.exists():
        # What this benchmark needs and `make env` does not install: build it (needs PyPI).
        print("bench/.venv-peers missing: running bench/peers-env.sh", flush=True)
        if subprocess.run([str(BENCH / "peers-env.sh")], check=False).returncode != 0:
            sys.exit(
                "bench/peers-env.sh failed (see above), so the peers cannot run; "
                f"--engines {','.join(PROJECT_ENGINES)} measures the project alone"
            )
    args.load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    refs = references(args.csv, args.fee)
    args.bars = len(_candles(str(args.csv)))
    rows = []
    for s in [x for x in args.strategies.split(",") if x]:
        for e in engines:
            row = measure(e, s, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    text = report(rows, refs, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
