"""Replay publishing rate: one year of hourly ticks of the real dataset into the real broker.

Run: ``.venv/bin/python bench/bench_replay.py`` (needs the dev Kafka on 127.0.0.1:39092).
Uses the registry file (five 1h strategies; one BarClosed per tick carrying the longest lookback) and the
bundled dataset's first year, loaded once into memory. The rate counts from the first tick to the
broker acknowledging the last message (flush included). Topics live under a throw-away prefix that
is deleted afterwards. Prints a markdown table and writes ``bench/results/replay.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka.admin import AdminClient  # noqa: E402

from common.dataset import BUNDLED_CSV  # noqa: E402
from common.kafka.configuration import admin_config  # noqa: E402
from common.kafka.topics import delete_topics_with_prefix  # noqa: E402
from common.registry import load_registry  # noqa: E402
from config import load_settings  # noqa: E402
from tick_emitter.replay import base_from_csv, replay  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365, help="length of the replayed range")
    ap.add_argument("--bootstrap", default="127.0.0.1:39092")
    ap.add_argument("--runs", type=int, default=3, help="repeat the replay; each into a fresh namespace")
    args = ap.parse_args()
    from bench._needs import require

    # the broker (topics under a prefix of its own)
    require(postgres=False, kafka=True)

    load = os.getloadavg()[0]
    registry = load_registry(REPO / "strategies_registry.json", import_classes=False)
    t0 = time.perf_counter()
    base = base_from_csv(str(BUNDLED_CSV), 60, datetime.now(UTC))
    load_s = time.perf_counter() - t0
    # The last year of the data: every window is full length (the first months of the dataset
    # would give short windows and flatter the rate).
    end = datetime(2022, 8, 20, 1, tzinfo=UTC)
    start = end - timedelta(days=args.days) + timedelta(hours=1)
    window = max(s.lookback_hours for s in registry.enabled)
    runs = []
    for _ in range(args.runs):
        prefix = f"replay.bench{uuid.uuid4().hex[:6]}."
        kafka = {"bootstrap_servers": args.bootstrap, "topic_prefix": prefix}
        settings = load_settings(min_timeframe="1h", kafka=kafka, log_level="WARNING")
        try:
            runs.append(replay(settings, registry, base, start, end))
        finally:
            delete_topics_with_prefix(AdminClient(admin_config(settings)), prefix)
    runs.sort(key=lambda s: s.ticks_per_s)
    stats = runs[len(runs) // 2]
    all_rates = ", ".join(f"{s.ticks_per_s:,.0f}" for s in runs)
    mb = stats.bytes / 1e6
    table = "\n".join(
        [
            f"| replay (real dataset, 5 x 1h strategies, {window}-bar windows, zstd) | value |",
            "|---|---|",
            f"| range | {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC |",
            f"| ticks published (TickPlan + BarClosed each) | {stats.ticks:,} |",
            f"| messages | {stats.ticks + stats.bars:,} |",
            f"| wall time incl. final flush (median run) | {stats.seconds:.2f} s |",
            f"| **rate (median of {len(runs)} runs)** | **{stats.ticks_per_s:,.0f} ticks/s** "
            "(target >= 2,000) |",
            f"| all runs (ticks/s) | {all_rates} |",
            f"| bar payload (approx., uncompressed) | {mb:,.1f} MB |",
            f"| CSV load + validation (once, not in the rate) | {load_s:.2f} s |",
        ]
    )
    machine = subprocess.run(["uname", "-srmo"], capture_output=True, text=True).stdout.strip()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    header = (
        f"# bench_replay\n\nDate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  \nMachine: {machine}, "
        f"nproc={nproc}, Python {platform.python_version()}; Kafka 3.9 single node on localhost "
        f"(same machine, lz4, acks=all, idempotent producer, linger 50 ms); load average at start "
        f"{load:.1f} (shared machine).\n\n"
    )
    print(table)
    out = REPO / "bench" / "results" / "replay.md"
    out.write_text(header + table + "\n")
    print(f"\nwritten to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
