"""The real dataset replayed through the whole pipeline, end to end, as separate processes.

``python -m ops replay-backtest --fallback`` on the bundled data: tick emitter replay ->
5 strategy consumers -> meta consumer -> executor (paper venue), each its own process on the real
broker and database, then the comparison with the vectorized backtest. Measures ticks per second
from the services' start to the last tick's execution, and when each stage finished its last
message (the slowest stage is the bottleneck), and each service process's peak RSS against issue
17's targets (``bench/rss.py``). Writes ``bench/results/replay_e2e.md``.

    .venv/bin/python bench/bench_replay_e2e.py            # the whole dataset (~37,400 ticks)
    .venv/bin/python bench/bench_replay_e2e.py --days 365 # the last year only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka.admin import AdminClient  # noqa: E402

from bench.rss import RssSampler, rss_table  # noqa: E402
from common.dataset import BUNDLED_CSV, load_bundled_candles  # noqa: E402
from common.db.session import make_engine  # noqa: E402
from common.kafka.configuration import admin_config  # noqa: E402
from common.logging import configure_logging  # noqa: E402
from ops.pipeline import settings_for  # noqa: E402
from ops.replay_backtest import run_replay_backtest  # noqa: E402
from ops.runs import delete_run  # noqa: E402


def cpu_table(result: dict[str, Any], ticks: int) -> list[str]:
    """Where the machine's CPU went, per tick: the services' own counters, and the rest
    (Kafka, Postgres, the replay job's last half second, anything else running) as the remainder."""
    cpu: dict[str, float] = result.get("cpu_s") or {}
    busy = result.get("machine_busy_s")
    if not cpu or not ticks:
        return []
    strategies = sum(v for k, v in cpu.items() if k.startswith("strategy."))
    count = sum(1 for k in cpu if k.startswith("strategy."))
    rows = [
        (f"{count} strategy consumers", strategies),
        *[(k, v) for k, v in sorted(cpu.items()) if not k.startswith("strategy.")],
    ]
    lines = ["| CPU (user + system), whole run | core-seconds | core-ms per tick |", "|---|---:|---:|"]
    lines += [f"| {name} | {sec:,.1f} | {1000 * sec / ticks:,.1f} |" for name, sec in rows]
    if busy is not None:
        rest = busy - sum(cpu.values())
        lines.append(
            f"| everything else (Kafka, Postgres, other work on the machine) | {rest:,.1f} | "
            f"{1000 * rest / ticks:,.1f} |"
        )
        lines.append(
            f"| **machine busy** ({os.cpu_count()} cores) | {busy:,.1f} | {1000 * busy / ticks:,.1f} |"
        )
    return [*lines, ""]


def write_section(path: Path, lines: list[str]) -> None:
    """Put this run's section first under the page title; earlier runs' sections stay below it
    (the page is the benchmark's history, with notes written next to past runs)."""
    title = "# bench_replay_e2e"
    old = path.read_text() if path.exists() else title + "\n"
    body = old.split("\n", 1)[1] if old.startswith(title) else "\n" + old
    path.write_text("\n".join([title, "", *lines, "", body.lstrip("\n")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=None, help="last N days (default: the whole dataset)")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and rows")
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    args = parser.parse_args()
    from bench._needs import require

    # the shared database (replay_runs, candles) and the broker
    require(postgres=True, kafka=True, migrate=True, topics=True)
    configure_logging("bench-replay-e2e", "WARNING", json=False)
    candles = load_bundled_candles()
    end = candles.index[-1].to_pydatetime() + timedelta(hours=1)
    first_tick = candles.index[0].to_pydatetime() + timedelta(hours=1)
    start = (
        first_tick
        if args.days is None
        else max(first_tick, end - timedelta(days=args.days) + timedelta(hours=1))
    )
    prefix = f"bench.e2e{datetime.now(UTC):%Y%m%dt%H%M%S}."
    load = os.getloadavg()[0]
    out = Path(tempfile.mkdtemp(prefix="replay_e2e_"))
    began = time.monotonic()
    # Every process run_replay_backtest starts (the services, the replay job, the candle import)
    # is a descendant of this one: the sampler reads their high-water marks until they are reaped.
    with RssSampler() as rss:
        cmp = run_replay_backtest(
            start,
            end,
            out,
            prefix=prefix,
            csv=BUNDLED_CSV,  # a fresh database has no candles: import them (idempotent upsert)
            timeout_s=args.timeout,
            say=lambda m: print(f"[bench] {m}", flush=True),
        )
    total = time.monotonic() - began
    peaks = rss.peaks()
    # Cross-check of the sampling: the kernel's own maximum over all reaped children (one number).
    children_max_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6

    result = json.loads((out / "comparison.json").read_text())
    stages = result["stage_done_s"]
    ticks = result["ticks"]
    seconds = result["pipeline_seconds"]
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d}: {f'last {args.days} days' if args.days else 'whole set'}, "
        f"{ticks:,} ticks",
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {platform.node()} {platform.machine()}, nproc={os.cpu_count()}, Python "
        f"{platform.python_version()}; Kafka and Postgres on the same machine; load average at start "
        f"{load:.1f} (shared machine: other work was running).",
        "",
        "| whole pipeline, separate processes (majority-vote fallback, paper venue) | value |",
        "|---|---|",
        f"| window | {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC |",
        f"| ticks (each: plan, 1h bar, one recommendation per strategy, decision, intent, execution) | "
        f"{ticks:,} |",
        f"| **end to end: services started -> last tick executed** | **{seconds:,.0f} s, "
        f"{ticks / seconds:,.1f} ticks/s** (target: whole dataset < 180 s) |",
        f"| replay job done (paced <= 24 ticks ahead of the slowest strategy) | "
        f"{stages.get('tick_emitter.replay', 0):,.0f} s |",
        f"| meta consumer decided the last tick | {stages.get('meta_consumer', 0):,.0f} s |",
        f"| executor executed the last intent | {stages.get('executor', 0):,.0f} s |",
        f"| comparison with the vectorized backtest | {'identical' if cmp.identical else 'DIFFERENT'} "
        f"({result['checks']['fills']['compared']:,} fills, "
        f"{result['checks']['funding']['compared']:,} funding hours) |",
        f"| whole command incl. start-up, read-back and comparison | {total:,.0f} s |",
        "",
        *cpu_table(result, ticks),
        *rss_table(peaks),
        f"Largest peak RSS of any reaped child process (`getrusage(RUSAGE_CHILDREN)`, a cross-check of "
        f"the sampled table, which reads `VmHWM` every 0.2 s): {children_max_mb:,.0f} MB.",
        "",
    ]
    write_section(REPO / "bench" / "results" / "replay_e2e.md", lines)
    print("\n".join(lines))
    if not args.keep:
        settings = settings_for(prefix)
        delete_run(
            make_engine(settings.database_url.get_secret_value()), AdminClient(admin_config(settings)), prefix
        )


if __name__ == "__main__":
    main()
