"""Long-running wiring of the emitter: APScheduler cron at GLOBAL_TICK, SIGTERM, metrics.

The scheduler is only a clock. Overlap protection is layered: APScheduler's ``max_instances=1`` and
``coalesce`` stop it from starting a second run or a burst of missed runs, the emitter's own lock
covers manual ``once`` runs in the same process, and a Postgres advisory lock covers a second pod.
Missed firings are not replayed by the scheduler: the next run's catch-up publishes them, in order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from confluent_kafka.admin import AdminClient

from common.db.session import make_engine
from common.health import HEALTH
from common.heartbeat import Heartbeat
from common.kafka.configuration import admin_config
from common.kafka.producer import EventProducer
from common.kafka.topics import ensure_topics, topic_specs
from common.logging import get_logger
from common.registry import Registry, load_registry
from common.shutdown import GracefulShutdown
from config import Settings
from producers.sources import CcxtSource
from tick_emitter.emitter import TickEmitter

log = get_logger(__name__)


def cron_trigger(tick_minutes: int, second: int = 0) -> CronTrigger:
    """A UTC cron firing at every GLOBAL_TICK boundary (plus ``second`` to let the exchange close the bar).

    Ticks that do not divide an hour or a day fire every minute; the emitter then publishes only
    grid-aligned tick times, so the tick grid stays epoch-aligned whatever the cron can express.
    """
    if tick_minutes < 60 and 60 % tick_minutes == 0:
        return CronTrigger(minute=f"*/{tick_minutes}", second=second, timezone=UTC)
    if tick_minutes % 60 == 0 and 1440 % tick_minutes == 0:
        return CronTrigger(hour=f"*/{tick_minutes // 60}", minute=0, second=second, timezone=UTC)
    return CronTrigger(minute="*", second=second, timezone=UTC)


def load_emitter_registry(settings: Settings) -> Registry:
    return load_registry(
        settings.registry_path, max_lookback_hours=settings.max_lookback_hours, import_classes=False
    )


def build_emitter(
    settings: Settings,
    *,
    sync: bool = True,
    prune: bool = True,
    catchup_hours: float = 24.0,
    deadline_s: float = 30.0,
) -> TickEmitter:
    registry = load_emitter_registry(settings)
    ensure_topics(AdminClient(admin_config(settings)), topic_specs(settings, registry.timeframes))
    engine = make_engine(settings.database_url.get_secret_value(), statement_timeout_ms=120_000)
    producer = EventProducer(settings, "tick-emitter")
    # A tick cannot wait a minute for a dead exchange: few short tries, then publish from stored data.
    source = None
    if sync:
        source = CcxtSource.from_ccxt_id(settings.exchange.ccxt_id, attempts=3, timeout_ms=5_000)
    return TickEmitter(
        settings,
        registry,
        engine,
        producer,
        source=source,
        prune=prune,
        catchup_hours=catchup_hours,
        deadline=timedelta(seconds=deadline_s),
    )


def run_forever(emitter: TickEmitter, *, delay_s: int = 5, shutdown: GracefulShutdown | None = None) -> None:
    """Run until SIGTERM/SIGINT; the tick in progress finishes and the producer is flushed first."""
    shutdown = (shutdown or GracefulShutdown()).install()
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        emitter.run_once,
        cron_trigger(emitter.settings.global_tick_minutes, delay_s),
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=30,
        next_run_time=datetime.now(UTC),  # catch up right away after a restart
    )
    scheduler.start()
    log.info(
        "tick_emitter_started",
        global_tick=emitter.settings.global_tick,
        strategies=len(emitter.registry.enabled),
        namespace=emitter.namespace,
    )
    heartbeat = Heartbeat(emitter.settings, "tick_emitter", every_s=15.0)
    try:
        while not shutdown.wait(1.0):
            HEALTH.beat()
            if heartbeat.due():
                heartbeat.beat(None, {"global_tick": emitter.settings.global_tick})
    finally:
        log.info("tick_emitter_stopping")
        scheduler.shutdown(wait=True)
        emitter.producer.close()
