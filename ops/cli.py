"""``python -m ops``: idempotent set-up steps used by the Makefile, CI and the Helm topic Job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from common.cli import make_app

if TYPE_CHECKING:
    from config import Settings

# Start-up imports only typer: every command imports what it uses, so `--help` and a mistyped
# option answer at once instead of after loading confluent_kafka, pydantic and jsonschema.

app = make_app("Operations: migrate the database, create Kafka topics, wait for infrastructure.")


def registry_timeframes(settings: Settings) -> list[str]:
    from common.registry import load_registry

    registry = load_registry(
        settings.registry_path, max_lookback_hours=settings.max_lookback_hours, import_classes=False
    )
    return sorted({s.timeframe for s in registry.strategies})


@app.command()
def topics(
    prefix: str = typer.Option(None, help="Topic prefix (default: BTCMETA_KAFKA__TOPIC_PREFIX)."),
) -> None:
    """Create every topic with its partition count (intents: exactly 1). Safe to repeat."""
    from common.kafka.topics import ensure_topics, topic_specs, wait_for_broker
    from config import load_settings

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
    from config import load_settings

    settings = load_settings()
    url = settings.database_url.get_secret_value()
    upgrade(url, revision)
    typer.echo(f"[ops] database at revision {current(url)}")
    if revision == "head":
        # Before a release's pods roll (this is the pre-upgrade Job): older consumers still running
        # must be able to read what the new producers write (docs/decisions/0014-...).
        from common.schema_store import register_shipped

        added = register_shipped(settings, "ops-migrate")
        typer.echo(f"[ops] schema store: {added} new writer schema(s) registered")


@app.command()
def wait(timeout: float = typer.Option(60.0, help="Seconds to wait.")) -> None:
    """Wait until Kafka answers metadata requests."""
    from common.kafka.topics import wait_for_broker
    from config import load_settings

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


runs_app = make_app("Pipeline runs (replays, backtests, demos): list and delete; never live.")
app.add_typer(runs_app, name="runs")


def _engine_admin() -> tuple[object, object]:
    from confluent_kafka.admin import AdminClient

    from common.db.session import make_engine
    from common.kafka.configuration import admin_config
    from config import load_settings

    settings = load_settings()
    return make_engine(settings.database_url.get_secret_value()), AdminClient(admin_config(settings))


@runs_app.command("list")
def runs_list() -> None:
    """Every run namespace with its status, rows and topics (the live namespace is not listed)."""
    from ops.runs import list_runs

    engine, admin = _engine_admin()
    rows = list_runs(engine, admin)  # type: ignore[arg-type]
    typer.echo(f"{'namespace':<40} {'kind':<9} {'status':<11} {'rows':>9} {'topics':>6}  started")
    for r in rows:
        typer.echo(f"{r.prefix:<40} {r.kind:<9} {r.status:<11} {r.rows:>9,} {r.topics:>6}  {r.started_at}")
    typer.echo(f"{len(rows)} run(s)")


@runs_app.command("delete")
def runs_delete(
    runs: list[str] = typer.Argument(..., help="Run namespaces (e.g. bt.r20261124t120000.) or run ids."),  # noqa: B008
) -> None:
    """Delete runs: their rows (executor and paper venue), topics, consumer groups and run record."""
    from ops.pipeline import LiveNamespaceRefused
    from ops.runs import delete_run

    engine, admin = _engine_admin()
    for run in runs:
        try:
            rows, topics, groups = delete_run(engine, admin, run)  # type: ignore[arg-type]
        except LiveNamespaceRefused as exc:
            typer.echo(f"[ops] {exc}", err=True)
            raise typer.Exit(code=2) from None
        typer.echo(f"[ops] deleted {run}: {rows:,} rows, {len(topics)} topics, {len(groups)} consumer groups")


@app.command()
def backfill(
    namespace: str = typer.Option(..., help="Replay namespace (topic prefix) whose bars to answer."),
    strategy: str = typer.Option(..., help="Registry strategy to run over the retained bars."),
    out: str = typer.Option(None, help="Write the namespace's signals (all --with strategies) as .npz."),
    with_: list[str] = typer.Option(None, "--with", help="Strategies already in the namespace to include."),  # noqa: B008
    logs: str = typer.Option("out/backfill", help="Folder for the strategy consumer's log."),
    timeout: float = typer.Option(1800.0, help="Give up after this many seconds."),
) -> None:
    """Backfill one strategy's recommendations over a namespace's retained bars (a new consumer group)."""
    from common.db.session import make_engine
    from common.logging import configure_logging
    from config import load_settings
    from ops.backfill import backfill as run_backfill
    from ops.backfill import signals_from_namespace

    configure_logging("ops.backfill", json=False)
    result = run_backfill(
        namespace, strategy, Path(logs), timeout_s=timeout, say=lambda m: typer.echo(f"[ops] {m}")
    )
    typer.echo(
        f"[ops] {result.strategy}: {result.stored:,} recommendations for {result.bars:,} bars "
        f"in {result.seconds:.0f}s"
    )
    if out:
        engine = make_engine(load_settings().database_url.get_secret_value())
        arrays = signals_from_namespace(engine, namespace, [*(with_ or []), strategy])
        arrays.save(out)
        typer.echo(f"[ops] signals of {', '.join(arrays.strategies)} over {len(arrays):,} bars -> {out}")


# Backtest by topic replay (issue 9) runs in ops.replay_backtest; its options are declared only here,
# so that registering the command does not import that module (pandas, SQLAlchemy, the policy), and
# passed on as keyword arguments (tests/unit/test_cli_imports.py checks the two signatures agree).
# ``python -m training replay-backtest`` is a deprecated alias that runs this command.
@app.command("replay-backtest")
def replay_backtest(
    out: Annotated[Path, typer.Option("--out", help="Folder for CSVs, comparison.json/md and service logs.")],
    start: Annotated[
        str | None, typer.Option("--from", help="First tick (ISO, UTC); default: --days before the end.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last tick, inclusive (ISO, UTC); default: last bar's close.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Window length when --from is not given.")] = 90,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Candle CSV to import first (default: the bundled data).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="models.model_id to run (pinned, not selected): an MLP policy or a registered combiner.",
        ),
    ] = None,
    fallback: Annotated[bool, typer.Option("--fallback", help="Run the majority-vote fallback.")] = False,
    live_risk_limits: Annotated[bool, typer.Option(help="Keep the configured daily loss cap.")] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 3600.0,
) -> None:
    """Backtest by topic replay through every service, compared tick by tick with the vectorized one."""
    from ops.replay_backtest import replay_backtest_cmd

    replay_backtest_cmd(
        out=out,
        start=start,
        end=end,
        days=days,
        data=data,
        model=model,
        fallback=fallback,
        live_risk_limits=live_risk_limits,
        timeout=timeout,
    )
