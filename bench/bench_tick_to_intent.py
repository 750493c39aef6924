"""Tick-to-intent latency through the real broker, the strategy processes and the meta consumer.

Run: ``.venv/bin/python bench/bench_tick_to_intent.py [-n 1000] [--strategies poc|all] [--no-step]``
(needs the dev Kafka + Postgres: ``make infra-up``). In a namespace of its own (topic prefix
``bench.<id>.`` and a fresh database, both deleted afterwards) it starts, each as a separate process
exactly as in production, ``python -m strategy_consumers run <name>`` for the five POC strategies
(``poc``: the hourly price strategies, issue 17's p50 < 10 / p99 < 30 ms target; a registry of just
those is handed to every process) or every enabled registry strategy (``all``: p99 < 50 ms), and
``python -m meta_consumer run`` (majority-vote fallback: no model is selected in a fresh database).
``--no-step`` turns the strategies' incremental steppers off (``BTCMETA_STRATEGY__STEP=false``, ADR
0022): every bar recomputed from its window, the comparison run.
``--lookback N`` is a what-if, not a production setting: every strategy of the chosen set gets an
N-hour look-back (those whose warm-up needs more are left out and named in the result), so the
BarClosed window shrinks to N bars. The answers differ from production's; it measures how much
of the latency is the window's size (what a BarClosed carrying only the new bar would save).
Then it publishes real ticks one at a time: the TickPlan and the BarClosed of every due timeframe,
made by the tick emitter's own core (``plan_tick``/``prepare_bars``/``build_events``, the replay
path) from the bundled real Bitstamp hourly candles, with 4,200-bar windows sent as the emitter
sends them (BarClosed v3, ADR 0028: a keyframe with the whole window once a day per topic, a
continuation with the new bar otherwise). ``--keyframe-hours 0`` sends every window whole (the
wire before v3: the comparison run).

Clock: starts when the tick's messages are handed to the producer (``publish_tick``, before the
broker acknowledges them) and stops when the OrderIntent is read back from ``orders.intents`` by
this process. The next tick is published only after the intent of the previous one arrived.

Per hop (all wall clock on one machine, so the processes' clocks agree):
``ack`` = broker acknowledged the tick's messages (flush returned);
``strategies`` = the last of the Recommendations handed to its producer (its Kafka CreateTime,
millisecond resolution) minus the start;
``meta`` = the intent handed to the meta consumer's producer (CreateTime) minus that last
recommendation; ``decided`` = the decision row's ``decided_at`` minus the last recommendation
(ingest + join + decision; stamped before the row is inserted and committed);
``readback`` = the intent read here minus its CreateTime.
Writes ``bench/results/tick_to_intent.md`` (``--strategies all``: ``tick_to_intent_all.md``;
``--no-step`` adds ``_nostep``, ``--lookback N`` adds ``_lookbackN``, ``--keyframe-hours 0`` adds
``_keyframes``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from common import serde  # noqa: E402
from common.bar_stream import BarChain  # noqa: E402
from common.dataset import BUNDLED_CSV  # noqa: E402
from common.events import OrderIntent, Recommendation  # noqa: E402
from common.kafka.configuration import admin_config, consumer_config  # noqa: E402
from common.kafka.producer import EventProducer  # noqa: E402
from common.kafka.topics import (  # noqa: E402
    INTENTS,
    RECOMMENDATIONS,
    delete_topics_with_prefix,
    ensure_topics,
    topic_specs,
)
from common.logging import configure_logging  # noqa: E402
from common.registry import load_registry  # noqa: E402
from config import Settings, load_settings  # noqa: E402
from ops.supervisor import Supervisor  # noqa: E402
from tick_emitter.core import build_events, plan_tick, prepare_bars, tick_times  # noqa: E402
from tick_emitter.emitter import publish_tick  # noqa: E402
from tick_emitter.replay import base_from_csv  # noqa: E402

WARMUP = 20  # ticks not timed: group joins, first fetches, cold strategy starts (stated in the result)
RESULTS = REPO / "bench" / "results"
#: The five proof-of-concept strategies: hourly, price only.
POC = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="ticks to time (after the warm-up)")
    ap.add_argument("--strategies", choices=("poc", "all"), default="poc", help="five POC or every enabled")
    ap.add_argument("--no-step", action="store_true", help="strategies recompute every window (baseline)")
    ap.add_argument(
        "--lookback",
        type=int,
        default=None,
        metavar="N",
        help="what-if: every strategy gets an N-hour look-back (those needing more are left out)",
    )
    ap.add_argument(
        "--keyframe-hours",
        type=float,
        default=None,
        help="BarClosed keyframe interval in hours (default: bar_keyframe_hours; 0: whole windows only)",
    )
    ap.add_argument("--out", type=Path, default=None, help="result file")
    ap.add_argument("--note", default="", help="one line added to the result (what was run)")
    args = ap.parse_args()
    suffix = ("_all" if args.strategies == "all" else "") + ("_nostep" if args.no_step else "")
    suffix += "" if args.lookback is None else f"_lookback{args.lookback}"
    suffix += "_keyframes" if args.keyframe_hours == 0 else ""
    name = f"tick_to_intent{suffix}"
    out = args.out or RESULTS / f"{name}.md"
    from bench._needs import require, throwaway_database

    # Postgres and the broker (a database and prefix of its own)
    require(postgres=True, kafka=True)
    configure_logging("bench", "WARNING", json=True)
    run_id = uuid.uuid4().hex[:8]
    db = f"bench_{run_id}"
    prefix = f"bench.{run_id}."
    with throwaway_database(db) as url:
        work = Path(tempfile.mkdtemp(prefix="bench-t2i-"))
        registry_path = load_settings().registry_path
        left_out: list[str] = []
        if args.strategies == "poc" or args.lookback is not None:
            registry_path = str(work / "registry.json")
            with open(load_settings().registry_path, encoding="utf-8") as fh:
                doc = json.load(fh)
            if args.strategies == "poc":
                doc["strategies"] = [s for s in doc["strategies"] if s["name"] in POC]
            if args.lookback is not None:
                doc["strategies"], left_out = _with_lookback(doc["strategies"], args.lookback)
            Path(registry_path).write_text(json.dumps(doc), encoding="utf-8")
        settings = load_settings(
            min_timeframe="1h",
            database_url=url,
            registry_path=registry_path,
            strategy={"step": not args.no_step},
            **({} if args.keyframe_hours is None else {"bar_keyframe_hours": args.keyframe_hours}),
            kafka={"bootstrap_servers": "127.0.0.1:39092", "topic_prefix": prefix},
        )
        admin = AdminClient(admin_config(settings))
        load_start = os.getloadavg()
        try:
            rows, cpu = run(settings, args.n)
            decided = decided_at(url, prefix)
        finally:
            delete_topics_with_prefix(admin, prefix)
            _delete_groups(admin, prefix)
            shutil.rmtree(work, ignore_errors=True)
    note = f"{args.strategies} strategies, steppers {'off' if args.no_step else 'on'}"
    note += (
        f", BarClosed keyframes every {settings.bar_keyframe_hours:g} h per topic, continuations between"
        if settings.bar_keyframe_hours
        else ", every BarClosed a whole window (no continuations: the wire before v3)"
    )
    if args.lookback is not None:
        note += (
            f"; what-if --lookback {args.lookback}: every strategy's look-back set to {args.lookback} h"
            " (answers differ from production), left out (warm-up needs more): "
            + (", ".join(left_out) or "none")
        )
    note += f"; {args.note}" if args.note else ""
    report(rows, decided, cpu, load_start, os.getloadavg(), out, note)


def _with_lookback(strategies: list[dict[str, Any]], hours: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The registry entries with an ``hours`` look-back, and the names whose warm-up needs more.

    Each strategy is built with the new look-back, so its own check decides (the warm-up rule lives
    in the strategy base class, not here).
    """
    from common.registry import import_class

    kept: list[dict[str, Any]] = []
    left_out: list[str] = []
    for entry in strategies:
        changed = dict(entry, lookback_hours=hours)
        try:
            cls = import_class(str(entry["class_path"]))
            cls(params=entry.get("params", {}), lookback_hours=hours, version=str(entry["version"]))
        except ValueError:
            left_out.append(str(entry["name"]))
            continue
        kept.append(changed)
    if not kept:
        raise SystemExit(f"--lookback {hours}: every strategy needs a longer warm-up")
    return kept, left_out


