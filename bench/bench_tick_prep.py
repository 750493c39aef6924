"""One tick's data preparation: 10 strategies over 1h/4h/12h/1d at MIN_TIMEFRAME=1m, 720 h lookback.

Run: ``.venv/bin/python bench/bench_tick_prep.py`` (needs the dev Postgres for the DB rows; pass
``--no-db`` to skip them). Synthetic 1m candles: this is a scale test, not a statement about markets.
Prints a markdown table and writes ``bench/results/tick_prep.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import serde  # noqa: E402
from common.events import BarClosed, TickPlan, to_epoch_ms  # noqa: E402
from common.serde_bars import encode_bar  # noqa: E402
from tick_emitter.core import BarPayload, BaseCandles, build_events, plan_tick, prepare_bars  # noqa: E402
from tick_emitter.synthetic import random_walk_candles, registry_of  # noqa: E402

TICK = datetime(2024, 3, 1, tzinfo=UTC)  # midnight: all four timeframes close
LOOKBACK_H = 720
REGISTRY = registry_of(
    [
        ("a1", "1h", 720),
        ("a2", "1h", 480),
        ("a3", "1h", 240),
        ("b1", "4h", 720),
        ("b2", "4h", 360),
        ("b3", "4h", 96),
        ("c1", "12h", 720),
        ("c2", "12h", 240),
        ("d1", "1d", 720),
        ("d2", "1d", 480),
    ]
)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def row(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20)
    return f"| {name} | {statistics.median(ms):.2f} | {q[18]:.2f} | {min(ms):.2f} | {len(ms)} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="iterations per measurement")
    ap.add_argument("--no-db", action="store_true", help="skip the measurements that read Postgres")
    args = ap.parse_args()
    from bench._needs import require

    # Postgres (a throw-away database of its own)
    require(postgres=True)

    base = random_walk_candles(to_epoch_ms(TICK - timedelta(hours=LOOKBACK_H + 24)), (LOOKBACK_H + 24) * 60)
    plan = plan_tick(TICK, REGISTRY)
    assert plan.timeframes == ("1h", "4h", "12h", "1d"), plan.timeframes

    def payloads() -> tuple[TickPlan, list[BarPayload], list[str]]:
        p = plan_tick(TICK, REGISTRY)
        return build_events(
            "BTC/USD:USD", p, prepare_bars(base, TICK, p), published_at=TICK, deadline=timedelta(seconds=30)
        )

    def live_events() -> tuple[TickPlan, list[BarClosed]]:
        tick, bars, _ = payloads()
        return tick, [b.to_event() for b in bars]

    def live_encoded() -> object:
        tick, bars = live_events()
        return [serde.encode(tick), *(serde.encode(b) for b in bars)]

    def replay_encoded() -> object:
        tick, bars, _ = payloads()
        return [serde.encode(tick), *(encode_bar(b) for b in bars)]

    rows = [
        row("resample 4 timeframes (in-memory base)", timed(lambda: prepare_bars(base, TICK, plan), args.n)),
        row("plan + resample + TickPlan/BarClosed events (live path, in-memory)", timed(live_events, args.n)),
        row("... + Avro encode of all 5 messages (live path)", timed(live_encoded, args.n)),
        row("plan + resample + encode, replay path (direct bar encoder)", timed(replay_encoded, args.n)),
    ]
    if not args.no_db:
        rows += db_rows(base, args.n // 4 or 1)
    table = "\n".join(
        [
            "| step (10 strategies, 1h/4h/12h/1d, 1m base, 720 h) | median ms | p95 ms | min ms | runs |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    machine = subprocess.run(["uname", "-srmo"], capture_output=True, text=True).stdout.strip()
    header = (
        f"# bench_tick_prep\n\nDate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  \nMachine: {machine}, "
        f"nproc={subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}, "
        f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f} (shared)"
        f"  \nBase: {len(base.times):,} synthetic 1m candles; target "
        "< 50 ms per tick from an in-memory base.\n\n"
    )
    print(table)
    out = REPO / "bench" / "results" / "tick_prep.md"
    out.write_text(header + table + "\n")
    print(f"\nwritten to {out.relative_to(REPO)}")


def db_rows(base: BaseCandles, n: int) -> list[str]:
    """Same tick with the base read from Postgres (one query over the max lookback)."""
    from bench._needs import throwaway_database
    from common.db.session import make_engine
    from producers import store
    from producers.candles import RawCandle

    with throwaway_database() as url:
        engine = make_engine(url)
        rows_in = zip(base.times.tolist(), base.values.tolist(), strict=True)
        candles = [RawCandle(int(t), *v) for t, v in rows_in]
        store.insert_candles(engine, "BTC/USD:USD", "1m", candles, "bench")
        plan = plan_tick(TICK, REGISTRY)

        def load() -> BaseCandles:
            return BaseCandles(*store.load_arrays(engine, "BTC/USD:USD", "1m", plan.earliest_start, TICK), 1)

        def full() -> object:
            p = plan_tick(TICK, REGISTRY)
            b = BaseCandles(*store.load_arrays(engine, "BTC/USD:USD", "1m", p.earliest_start, TICK), 1)
            tick, bars, _ = build_events(
                "BTC/USD:USD", p, prepare_bars(b, TICK, p), published_at=TICK, deadline=timedelta(seconds=30)
            )
            return tick, [bar.to_event() for bar in bars]

        from tick_emitter.base_cache import BaseCandleCache

        cache = BaseCandleCache(lambda a, b: store.load_arrays(engine, "BTC/USD:USD", "1m", a, b), 1)
        cache.get(plan.earliest_start, TICK)  # first tick after start: one full read

        def cached() -> object:
            # Steady state: the emitter's cache holds the lookback and reads only new candles.
            p = plan_tick(TICK, REGISTRY)
            b = cache.get(p.earliest_start, TICK)
            tick, bars, _ = build_events(
                "BTC/USD:USD", p, prepare_bars(b, TICK, p), published_at=TICK, deadline=timedelta(seconds=30)
            )
            return tick, [bar.to_event() for bar in bars]

        rows = [
            row("DB load of 43,200 1m candles", timed(load, n)),
            row("DB load + plan + resample + events (first tick after start)", timed(full, n)),
            row("live tick, emitter's candle cache (steady state, new rows only)", timed(cached, n)),
        ]
        engine.dispose()
        return rows


if __name__ == "__main__":
    main()
