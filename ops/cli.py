"""``python -m ops``: idempotent set-up steps used by the Makefile, CI and the Helm topic Job."""

from __future__ import annotations

import typer

from common.kafka.topics import ensure_topics, topic_specs, wait_for_broker
from common.registry import load_registry
from config import Settings, load_settings

app = typer.Typer(
    help="Operations: migrate the database, create Kafka topics, wait for infrastructure.",
    no_args_is_help=True,
    add_completion=False,
)


def registry_timeframes(settings: Settings) -> list[str]:
    registry = load_registry(
        settings.registry_path, max_lookback_hours=settings.max_lookback_hours, import_classes=False
    )
    return sorted({s.timeframe for s in registry.strategies})


@app.command()
def topics(
    prefix: str = typer.Option(None, help="Topic prefix (default: BTCMETA_KAFKA__TOPIC_PREFIX)."),
) -> None:
    """Create every topic with its partition count (intents: exactly 1). Safe to repeat."""
    settings = load_settings()
    if prefix is not None:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})}
        )
    admin = wait_for_broker(settings)
    created = ensure_topics(admin, topic_specs(settings, registry_timeframes(settings)))
    typer.echo(
        f"[ops] topics: {len(created)} created" + (f" ({', '.join(created)})" if created else ", all present")
    )


@app.command()
def migrate(revision: str = typer.Argument("head", help="Alembic revision to upgrade to.")) -> None:
    """Apply database migrations (Alembic) up to REVISION. Safe to repeat."""
    from common.db.migrate import current, upgrade

    url = load_settings().database_url.get_secret_value()
    upgrade(url, revision)
    typer.echo(f"[ops] database at revision {current(url)}")


@app.command()
def wait(timeout: float = typer.Option(60.0, help="Seconds to wait.")) -> None:
    """Wait until Kafka answers metadata requests."""
    wait_for_broker(load_settings(), timeout)
    typer.echo("[ops] Kafka ready")


@app.command()
def demo(
    days: int = typer.Option(
        90, min=1, max=1500, help="Days of the bundled real data to replay (ending 2022-08-20)."
    ),
    out: str = typer.Option("out/demo", help="Folder for the report, CSVs and service logs."),
    timeout: float = typer.Option(1800.0, help="Give up after this many seconds."),
) -> None:
    """Main job: replay real data through every service (paper trading) and write a report."""
    from common.logging import configure_logging
    from ops.demo import main

    configure_logging("ops.demo", json=False)
    main(days, out, timeout)
