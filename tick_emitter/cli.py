"""``python -m tick_emitter``: the scheduler service, a single tick, replays, and status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from common.cli import make_app
from producers.cli import parse_when

if TYPE_CHECKING:
    from config import Settings

# Start-up imports only typer (and producers.cli, as light): the emitter, Kafka, SQLAlchemy and
# pydantic are imported by the commands that use them, so `--help` answers at once.

app = make_app("Tick emitter: publishes TickPlan + BarClosed at every GLOBAL_TICK.")

Sync = Annotated[bool, typer.Option("--sync/--no-sync", help="Sync candles from the exchange first.")]
Prune = Annotated[bool, typer.Option("--prune/--no-prune", help="Prune synced candles past the lookback.")]


def _setup() -> Settings:
    from common.logging import configure_logging
    from config import get_settings

    settings = get_settings().resolved()
    configure_logging("tick-emitter", settings.log_level, settings.log_json)
    return settings


@app.command()
def run(
    sync: Sync = True,
    prune: Prune = True,
    delay: Annotated[int, typer.Option(min=0, max=59, help="Seconds after the boundary to fire.")] = 5,
    catchup_hours: Annotated[float, typer.Option(min=0, help="Most downtime to catch up.")] = 24.0,
) -> None:
    """Run the cron service until SIGTERM."""
    from common import health
    from tick_emitter.service import build_emitter, run_forever

    settings = _setup()
    health.start(settings)  # metrics + /healthz/live, /healthz/ready (Postgres, Kafka)
    run_forever(build_emitter(settings, sync=sync, prune=prune, catchup_hours=catchup_hours), delay_s=delay)


@app.command()
def once(
    sync: Sync = True,
    prune: Prune = True,
    at: Annotated[str | None, typer.Option(help="Pretend it is this time (ISO, UTC).")] = None,
) -> None:
    """One tick (with catch-up) now, then exit."""
    from tick_emitter.service import build_emitter

    settings = _setup()
    emitter = build_emitter(settings, sync=sync, prune=prune)
    result = emitter.run_once(parse_when(at) if at else None)
    emitter.producer.close()
    for tick in result.published:
        typer.echo(f"published {tick.tick_id} {','.join(tick.due_timeframes)}")
    typer.echo(
        f"{len(result.published)} tick(s) published, {result.skipped_recorded} already recorded, "
        f"{len(result.degraded)} degraded"
    )


@app.command("replay")
def replay_cmd(
    start: Annotated[str, typer.Option(help="First tick time (ISO, UTC).")],
    end: Annotated[str, typer.Option(help="Last tick time, inclusive (ISO, UTC).")],
    prefix: Annotated[str, typer.Option(help="Topic namespace, e.g. 'replay.r1.' (empty refused).")],
    csv: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Read candles from this CSV instead of Postgres."),
    ] = None,
    speed: Annotated[float | None, typer.Option(min=0.001, help="Ticks per second (default: max).")] = None,
    max_ahead: Annotated[int | None, typer.Option(min=1, help="Stay <= N ticks ahead of --group.")] = None,
    group: Annotated[list[str] | None, typer.Option(help="Consumer group to pace against (repeat).")] = None,
) -> None:
    """Publish a historical range into a separate topic namespace."""
    if not prefix:
        raise typer.BadParameter("the empty prefix is the live namespace", param_hint="--prefix")
    from pydantic import ValidationError

    from common import health
    from common.db.retry import with_db_retry
    from common.db.session import make_engine
    from common.shutdown import GracefulShutdown
    from config import KafkaSettings
    from producers import store
    from tick_emitter.core import BaseCandles
    from tick_emitter.replay import base_from_csv, replay
    from tick_emitter.service import load_emitter_registry

    base_settings = _setup()
    try:
        kafka = KafkaSettings.model_validate({**base_settings.kafka.model_dump(), "topic_prefix": prefix})
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="--prefix") from None
    settings = base_settings.model_copy(update={"kafka": kafka})
    health.start(settings, postgres=csv is None)
    registry = load_emitter_registry(settings)
    t0, t1 = parse_when(start), parse_when(end)
    minutes = settings.min_timeframe_minutes
    if csv is not None:
        base = base_from_csv(str(csv), minutes, datetime.now(UTC))
    else:
        engine = make_engine(settings.database_url.get_secret_value())
        lookback = timedelta(hours=max((s.lookback_hours for s in registry.enabled), default=0))
        arrays = with_db_retry(
            lambda: store.load_arrays(engine, settings.symbol, settings.min_timeframe, t0 - lookback, t1),
            what="replay candles",
        )
        base = BaseCandles(*arrays, minutes)
    stats = replay(
        settings,
        registry,
        base,
        t0,
        t1,
        speed=speed,
        max_ahead=max_ahead,
        groups=group or (),
        shutdown=GracefulShutdown().install(),
    )
    typer.echo(
        f"{stats.ticks} ticks, {stats.bars} bars in {stats.seconds:.2f}s "
        f"({stats.ticks_per_s:.0f} ticks/s), {stats.degraded} degraded"
    )


@app.command()
def status() -> None:
    """Last published tick and last stored candle (what an operator checks first)."""
    from common.db.session import make_engine
    from producers import store
    from tick_emitter.emitter import db_namespace, last_recorded_tick

    settings = _setup()
    engine = make_engine(settings.database_url.get_secret_value())
    last_tick = last_recorded_tick(engine, db_namespace(settings), settings.symbol)
    last_candle = store.last_open_time(engine, settings.symbol, settings.min_timeframe)
    now = datetime.now(UTC)
    typer.echo(f"namespace={db_namespace(settings)} symbol={settings.symbol}")
    typer.echo(
        f"last_tick={last_tick.isoformat() if last_tick else None} "
        f"behind_s={(now - last_tick).total_seconds() if last_tick else None}"
    )
    typer.echo(f"last_candle={last_candle.isoformat() if last_candle else None} ({settings.min_timeframe})")