def _delete_groups(admin: AdminClient, prefix: str) -> None:
    """The namespace's consumer groups (strategies, meta consumer) go with its topics."""
    listed = admin.list_consumer_groups(request_timeout=10).result()
    groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    if groups:
        for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
            try:
                future.result()
            except Exception as exc:  # already gone, or a member still leaving: not worth failing for
                print(f"[bench] consumer group kept: {exc}", file=sys.stderr)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 when it is gone or unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_matching(*needles: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(n in cmd for n in needles):
                pids.append(int(entry.name))
    return pids


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (every core), from /proc/stat."""
    cols = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = cols[3] + cols[4]
    return (sum(cols[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per group of processes between ``start()`` and ``stop()``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.used: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        out = {g: sum(_cpu_seconds(p) for p in pids) for g, pids in self.groups.items()}
        out["whole machine (every process)"] = _machine_busy_seconds()
        return out

    def start(self) -> None:
        self._t0 = self._sample()
        self._wall0 = time.monotonic()

    def stop(self) -> None:
        end = self._sample()
        self.used = {g: end[g] - self._t0[g] for g in end}
        self.wall = time.monotonic() - self._wall0


STRATEGIES = "strategy processes"


def run(settings: Settings, n: int) -> tuple[list[dict[str, float | str]], CpuMeter]:
    prefix = settings.kafka.topic_prefix
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    ensure_topics(AdminClient(admin_config(settings)), topic_specs(settings, registry.timeframes))
    now = datetime.now(UTC)
    base = base_from_csv(str(BUNDLED_CSV), 60, now)
    last = datetime.fromtimestamp(int(base.times[-1]) / 1000, tz=UTC) + timedelta(hours=1)
    times = tick_times(last - timedelta(hours=n + WARMUP - 1), last, 60)
    env = {
        "BTCMETA_MIN_TIMEFRAME": "1h",
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_LOG_JSON": "true",
        "BTCMETA_LOG_LEVEL": "WARNING",
        "BTCMETA_META__DEADLINE_S": "30",
        "BTCMETA_REGISTRY_PATH": settings.registry_path,
        "BTCMETA_STRATEGY__STEP": "true" if settings.strategy.step else "false",
    }
    producer = EventProducer(settings, "bench-tick-emitter", linger_ms=0)
    intents = Consumer(consumer_config(settings, f"bench-intents-{uuid.uuid4().hex[:6]}"))
    intents.assign([TopicPartition(settings.topic(INTENTS), 0, 0)])
    recs = Consumer(consumer_config(settings, f"bench-recs-{uuid.uuid4().hex[:6]}"))
    recs.assign([TopicPartition(settings.topic(RECOMMENDATIONS), p, 0) for p in range(3)])
    out: list[dict[str, float | str]] = []
    chain = BarChain(settings.bar_keyframe_hours)
    with tempfile.TemporaryDirectory(prefix="bench-t2i-") as logs, Supervisor(env, Path(logs)) as sup:
        strategies = [
            sup.start(f"strategy.{spec.name}", "strategy_consumers", "run", spec.name)
            for spec in registry.enabled
        ]
        meta = sup.start("meta_consumer", "meta_consumer", "run")
        cpu = CpuMeter({})
        for i, t in enumerate(times):
            if i == WARMUP:  # processes listed now: the services' Postgres backends exist by then
                cpu = CpuMeter(
                    {
                        STRATEGIES: [s.proc.pid for s in strategies if s.proc],
                        "meta consumer": [meta.proc.pid] if meta.proc else [],
                        "this benchmark (publisher + readers)": [os.getpid()],
                        "Kafka broker (shared with other work)": _pids_matching("kafka.Kafka"),
                        "PostgreSQL (all backends, shared)": _pids_matching("postgres:", "bin/postgres"),
                    }
                )
                cpu.start()
            plan = plan_tick(t, registry)
            windows = prepare_bars(base, t, plan)
            tick, bars, _ = build_events(
                settings.symbol,
                plan,
                windows,
                published_at=now,
                deadline=timedelta(seconds=30),
                namespace=prefix,
            )
            started = time.time()
            publish_tick(producer, settings, tick, bars, fast=True, chain=chain)
            producer.flush()
            acked = time.time()
            intent = read_intent(intents, tick.tick_id, sup, timeout=120 if i < WARMUP else 30)
            got = time.time()
            if i < WARMUP:
                continue
            if i == len(times) - 1:
                cpu.stop()
            out.append(
                {
                    "tick_id": tick.tick_id,
                    "start": started,
                    "ack": acked,
                    "read": got,
                    "intent_ts": intent[1],
                    "bars": float(max(len(b) for b in bars)),
                    "due": float(len(tick.expected_strategies)),
                }
            )
        rec_ts = recommendation_times(recs, {str(r["tick_id"]): int(r["due"]) for r in out})
    intents.close()
    recs.close()
    for r in out:
        per = rec_ts[str(r["tick_id"])]
        r["last_rec_ts"] = max(per.values())
        r["first_rec_ts"] = min(per.values())
        r |= {f"rec:{name}": at for name, at in per.items()}
    return out, cpu


def read_intent(
    consumer: Consumer, tick_id: str, sup: Supervisor, timeout: float
) -> tuple[OrderIntent, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            sup.check_alive()
            continue
        if msg.error():
            continue
        intent = serde.decode(msg.value() or b"", OrderIntent)
        if intent.tick_id == tick_id:
            return intent, msg.timestamp()[1] / 1000.0
    raise RuntimeError(f"no intent for {tick_id} within {timeout} s")


def recommendation_times(consumer: Consumer, due: dict[str, int]) -> dict[str, dict[str, float]]:
    """CreateTime (epoch s) of each strategy's recommendation, per tick, read after the run.

    ``due``: tick id -> how many strategies the tick's plan expects (4h/1d ones only on their bars).
    """
    tick_ids = set(due)
    seen: dict[str, dict[str, float]] = {}
    idle = time.monotonic()
    while time.monotonic() - idle < 5:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        idle = time.monotonic()
        rec = serde.decode(msg.value() or b"", Recommendation)
        if rec.tick_id in tick_ids:
            seen.setdefault(rec.tick_id, {})[rec.strategy] = msg.timestamp()[1] / 1000.0
    missing = [t for t in tick_ids if len(seen.get(t, {})) < due[t]]
    if missing:
        raise RuntimeError(f"{len(missing)} ticks lack recommendations, e.g. {missing[0]}")
    return seen


def decided_at(url: str, prefix: str) -> dict[str, float]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tick_id, decided_at FROM decisions WHERE namespace = %s", (prefix,))
        return {tick_id: at.timestamp() for tick_id, at in rows}


def _load(avg: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.1f}" for x in avg)


def _stats(values: list[float], bold: bool = False) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    cells = [statistics.median(values), q[89], q[98], max(values)]
    return " | ".join(f"**{v:.1f}**" if bold else f"{v:.1f}" for v in cells)


def report(
    rows: list[dict[str, float | str]],
    decided: dict[str, float],
    cpu: CpuMeter,
    load_start: tuple[float, ...],
    load_end: tuple[float, ...],
    out: Path,
    note: str,
) -> None:
    def ms(a: str, b: str) -> list[float]:
        return [(float(r[b]) - float(r[a])) * 1000 for r in rows if b in r]

    def per(group: str) -> float:
        return cpu.used[group] / len(rows) * 1000

    whole = "whole machine (every process)"
    other = per(whole) - sum(per(g) for g in cpu.used if g != whole)
    dec = [(decided[str(r["tick_id"])] - float(r["last_rec_ts"])) * 1000 for r in rows]
    total = ms("start", "read")
    arch = platform.processor() or platform.machine()
    per_strategy = sorted({k for r in rows for k in r if k.startswith("rec:")})
    n_strat = len(per_strategy)
    first, last = rows[0]["tick_id"], rows[-1]["tick_id"]
    lines = [
        f"# Tick to intent: {n_strat} strategy processes + meta consumer on the real broker",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({arch}, "
        f"{os.cpu_count()} cores, load average {_load(load_start)} at start, {_load(load_end)} at end; "
        f"shared machine), Python {platform.python_version()}, "
        "local Kafka 3.9 (KRaft, acks=all) and PostgreSQL.",
        "",
        f"`bench/bench_tick_to_intent.py`: {len(rows)} real hourly ticks ({first} .. {last}), one at a time, "
        f"TickPlan + 1h BarClosed ({int(max(float(r['bars']) for r in rows)):,}-bar window) each; "
        f"{n_strat} registry strategies and the meta consumer (majority-vote fallback) each run as their "
        "own process. "
        f"{WARMUP} warm-up ticks before these are not timed; no tick is excluded.",
        "Clock: tick handed to the producer -> OrderIntent read back from the intents topic.",
        *([f"Run: {note}"] if note else []),
        "",
        "| hop | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| **tick handed to producer -> intent read back** | {_stats(total, bold=True)} |",
        f"| tick handed -> acknowledged by the broker | {_stats(ms('start', 'ack'))} |",
        f"| tick handed -> first recommendation produced | {_stats(ms('start', 'first_rec_ts'))} |",
        *[
            f"| tick handed -> recommendation of {k[4:]} produced ({len(ms('start', k))} ticks) | "
            f"{_stats(ms('start', k))} |"
            for k in per_strategy
        ],
        f"| tick handed -> last recommendation produced | {_stats(ms('start', 'last_rec_ts'))} |",
        f"| last recommendation -> decision computed (row about to be inserted) | {_stats(dec)} |",
        f"| last recommendation -> intent produced | {_stats(ms('last_rec_ts', 'intent_ts'))} |",
        f"| intent produced -> read back here | {_stats(ms('intent_ts', 'read'))} |",
        "",
        "Recommendation and intent times are their Kafka CreateTime (set when handed to the producer, "
        "millisecond resolution); the decision time is the row's `decided_at`, stamped after the model "
        "ran and before the row is inserted and committed.",
        "",
        f"CPU time over the {len(rows)} timed ticks ({cpu.wall:.1f} s wall, {os.cpu_count()} cores = "
        f"{cpu.wall * (os.cpu_count() or 1) / len(rows) * 1000:.1f} core-ms available per tick):",
        "",
        "| processes | CPU ms per tick |",
        "|---|---|",
        *[f"| {g} | {sec / len(rows) * 1000:.1f} |" for g, sec in cpu.used.items()],
        f"| everything else on the machine (other work) | {other:.1f} |",
        "",
        f"Reading this: the strategies need {per(STRATEGIES):.1f} core-ms per tick and all "
        "those due must answer before the meta consumer can decide, so on 2 cores that part alone takes at "
        f"least {per(STRATEGIES) / 2:.1f} ms of wall time when nothing else runs; the meta "
        f"consumer ({per('meta consumer'):.1f} core-ms per tick: ingest, join, decision row, intent) and the "
        f"broker ({per('Kafka broker (shared with other work)'):.1f}) come on top. Other work on this shared "
        f"machine took {other:.1f} core-ms per tick during the run.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
