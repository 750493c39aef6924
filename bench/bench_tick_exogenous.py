"""Tick preparation with exogenous inputs: reading, cutting and attaching them (target < 5 ms per tick).

Run: ``.venv/bin/python bench/bench_tick_exogenous.py`` (needs the dev Postgres: it creates and
drops a database of its own and imports the shared exogenous files the strategies read).
The fixed tick is a midnight in March 2022, where 1h, 4h and 1d close together and the news feed is
at its densest (~40 items a day), with ``funding_extremes`` (4h), ``exchange_reserves`` (1d),
``news_attention`` (1h) and ``bband_rsi`` (1h, price only) due. Measured per tick:

* the exogenous step alone (read + cut + attach) from each feed: ``DbFeed`` (one query per series
  and tick, the old path), ``FrameFeed`` (whole series in memory, the floor), and ``CachedDbFeed``
  as the emitter builds it (live: in memory, refreshed by a background thread, which runs during
  the measurement) and as the replay builds it (read ahead 30 days, trimmed);
* a walk over consecutive hourly ticks (whatever is due at each), so that trimming, read-ahead
  queries and the 1d/4h ticks all count in the percentiles;
* the whole tick preparation from in-memory candles (plan, resample, events, exogenous), with the
  validated BarClosed events and their Avro encoding (live) or the direct bar encoder (replay);
* off the tick path: one background refresh (nothing new) and the first read (cold load).

Prints a table (p50 / p95 / p99 / max per tick, ms), asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import serde  # noqa: E402
from common.dataset import load_bundled_candles  # noqa: E402
from common.registry import Registry, import_class, parse_registry  # noqa: E402
from common.serde_bars import ExogenousArrays, encode_bar  # noqa: E402
from tick_emitter.core import BarPayload, BaseCandles, DuePlan, build_events, plan_tick, prepare_bars  # noqa: E402
from tick_emitter.exogenous import (  # noqa: E402
    CachedDbFeed,
    DbFeed,
    ExogenousFeed,
    ExogenousNeed,
    FrameFeed,
    attach_exogenous,
    exogenous_needs,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tick_prep import timed  # noqa: E402  (same timing loop as the tick-prep bench)

TICK = datetime(2022, 3, 2, tzinfo=UTC)
DATA = REPO.parent / "shared" / "data" / "exogenous"
STRATEGIES = [
    ("funding_extremes", "strategy_consumers.strategies.funding_extremes:FundingExtremes", "4h", 1600),
    ("exchange_reserves", "strategy_consumers.strategies.exchange_reserves:ExchangeReserves", "1d", 1200),
    ("news_attention", "strategy_consumers.strategies.news_attention:NewsAttention", "1h", 48),
    ("bband_rsi", "strategy_consumers.strategies.bband_rsi:BbandRsi", "1h", 1200),
]


def row(name: str, ms: list[float]) -> str:
    """One table row: p50 / p95 / p99 / max (ms) and the number of runs."""
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"| {name} | {statistics.median(ms):.2f} | {q[94]:.2f} | {q[98]:.2f} | {max(ms):.2f} | {len(ms)} |"


def walk(
    steps: list[tuple[DuePlan, list[BarPayload]]], needs: tuple[ExogenousNeed, ...], feed: ExogenousFeed
) -> list[float]:
    """Attach time per tick over consecutive ticks; the first tick (the cold load) is not counted."""
    import time

    out = []
    for i, (plan, bars) in enumerate(steps):
        t0 = time.perf_counter()
        attach_exogenous(bars, plan, needs, feed)
        if i:
            out.append((time.perf_counter() - t0) * 1000)
    return out


def registry() -> Registry:
    """The four strategies, each entry declaring the inputs its class reads (as the registry must)."""
    entries = []
    for n, c, tf, h in STRATEGIES:
        inputs = sorted(getattr(import_class(c), "exogenous_inputs", None) or ())
        entry = {
            "name": n,
            "class_path": c,
            "timeframe": tf,
            "lookback_hours": h,
            "enabled": True,
            "version": "1.0.0",
            "params": {},
        }
        if inputs:
            entry["exogenous_inputs"] = inputs
        entries.append(entry)
    return parse_registry({"strategies": entries})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="iterations per in-memory measurement")
    ap.add_argument("--db-n", type=int, default=50, help="iterations of the one-query-per-series path")
    ap.add_argument("--walk", type=int, default=24 * 60, help="consecutive hourly ticks in the walk")
    args = ap.parse_args()
    from bench._needs import require, throwaway_database

    # Postgres (a throw-away database of its own)
    require(postgres=True)

    from common.db.session import make_engine
    from common.exogenous.store import read_series
    from producers.exogenous import import_dir

    reg = registry()
    needs = exogenous_needs(reg)
    series = sorted({s for need in needs for s in need.series})
    history = load_bundled_candles()
    walk_end = TICK + timedelta(hours=args.walk)
    frame = history[history.index < walk_end]
    base = BaseCandles(frame.index.as_unit("ms").asi8.astype(np.int64), frame.to_numpy(np.float64), 60)

    def bars_at(t: datetime) -> tuple[DuePlan, list[BarPayload]]:
        plan = plan_tick(t, reg)
        _, bars, _ = build_events(
            "BTC/USD:USD", plan, prepare_bars(base, t, plan), published_at=t, deadline=timedelta(seconds=30)
        )
        return plan, bars

    steps = [bars_at(TICK + timedelta(hours=i)) for i in range(args.walk)]
    steps = [(p, b) for p, b in steps if p and b]

    with throwaway_database() as url:
        engine = make_engine(url)
        import_dir(engine, DATA, series, now=datetime(2026, 1, 1, tzinfo=UTC))
        plan, bars = bars_at(TICK)
        assert plan.timeframes == ("1h", "4h", "1d"), plan.timeframes
        db = DbFeed(engine)
        live = CachedDbFeed(engine, needs)  # what TickEmitter builds ...
        replay_feed = CachedDbFeed(engine, needs, refresh_s=None, ahead=timedelta(days=30))  # ... and replay
        memory = FrameFeed({s: ExogenousArrays.from_frame(s, read_series(engine, s)) for s in series})
        attached = attach_exogenous(bars, plan, needs, db)
        sizes = {b.timeframe: {a.series: len(a) for a in b.exogenous} for b in attached}
        for feed in (live, replay_feed, memory):  # same rows from every feed
            for a, b in zip(attach_exogenous(bars, plan, needs, feed), attached, strict=True):
                assert [(x.series, x.published_ms.tolist()) for x in a.exogenous] == [
                    (y.series, y.published_ms.tolist()) for y in b.exogenous
                ]

        def exogenous_only(feed: ExogenousFeed) -> Callable[[], object]:
            return lambda: attach_exogenous(bars, plan, needs, feed)

        def prepare(feed: ExogenousFeed) -> object:
            p, b = bars_at(TICK)
            return attach_exogenous(b, p, needs, feed)

        def prepare_and_encode_live() -> object:
            p = plan_tick(TICK, reg)
            tick, b, _ = build_events(
                "BTC/USD:USD",
                p,
                prepare_bars(base, TICK, p),
                published_at=TICK,
                deadline=timedelta(seconds=30),
            )
            events = [x.to_event() for x in attach_exogenous(b, p, needs, live)]
            return [serde.encode(tick), *(serde.encode(e) for e in events)]

        def prepare_and_encode_replay() -> object:
            p = plan_tick(TICK, reg)
            tick, b, _ = build_events(
                "BTC/USD:USD",
                p,
                prepare_bars(base, TICK, p),
                published_at=TICK,
                deadline=timedelta(seconds=30),
            )
            return [serde.encode(tick), *(encode_bar(x) for x in attach_exogenous(b, p, needs, replay_feed))]

        def cold() -> object:
            return attach_exogenous(bars, plan, needs, CachedDbFeed(engine, needs, refresh_s=None))

        walk_live = CachedDbFeed(engine, needs)
        walk_replay = CachedDbFeed(engine, needs, refresh_s=None, ahead=timedelta(days=30))
        rows = [
            row(
                f"exogenous only, DbFeed: {len(series)} DB reads + cut + attach (old path)",
                timed(exogenous_only(db), args.db_n),
            ),
            row(
                "exogenous only, FrameFeed (whole series in memory: the floor)",
                timed(exogenous_only(memory), args.n),
            ),
            row(
                "**exogenous only, CachedDbFeed live (emitter; background refresh running)**",
                timed(exogenous_only(live), args.n),
            ),
            row(
                "exogenous only, CachedDbFeed replay (read ahead 30 d)",
                timed(exogenous_only(replay_feed), args.n),
            ),
            row(
                f"**walk, {len(steps)} consecutive hourly ticks, CachedDbFeed live: exogenous step**",
                walk(steps, needs, walk_live),
            ),
            row(
                f"walk, {len(steps)} consecutive hourly ticks, CachedDbFeed replay: exogenous step",
                walk(steps, needs, walk_replay),
            ),
            row(
                "**tick preparation: plan + resample + payloads + exogenous (CachedDbFeed live)**",
                timed(lambda: prepare(live), args.n),
            ),
            row("tick preparation, DbFeed (old path)", timed(lambda: prepare(db), args.db_n)),
            row("... + validated events + Avro encode (live path)", timed(prepare_and_encode_live, args.n)),
            row("... + direct bar encoder (replay path)", timed(prepare_and_encode_replay, args.n)),
            row("off the tick path: one background refresh (nothing new)", timed(live.refresh, args.db_n)),
            row("off the tick path: first read, cold cache (load of every series)", timed(cold, 10)),
        ]
        queries = {"live": live.queries, "walk live": walk_live.queries, "walk replay": walk_replay.queries}
        held = {"walk live": walk_live.held_rows(), "walk replay": walk_replay.held_rows()}
        live.close()
        walk_live.close()
        engine.dispose()
    print(
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, "
        f"nproc={os.cpu_count()}, Python {platform.python_version()}; "
        f"load average at end {os.getloadavg()[0]:.1f}"
    )
    print(f"tick {TICK.isoformat()}; rows attached per timeframe and series: {sizes}")
    print(f"database queries by the caches: {queries}; rows held after the walk: {held}")
    print(
        "| step (4 strategies on 1h/4h/1d, 3 with exogenous inputs) "
        "| p50 ms | p95 ms | p99 ms | max ms | runs |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("target: tick preparation with exogenous inputs < 5 ms per tick")


if __name__ == "__main__":
    main()
