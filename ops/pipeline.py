"""Run the whole pipeline over a historical window in a namespace of its own (demo and backtests).

Shared by ``python -m ops demo`` and ``python -m ops replay-backtest``: every service runs as
its own process on the real broker and database (``ops.supervisor``), configured only through
environment variables, exactly as deployed:

```
tick_emitter replay -> strategy_consumers run <name> (one per enabled strategy) -> meta_consumer run
                    -> executor run (paper venue, replayed clock)
```

The replay writes only ``<prefix>*`` topics and rows whose namespace is the prefix (the paper
venue's rows are ``paper:<prefix>``); the empty prefix (live) is refused before anything starts.
A run is recorded in ``replay_runs`` so ``python -m ops runs list|delete`` can find it again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from sqlalchemy import func, select, update

from common.db.base import LIVE_NAMESPACE
from common.db.models import Decision, Intent, ReplayRun
from common.db.session import make_engine, session_scope
from common.kafka.configuration import admin_config
from common.kafka.topics import ensure_topics, topic_specs
from common.logging import get_logger
from common.registry import Registry, load_registry
from config import Settings, load_settings
from ops.supervisor import REPO, Supervisor, machine_busy_seconds

log = get_logger(__name__)
_TICKS_LINE = re.compile(rb"^(\d+) ticks, (\d+) bars", re.MULTILINE)
REPLAY_JOB = "tick_emitter.replay"


class LiveNamespaceRefused(ValueError):
    """A pipeline run may never write into the live namespace."""


@dataclass(frozen=True)
class PipelineSpec:
    """One run: namespace (topic prefix), tick window (both ends inclusive) and service settings."""

    prefix: str
    start: datetime
    end: datetime
    log_dir: Path
    kind: str = "replay"
    #: Extra environment for every service (``BTCMETA_*`` overrides, e.g. a pinned model).
    env: dict[str, str] = field(default_factory=dict)
    #: Candle CSV the tick emitter replays from (default: the candles table in Postgres).
    csv: Path | None = None
    timeout_s: float = 1800.0
    #: Replay at most this many ticks ahead of the slowest strategy consumer group.
    max_ahead: int = 24
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    ticks: int
    decided: int
    executed: int
    seconds: float
    #: When each stage finished its last message, seconds after the services started.
    stage_done_s: dict[str, float] = field(default_factory=dict)
    #: CPU seconds per service process (Linux; the replay job as of its last sample).
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: CPU seconds the whole machine was busy meanwhile (every process: Kafka, Postgres, others).
    machine_busy_s: float | None = None

    @property
    def ticks_per_s(self) -> float:
        return self.ticks / self.seconds if self.seconds else 0.0


def check_prefix(prefix: str) -> str:
    if not prefix or prefix == LIVE_NAMESPACE or not prefix.endswith("."):
        raise LiveNamespaceRefused(
            f"refusing namespace {prefix!r}: a replay needs a prefix of its own ending in '.' "
            "(the empty prefix is the live system)"
        )
    return prefix


def settings_for(prefix: str) -> Settings:
    base = load_settings()
    return load_settings(min_timeframe="1h", kafka=base.kafka.model_copy(update={"topic_prefix": prefix}))


def service_env(prefix: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every service of a run: its namespace, replayed executor clock, JSON logs."""
    return {
        "BTCMETA_MIN_TIMEFRAME": "1h",
        "BTCMETA_KAFKA__TOPIC_PREFIX": check_prefix(prefix),
        "BTCMETA_LOG_JSON": "true",
        "BTCMETA_EXECUTOR__REPLAY_CLOCK": "true",
        # Wall-clock seconds a tick waits for missing inputs before it is decided degraded. The
        # deadline runs from the TickPlan's arrival at the meta consumer's ingest, which in a
        # replay can be far ahead of its decider (a backlog, not a late answer): 300 s degraded
        # every tick after 4,700 of a year-long replay on a loaded machine. A replay takes the
        # maximum; a tick still decided degraded is reported as a difference by the comparison.
        "BTCMETA_META__DEADLINE_S": "3600",
        **(extra or {}),
    }


def import_candles(csv: Path) -> None:
    """Candles are the shared market record (no namespace): the paper venue prices from them."""
    subprocess.run(
        [sys.executable, "-m", "producers", "import-csv", str(csv)],
        cwd=REPO,
        check=True,
        env={**os.environ, "BTCMETA_MIN_TIMEFRAME": "1h"},
        stdout=subprocess.DEVNULL,
    )


def import_exogenous(directory: Path | None = None) -> None:
    """The shared exogenous series (no namespace, like candles): what the emitter attaches to bars.

    Idempotent (``producers exogenous import`` stores only new rows); ``directory`` defaults to
    the configured ``exogenous.data_dir``. Without the folder the strategies reading it say "no
    opinion" all run long, which the producer's error makes visible here rather than silently.
    """
    cmd = [sys.executable, "-m", "producers", "exogenous", "import"]
    if directory is not None:
        cmd += ["--dir", str(directory)]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def _count(engine: Any, model: Any, namespace: str) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.namespace == namespace)) or 0)


