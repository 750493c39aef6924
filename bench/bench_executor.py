"""Executor throughput with the paper venue: intents handled per second, in process.

Measures ``Executor.handle`` end to end against the real Postgres (a throw-away database, migrated
to head): dedup, reconciliation, risk, venue transaction, booking, P&L; the report is encoded but
not sent to Kafka (the Kafka round trip is measured by the chaos test). Writes
``bench/results/executor.md`` with the machine and date.

    .venv/bin/python bench/bench_executor.py [--intents 500] [--profile] [--replay] [--hold 0.97]
        [--batch 200]

``--replay`` measures the topic-replay configuration instead: real hourly candles (bundled data)
as the price feed, the replayed clock following the intents' tick times (one per hour), hourly
funding settled by the paper venue, as ``python -m ops replay-backtest`` runs it.
``--hold S``: a share S of intents keeps the previous target (no order), as most ticks of a replay do.
``--batch N``: ``Executor.handle_batch`` over N intents at a time (the replay executor's batches,
ADR 0018) instead of ``handle`` per intent.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from common import serde  # noqa: E402
from common.db.session import make_engine  # noqa: E402
from common.events import ExecutionReport, IntentAction, OrderIntent  # noqa: E402
from common.ids import make_tick_id  # noqa: E402
from common.logging import configure_logging  # noqa: E402
from config import RiskLimits, load_settings  # noqa: E402
from executor.clock import CandlePriceFeed, Clock, FixedPriceFeed, PriceFeed, ReplayClock, SystemClock  # noqa: E402
from executor.exchanges.paper import PaperExchange  # noqa: E402
from executor.service import Executor  # noqa: E402


def discard(report: ExecutionReport) -> None:
    """The publish step without a broker: the report is still encoded, as a producer would."""
    serde.encode(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--replay", action="store_true", help="candle prices, replayed clock, hourly ticks")
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="share of intents that keep the previous target (a replay: ~0.97 hold)",
    )
    parser.add_argument("--batch", type=int, default=1, help="intents per handle_batch call (1: handle)")
    args = parser.parse_args()
    from bench._needs import require, throwaway_database

    # Postgres (a throw-away database of its own)
    require(postgres=True)
    configure_logging("bench-executor", "WARNING", json=True)
    with throwaway_database() as url:
        settings = load_settings(
            database_url=url,
            risk=RiskLimits(
                max_position_btc=1, max_order_btc=0.5, max_orders_per_hour=10**6, daily_loss_cap_usd=10**9
            ),
        )
        engine = make_engine(url)
        # Live: ticks that just happened (the executor ages an intent by its tick, against its clock;
        # minute ticks running into the future would all be refused as max_clock_skew_s).
        start = (
            datetime(2021, 1, 1, tzinfo=UTC)
            if args.replay
            else datetime.now(UTC).replace(microsecond=0) - timedelta(milliseconds=args.intents)
        )
        step = timedelta(hours=1) if args.replay else timedelta(milliseconds=1)
        prices: PriceFeed = FixedPriceFeed(20_000.0)
        clock: Clock = SystemClock()
        if args.replay:
            from common.dataset import BUNDLED_CSV
            from producers.sources import CsvSource
            from producers.sync import import_csv

            settings = settings.model_copy(update={"min_timeframe": "1h"})
            import_csv(
                settings,
                engine,
                CsvSource(BUNDLED_CSV),
                start=start - step * 2,
                end=start + step * (args.intents + 2),
            )
            prices = CandlePriceFeed(engine, settings.symbol, "1h", prefetch=2_000)  # as in replays
            clock = ReplayClock(datetime(1970, 1, 1, tzinfo=UTC))
        venue = PaperExchange(
            engine,
            "bench",
            prices,
            symbol=settings.symbol,
            taker_fee_rate=0.0005,
            slippage_bps=1.0,
        )
        ex = Executor(settings, engine, venue, clock, "bench")
        rng = random.Random(1)
        targets: list[float] = []
        for _ in range(args.intents):
            hold = targets and rng.random() < args.hold
            targets.append(targets[-1] if hold else rng.choice([-1, -0.5, 0, 0.5, 1]))
        intents = [
            OrderIntent.create(
                make_tick_id(settings.symbol, start + step * i),
                "bench",
                settings.symbol,
                IntentAction.INCREASE,
                0.0,
                target,
                datetime.now(UTC),
            )
            for i, target in enumerate(targets)
        ]
        profiler = cProfile.Profile() if args.profile else None
        orders = 0
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        if args.batch == 1:
            for intent in intents:
                orders += len(ex.handle(intent, discard).orders)
        else:
            for k in range(0, len(intents), args.batch):
                reports = ex.handle_batch(intents[k : k + args.batch], discard)
                orders += sum(len(r.orders) for r in reports)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        engine.dispose()
    rate = args.intents / elapsed
    line = (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} UTC | {platform.node()} ({cpu_model()}) | "
        f"{os.cpu_count()} cpu | "
        f"{args.intents}{' (replay)' if args.replay else ''}"
        f"{f', batch {args.batch}' if args.batch > 1 else ''}{f', hold {args.hold:g}' if args.hold else ''}"
        f" | {orders} | {elapsed:.2f} s | "
        f"{rate:.0f} intents/s | {1000 / rate:.1f} ms |"
    )
    print(line)
    out = REPO / "bench" / "results" / "executor.md"
    if not out.exists():
        out.write_text(
            "# Executor throughput (paper venue, in process, real Postgres)\n\n"
            "`bench/bench_executor.py`: Executor.handle per intent (dedup, reconcile, risk, venue\n"
            "transaction, booking, P&L), report encoded but not sent. Shared dev machine: expect noise.\n\n"
            "| date | machine | cpus | intents | orders | time | rate | per intent |\n"
            "|---|---|---|---|---|---|---|---|\n"
        )
    with out.open("a") as f:
        f.write(line + "\n")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
