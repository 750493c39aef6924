"""The main job: the bundled real data through the whole pipeline, paper trading, a report.

Every stage runs as its own process on the real broker and database, exactly as deployed: the
tick emitter replays the last ``days`` of the bundled Bitstamp hourly candles into a namespace of
its own, five strategy consumers answer, the meta consumer decides (the selected model, or the
documented majority-vote fallback when none is selected) and the executor trades the paper
venue on replayed time. Re-running deletes the previous demo namespace first, so the result is
the same every time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from sqlalchemy import func, select

from common.dataset import BUNDLED_CSV, load_bundled_candles
from common.db.models import Decision, Intent, Tick
from common.db.namespaces import delete_namespaces, list_namespaces
from common.db.session import make_engine, session_scope
from common.kafka.configuration import admin_config
from common.kafka.topics import delete_topics_with_prefix, ensure_topics, topic_specs
from common.logging import get_logger
from common.registry import load_registry
from config import Settings, load_settings
from ops.report import write_report
from ops.supervisor import REPO, Supervisor

log = get_logger(__name__)
DEMO_ROOT = "demo."


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _cleanup_previous(settings: Settings, engine_url: str) -> None:
    admin = AdminClient(admin_config(settings))
    removed = delete_topics_with_prefix(admin, DEMO_ROOT)
    engine = make_engine(engine_url)
    old = [
        ns
        for ns in list_namespaces(engine)
        if ns.startswith(DEMO_ROOT) or ns.startswith(f"paper:{DEMO_ROOT}")
    ]
    rows = delete_namespaces(engine, old) if old else 0
    if removed or rows:
        say(f"removed the previous demo run ({len(removed)} topics, {rows} rows)")


def _count(engine_url: str, model: Any, namespace: str) -> int:
    with session_scope(make_engine(engine_url)) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.namespace == namespace)) or 0)


def run_demo(days: int, out: Path, timeout_s: float) -> Path:
    base = load_settings()
    run_id = datetime.now(UTC).strftime("r%Y%m%dt%H%M%S")
    prefix = f"{DEMO_ROOT}{run_id}."
    url = base.database_url.get_secret_value()
    env = {
        "BTCMETA_MIN_TIMEFRAME": "1h",
        "BTCMETA_KAFKA__TOPIC_PREFIX": prefix,
        "BTCMETA_LOG_JSON": "true",
        "BTCMETA_EXECUTOR_REPLAY_CLOCK": "true",
        "BTCMETA_META_DEADLINE_S": "120",
    }
    settings = load_settings(min_timeframe="1h", kafka=base.kafka.model_copy(update={"topic_prefix": prefix}))
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    candles = load_bundled_candles()
    end = candles.index[-1].to_pydatetime() + timedelta(hours=1)  # the tick at which the last bar closes
    start = end - timedelta(days=days)

    say(f"importing the bundled real dataset ({len(candles):,} hourly candles) into Postgres")
    subprocess.run(
        [sys.executable, "-m", "producers", "import-csv", str(BUNDLED_CSV)],
        cwd=REPO,
        check=True,
        env={**os.environ, "BTCMETA_MIN_TIMEFRAME": "1h"},
        stdout=subprocess.DEVNULL,
    )
    _cleanup_previous(settings, url)
    ensure_topics(AdminClient(admin_config(settings)), topic_specs(settings, registry.timeframes))

    logs = out / "logs"
    say(f"namespace {prefix}  window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({days} days)")
    with Supervisor(env, logs) as sup:
        for spec in registry.enabled:
            sup.start(f"strategy.{spec.name}", "strategy_consumers", "run", spec.name)
        sup.start("meta_consumer", "meta_consumer", "run")
        sup.start("executor", "executor", "run")
        groups = [a for spec in registry.enabled for a in ("--group", f"{prefix}strategy.{spec.name}")]
        say("services started: strategies, meta consumer (model or majority-vote fallback), executor (paper)")
        sup.start(
            "tick_emitter.replay",
            "tick_emitter",
            "replay",
            "--start",
            start.isoformat(),
            "--end",
            (end - timedelta(seconds=1)).isoformat(),
            "--prefix",
            prefix,
            "--max-ahead",
            "24",
            *groups,
        )
        started = time.monotonic()
        last_note = 0.0
        while True:
            replay_done = sup.exited("tick_emitter.replay")
            ticks = _count(url, Tick, prefix)
            decided = _count(url, Decision, prefix)
            executed = _count(url, Intent, prefix)
            if replay_done and ticks and decided >= ticks and executed >= decided:
                break
            sup.check_alive(allow_exited={"tick_emitter.replay"})
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"pipeline not done after {timeout_s:.0f}s: ticks={ticks} decided={decided} "
                    f"executed={executed}; see {logs}"
                )
            if time.monotonic() - last_note > 10:
                say(f"progress: {decided:,} ticks decided, {executed:,} intents executed")
                last_note = time.monotonic()
            time.sleep(1.0)
        say(
            f"pipeline done in {time.monotonic() - started:.0f}s: "
            f"{decided:,} decisions, {executed:,} intents executed"
        )
    report = write_report(url, prefix, start, end, out, registry)
    say(f"report: {report}")
    return report


def main(days: int = 90, out: str = "out/demo", timeout_s: float = 1800.0) -> None:
    try:
        run_demo(days, REPO / out, timeout_s)
    except Exception as exc:
        say(f"FAILED: {exc}")
        raise SystemExit(1) from exc