def replayed_ticks(log_file: Path) -> int | None:
    """Ticks the replay job published, from its summary line (None while it runs)."""
    found = _TICKS_LINE.findall(log_file.read_bytes()) if log_file.exists() else []
    return int(found[-1][0]) if found else None


def record_run(settings: Settings, spec: PipelineSpec) -> str:
    run_id = spec.prefix.rstrip(".")
    engine = make_engine(settings.database_url.get_secret_value())
    with session_scope(engine) as s:
        row = s.get(ReplayRun, run_id)
        params = {
            "kind": spec.kind,
            "start": spec.start.isoformat(),
            "end": spec.end.isoformat(),
            **spec.params,
        }
        if row is None:
            s.add(ReplayRun(run_id=run_id, namespace=spec.prefix, status="running", params=params))
        else:
            row.status, row.params, row.finished_at = "running", params, None
    return run_id


def finish_run(settings: Settings, run_id: str, status: str, extra: dict[str, Any] | None = None) -> None:
    engine = make_engine(settings.database_url.get_secret_value())
    with session_scope(engine) as s:
        row = s.get(ReplayRun, run_id)
        params = {**(row.params if row is not None else {}), **(extra or {})}
        s.execute(
            update(ReplayRun)
            .where(ReplayRun.run_id == run_id)
            .values(status=status, finished_at=datetime.now(UTC), params=params)
        )


def run_pipeline(
    spec: PipelineSpec,
    *,
    registry: Registry | None = None,
    say: Callable[[str], None] = print,
    strategies: list[str] | None = None,
) -> PipelineResult:
    """Start every service, replay the window, wait for the last tick's execution, stop everyone."""
    prefix = check_prefix(spec.prefix)
    settings = settings_for(prefix)
    registry = registry or load_registry(
        settings.registry_path, max_lookback_hours=settings.max_lookback_hours
    )
    names = strategies if strategies is not None else [s.name for s in registry.enabled]
    ensure_topics(AdminClient(admin_config(settings)), topic_specs(settings, registry.timeframes))
    engine = make_engine(settings.database_url.get_secret_value())
    run_id = record_run(settings, spec)
    stage_done: dict[str, float] = {}
    try:
        with Supervisor(service_env(prefix, spec.env), spec.log_dir) as sup:
            for name in names:
                sup.start(f"strategy.{name}", "strategy_consumers", "run", name)
            sup.start("meta_consumer", "meta_consumer", "run")
            sup.start("executor", "executor", "run")
            groups = [a for name in names for a in ("--group", f"{prefix}strategy.{name}")]
            started = time.monotonic()
            busy_before = machine_busy_seconds()
            sup.start(
                REPLAY_JOB,
                "tick_emitter",
                "replay",
                "--start",
                spec.start.isoformat(),
                "--end",
                spec.end.isoformat(),
                "--prefix",
                prefix,
                "--max-ahead",
                str(spec.max_ahead),
                *(["--csv", str(spec.csv)] if spec.csv is not None else []),
                *groups,
            )
            last_note = time.monotonic()
            while True:
                done = sup.exited(REPLAY_JOB)
                expected = replayed_ticks(spec.log_dir / f"{REPLAY_JOB}.log") if done else None
                if expected is not None and REPLAY_JOB not in stage_done:
                    stage_done[REPLAY_JOB] = time.monotonic() - started
                decided = _count(engine, Decision, prefix)
                executed = _count(engine, Intent, prefix)
                if expected is not None and decided >= expected and "meta_consumer" not in stage_done:
                    stage_done["meta_consumer"] = time.monotonic() - started
                if expected is not None and decided >= expected and executed >= decided:
                    stage_done["executor"] = time.monotonic() - started
                    sup.sample_cpu()
                    cpu = sup.cpu_seconds()
                    busy_after = machine_busy_seconds()
                    break
                sup.check_alive(allow_exited={REPLAY_JOB})
                if time.monotonic() - started > spec.timeout_s:
                    raise TimeoutError(
                        f"pipeline not done after {spec.timeout_s:.0f}s: ticks={expected} decided={decided} "
                        f"executed={executed}; see {spec.log_dir}"
                    )
                if time.monotonic() - last_note > 15:
                    say(f"progress: {decided:,} ticks decided, {executed:,} intents executed")
                    last_note = time.monotonic()
                time.sleep(0.5)
            seconds = time.monotonic() - started
        busy = None if busy_before is None or busy_after is None else busy_after - busy_before
        result = PipelineResult(expected, decided, executed, seconds, stage_done, cpu, busy)
    except BaseException as exc:
        finish_run(settings, run_id, "failed", {"error": str(exc)[:500]})
        raise
    finish_run(settings, run_id, "done", {"ticks": result.ticks, "seconds": round(seconds, 1)})
    return result
