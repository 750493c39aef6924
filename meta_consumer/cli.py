"""``python -m meta_consumer``: run the service, or show where it stands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from common.cli import make_app

if TYPE_CHECKING:
    from config import MetaSettings, Settings

# Start-up imports only typer: the service (confluent_kafka, SQLAlchemy, the policy's libraries)
# is imported by the command that runs it, so `--help` answers at once.

app = make_app(
    "Meta consumer: joins recommendations per tick, runs the selected policy, "
    "publishes one OrderIntent per tick."
)


def _setup() -> tuple[Settings, MetaSettings]:
    from common.logging import configure_logging
    from config import get_settings

    settings = get_settings().resolved()
    meta = settings.meta
    configure_logging("meta-consumer", settings.log_level, settings.log_json)
    return settings, meta


@app.command()
def run() -> None:
    """Consume ticks and recommendations and decide every tick until SIGTERM.

    Settings come from BTCMETA_* environment variables (this service's own: BTCMETA_META__*).
    """
    from confluent_kafka.admin import AdminClient

    from common import health
    from common.kafka.configuration import admin_config
    from common.kafka.topics import ensure_topics, topic_specs
    from common.process import freeze_startup_heap
    from common.registry import load_registry
    from meta_consumer.service import MetaConsumer

    settings, meta = _setup()
    health.start(settings)  # metrics + /healthz/live, /healthz/ready; waits for Postgres and Kafka
    registry = load_registry(settings.registry_path, import_classes=False)
    timeframes = {*registry.timeframes, meta.decision_timeframe}
    ensure_topics(AdminClient(admin_config(settings)), topic_specs(settings, timeframes))
    consumer = MetaConsumer(settings, meta, live=tuple(s.name for s in registry.enabled))
    freeze_startup_heap()
    consumer.run()


@app.command()
def status() -> None:
    """The newest decision of this namespace (what an operator checks first)."""
    from common.db.session import make_engine
    from meta_consumer import store

    settings, _meta = _setup()
    service_ns = settings.kafka.topic_prefix or "live"
    row = store.last_decision(make_engine(settings.database_url.get_secret_value()), service_ns)
    if row is None:
        typer.echo(f"namespace={service_ns}: no decision yet")
        return
    typer.echo(
        f"namespace={service_ns} tick={row.tick_id} model={row.model_id} action={row.action} "
        f"exposure={row.current_exposure}->{row.target_exposure} degraded={row.degraded} "
        f"retrain_needed={row.observation.get('retrain_needed')} "
        f"decided_at={row.decided_at.isoformat()}"
    )
