"""The meta consumer's per-tick database work, timed in process against the real Postgres.

Run: ``.venv/bin/python bench/bench_meta_store.py [--ticks 400] [--label TEXT]`` (needs the dev
Postgres: ``make infra-up``). Appends one row to ``bench/results/meta_store.md``.

Why in process and without Kafka: ``bench_meta_latency`` and ``bench_tick_to_intent`` time whole
hops, where broker acks and consumer fetches hide what the database costs. This drives the service
object itself (``MetaConsumer.handle`` / ``store_batch`` / ``_decide_batch``, the methods the two
threads call) on a throw-away database migrated to head, so whatever code path the service uses
for its SQL is what gets timed, before and after a change alike. Per tick: a TickPlan and five
Recommendations (a few indicators each), the tick's 256-close bar mark, the majority-vote fallback
(no model selected, so the models poll runs every tick as with ``model_poll_s=0``) and a position
row (the drift check reads it). The intents are built but not produced (``_send_many`` is replaced
by a no-op): only the database work and the decision's own Python are on the clock.

Columns: *tick in one batch*: ``store_batch`` for the plan and its five answers together (one
transaction; what a backlog or a fast burst gives); *one message per batch*: ``store_batch`` per
message, six calls per tick (the quiet live case, where each answer arrives on its own); *decide*:
``_decide_batch`` of one ready tick (model poll, answers read, decision row, commit, drift check).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from common.db.session import with_local_passfile  # noqa: E402
from common.events import DueStrategy, Recommendation, SignalEvent, Target, TickPlan  # noqa: E402
from common.ids import make_tick_id  # noqa: E402
from common.logging import configure_logging  # noqa: E402
from config import MetaSettings, load_settings  # noqa: E402
from meta_consumer.decide import MARK_CLOSES, Mark  # noqa: E402
from meta_consumer.service import MetaConsumer  # noqa: E402

SYMBOL = "BTC/USD:USD"
LIVE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi")
T0 = datetime(2022, 1, 1, tzinfo=UTC)
WARMUP = 20
OUT = REPO / "bench" / "results" / "meta_store.md"
HEADER = """# Meta consumer: per-tick database work (bench_meta_store)

`bench/bench_meta_store.py`: the service's own `store_batch` / `_decide_batch` in process against
the real Postgres (throw-away database at head), five strategies, 256-close mark, majority-vote
fallback, intents built but not produced. Milliseconds per call, p50 / p90 over the ticks after
{warmup} warm-up ticks. *One batch*: plan + five answers stored together; *per message*: one
`store_batch` per message (six per tick); *decide*: one ready tick (models poll, answers read,
decision row, commit, drift check). Shared 2-core dev machine: compare rows measured back to back.

"""
COLUMNS = (
    "date",
    "machine",
    "load",
    "code",
    "ticks",
    "store, one batch p50 / p90",
    "store, per message p50 / p90",
    "decide p50 / p90",
    "per tick (one batch + decide) p50",
)


def tick_time(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def tick_id(i: int) -> str:
    return make_tick_id(SYMBOL, tick_time(i))


def plan(i: int) -> TickPlan:
    t = tick_time(i)
    due = [DueStrategy(n, "1.0.0", "1h") for n in LIVE]
    return TickPlan.create(SYMBOL, t, due, deadline=t + timedelta(seconds=30), published_at=t)


def rec(i: int, strategy: str) -> Recommendation:
    t = tick_time(i)
    return Recommendation(
        tick_id=tick_id(i),
        strategy=strategy,
        strategy_version="1.0.0",
        symbol=SYMBOL,
        timeframe="1h",
        bar_close_time=t,
        target=(Target.LONG, Target.FLAT, Target.SHORT)[(i + len(strategy)) % 3],
        event=SignalEvent.NONE,
        confidence=0.6,
        horizon_bars=4,
        produced_at=t,
        indicators={"fast": 20_000.0 + i, "slow": 19_950.5 + i, "atr": 180.25, "rsi": 51.5},
    )


def mark(i: int) -> Mark:
    closes = tuple(20_000.0 + 50.0 * ((i + k) % 17) + 3.0 * (i + k) for k in range(MARK_CLOSES))
    return Mark(tick_id(i), closes, offset=i)


def quantiles(ms: list[float]) -> tuple[float, float]:
    """(p50, p90) in ms."""
    q = statistics.quantiles(ms, n=10)
    return statistics.median(ms), q[8]


def run(url: str, ticks: int) -> dict[str, list[float]]:
    """Drive one service object through ``ticks`` ticks of each shape; milliseconds per call."""
    settings = load_settings(database_url=url)
    svc = MetaConsumer(settings, MetaSettings(deadline_s=30.0), live=LIVE)
    svc._send_many = lambda _intents: None  # type: ignore[method-assign,assignment]  # the DB work only
    with psycopg.connect(with_local_passfile(url.replace("+psycopg", "")), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO positions (namespace, symbol, quantity, realized_pnl) VALUES (%s, %s, 0, 0)",
            (svc.namespace, SYMBOL),
        )
    out: dict[str, list[float]] = {"batch": [], "message": [], "decide": []}
    i = 0

    def decide(keep: bool) -> None:
        svc.marks[tick_id(i)] = mark(i)
        with svc._cond:
            svc.joiner.add_bar(tick_id(i))
            ready = svc.joiner.ready(time.time())
        assert len(ready) == 1 and not ready[0].timed_out, ready
        t0 = time.perf_counter()
        svc._decide_batch(ready)
        if keep:
            out["decide"].append((time.perf_counter() - t0) * 1000)

    try:
        for shape in ("batch", "message"):
            for k in range(WARMUP + ticks):
                i += 1
                keep = k >= WARMUP
                messages: list[object] = [plan(i), *(rec(i, s) for s in LIVE)]
                if shape == "batch":
                    for m in messages:
                        svc.handle(m, None)
                    t0 = time.perf_counter()
                    svc.store_batch()
                    if keep:
                        out["batch"].append((time.perf_counter() - t0) * 1000)
                else:
                    for m in messages:
                        svc.handle(m, None)
                        t0 = time.perf_counter()
                        svc.store_batch()
                        if keep:
                            out["message"].append((time.perf_counter() - t0) * 1000)
                decide(keep)
    finally:
        close = getattr(svc, "close_db", None)  # the psycopg path (absent before it)
        if callable(close):
            close()
        svc.producer.close()
        svc.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=400, help="timed ticks per shape (after warm-up)")
    ap.add_argument("--label", default="current", help="what code was measured (goes in the table)")
    args = ap.parse_args()
    from bench._needs import require, throwaway_database

    require(postgres=True)
    configure_logging("bench-meta-store", "WARNING", json=True)
    with throwaway_database() as url:
        load_before = os.getloadavg()[0]
        ms = run(url, args.ticks)
    b50, b90 = quantiles(ms["batch"])
    m50, m90 = quantiles(ms["message"])
    d50, d90 = quantiles(ms["decide"])
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    line = (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} UTC | {platform.node()} ({cpu_model()}, {os.cpu_count()} cpu) "
        f"| {load} | {args.label} | {args.ticks} | {b50:.2f} / {b90:.2f} | {m50:.2f} / {m90:.2f} "
        f"| {d50:.2f} / {d90:.2f} | {b50 + d50:.2f} |"
    )
    print(line)
    if not OUT.exists():
        table = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}\n"
        OUT.write_text(HEADER.format(warmup=WARMUP) + table, encoding="utf-8")
    with OUT.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
