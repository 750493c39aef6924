"""Tick preparation with exogenous inputs: reading, cutting and attaching them (target < 5 ms per tick).

Run: ``.venv/bin/python bench/bench_tick_exogenous.py`` (needs the dev Postgres: it creates and
drops a database of its own and imports the shared exogenous files the strategies read).
The tick is a midnight in March 2022, where 1h, 4h and 1d close together and the news feed is at
its densest (~40 items a day), with ``funding_extremes`` (4h), ``exchange_reserves`` (1d),
``news_attention`` (1h) and ``bband_rsi`` (1h, price only) due. Measured per tick, one query per
series (shared by every strategy and timeframe): the exogenous step alone (DB read + cut +
attach), the whole tick preparation from in-memory candles (plan, resample, events, exogenous)
and the same with the validated BarClosed events and their Avro encoding. Prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import serde  # noqa: E402
from common.dataset import load_bundled_candles  # noqa: E402
from common.db.session import with_local_passfile  # noqa: E402
from common.registry import parse_registry  # noqa: E402
from common.serde_bars import ExogenousArrays  # noqa: E402
from tick_emitter.core import BaseCandles, build_events, plan_tick, prepare_bars  # noqa: E402
from tick_emitter.exogenous import DbFeed, FrameFeed, attach_exogenous, exogenous_needs  # noqa: E402
from tick_emitter.wire import encode_bar  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tick_prep import row, timed  # noqa: E402  (same timing and table row as the tick-prep bench)

TICK = datetime(2022, 3, 2, tzinfo=UTC)
DATA = REPO.parent / "shared" / "data" / "exogenous"
ADMIN_DSN = with_local_passfile("postgresql://btcmeta@127.0.0.1:55432/postgres")
STRATEGIES = [
    ("funding_extremes", "strategy_consumers.strategies.funding_extremes:FundingExtremes", "4h", 1600),
    ("exchange_reserves", "strategy_consumers.strategies.exchange_reserves:ExchangeReserves", "1d", 1200),
    ("news_attention", "strategy_consumers.strategies.news_attention:NewsAttention", "1h", 48),
    ("bband_rsi", "strategy_consumers.strategies.bband_rsi:BbandRsi", "1h", 1200),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="iterations per measurement")
    args = ap.parse_args()

    import psycopg

    from common.db.migrate import upgrade
    from common.db.session import make_engine
    from producers.exogenous import import_dir

    registry = parse_registry({"strategies": [
        {"name": n, "class_path": c, "timeframe": tf, "lookback_hours": h, "enabled": True,
         "version": "1.0.0", "params": {}} for n, c, tf, h in STRATEGIES]})
    needs = exogenous_needs(registry)
    series = sorted({s for need in needs for s in need.series})
    history = load_bundled_candles()
    frame = history[history.index < TICK]
    base = BaseCandles(frame.index.as_unit("ms").asi8.astype(np.int64), frame.to_numpy(np.float64), 60)

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_local_passfile(f"postgresql+psycopg://btcmeta@127.0.0.1:55432/{name}")
    try:
        upgrade(url, "head")
        engine = make_engine(url)
        import_dir(engine, DATA, series, now=datetime(2026, 1, 1, tzinfo=UTC))
        feed = DbFeed(engine)
        plan = plan_tick(TICK, registry)
        assert plan.timeframes == ("1h", "4h", "1d"), plan.timeframes
        _, bars, _ = build_events("BTC/USD:USD", plan, prepare_bars(base, TICK, plan), published_at=TICK,
                                  deadline=timedelta(seconds=30))
        attached = attach_exogenous(bars, plan, needs, feed)
        sizes = {b.timeframe: {a.series: len(a) for a in b.exogenous} for b in attached}

        def exogenous_only() -> object:
            return attach_exogenous(bars, plan, needs, feed)

        def prepare() -> object:
            p = plan_tick(TICK, registry)
            _, b, _ = build_events("BTC/USD:USD", p, prepare_bars(base, TICK, p), published_at=TICK,
                                   deadline=timedelta(seconds=30))
            return attach_exogenous(b, p, needs, feed)

        def prepare_and_encode_live() -> object:
            p = plan_tick(TICK, registry)
            tick, b, _ = build_events("BTC/USD:USD", p, prepare_bars(base, TICK, p), published_at=TICK,
                                      deadline=timedelta(seconds=30))
            events = [x.to_event() for x in attach_exogenous(b, p, needs, feed)]
            return [serde.encode(tick), *(serde.encode(e) for e in events)]

        def prepare_and_encode_replay() -> object:
            p = plan_tick(TICK, registry)
            tick, b, _ = build_events("BTC/USD:USD", p, prepare_bars(base, TICK, p), published_at=TICK,
                                      deadline=timedelta(seconds=30))
            return [serde.encode(tick), *(encode_bar(x) for x in attach_exogenous(b, p, needs, feed))]

        from common.exogenous.store import read_series

        memory = FrameFeed({s: ExogenousArrays.from_frame(s, read_series(engine, s)) for s in series})

        def exogenous_in_memory() -> object:
            return attach_exogenous(bars, plan, needs, memory)

        rows = [
            row(f"exogenous only: {len(series)} DB reads + cut + attach", timed(exogenous_only, args.n)),
            row("exogenous only, series held in memory (FrameFeed: cut + attach)",
                timed(exogenous_in_memory, args.n)),
            row("tick preparation: plan + resample + payloads + exogenous", timed(prepare, args.n)),
            row("... + validated events + Avro encode (live path)", timed(prepare_and_encode_live, args.n)),
            row("... + direct bar encoder (replay path)", timed(prepare_and_encode_replay, args.n)),
        ]
        engine.dispose()
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"tick {TICK.isoformat()}; rows attached per timeframe and series: {sizes}")
    print("| step (4 strategies on 1h/4h/1d, 3 with exogenous inputs) | median ms | p95 ms | min ms | runs |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print("target: tick preparation with exogenous inputs < 5 ms per tick")


if __name__ == "__main__":
    main()
