"""Process entry point of one strategy service: settings, logging, metrics, graceful shutdown."""

from __future__ import annotations

from common import health
from common.logging import configure_logging
from common.process import freeze_startup_heap
from config import get_settings
from strategy_consumers.runner import RunnerError, make_loop


def run_service(name: str) -> None:
    settings = get_settings().resolved()
    log = configure_logging(f"strategy.{name}", settings.log_level, settings.log_json)
    try:
        loop, runner = make_loop(settings, name)
    except RunnerError as exc:
        log.error("cannot_start", reason=str(exc))
        raise SystemExit(2) from exc
    health.start(settings, postgres=False)  # metrics + /healthz; strategies only need Kafka
    loop.shutdown.install()
    log.info(
        "strategy_service_started",
        strategy=name,
        version=runner.spec.version,
        timeframe=runner.spec.timeframe,
        lookback_hours=runner.spec.lookback_hours,
        topic_prefix=settings.kafka.topic_prefix,
    )
    freeze_startup_heap()
    stats = loop.run()
    log.info("strategy_service_stopped", handled=stats.handled, dead_lettered=stats.dead_lettered)
