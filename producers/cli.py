"""``python -m producers``: load candles into Postgres and report gaps.

Configuration comes from the environment (config.py); flags only choose what to do, so the same
container image runs as a cron job (``sync``) or a one-off (``init``, ``import-csv``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from common.cli import make_app
from common.dataset import BUNDLED_CSV

if TYPE_CHECKING:
    from config import Settings
    from producers.exogenous import ImportReport
    from producers.sync import SyncReport

# Start-up imports only typer and a path: ccxt alone takes seconds to import, so it, SQLAlchemy,
# pandas and the sources are imported by the commands that use them (`--help` answers at once).

# The live exogenous sources, named in `poll --source`'s help; the same tuple as
# producers.exogenous.SOURCE_NAMES (a unit test keeps them equal) without importing that module.
SOURCE_NAMES = (
    "fear_greed", "news", "sentiment", "kraken_funding", "kraken_open_interest", "binance_funding"
)  # fmt: skip

app = make_app("Market data: candles exchange/CSV -> Postgres.")


def parse_when(value: str) -> datetime:
    """ISO date/time; a naive value is taken as UTC (the whole system runs on UTC)."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date/time (e.g. 2022-01-01T00:00)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _setup(service: str) -> Settings:
    from common.logging import configure_logging
    from config import get_settings

    settings = get_settings().resolved()
    configure_logging(service, settings.log_level, settings.log_json)
    return settings


@contextmanager
def _exchange_errors() -> Iterator[None]:
    """An unreachable exchange is an operational condition: one clear line and exit 1, no traceback."""
    import ccxt

    try:
        yield
    except ccxt.BaseError as exc:
        typer.echo(f"exchange error after retries: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


def _summary(report: SyncReport) -> None:
    typer.echo(
        f"fetched={report.fetched} inserted={report.inserted} rejected={len(report.rejected)} "
        f"pruned={report.pruned}"
    )


CSV_HELP = "date,open,high,low,close,volume CSV (.gz ok); default: the bundled dataset."
Prune = Annotated[
    bool,
    typer.Option(
        "--prune/--no-prune", help="Delete this source's candles older than MAX_LOOKBACK_HOURS (+ margin)."
    ),
]


@app.command()
def init(prune: Prune = True) -> None:
    """Fetch the whole MAX_LOOKBACK_HOURS window from the exchange (idempotent)."""
    from common.db.session import make_engine
    from producers.sources import CcxtSource
    from producers.sync import initialize_market_data

    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    with _exchange_errors():
        source = CcxtSource.from_ccxt_id(settings.exchange.ccxt_id)
        _summary(initialize_market_data(settings, engine, source, prune=prune))


@app.command()
def sync(prune: Prune = True) -> None:
    """Fetch only candles newer than the last stored one (idempotent)."""
    from common.db.session import make_engine
    from producers.sources import CcxtSource
    from producers.sync import sync_market_data

    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    with _exchange_errors():
        _summary(
            sync_market_data(
                settings, engine, CcxtSource.from_ccxt_id(settings.exchange.ccxt_id), prune=prune
            )
        )


@app.command("import-csv")
def import_csv_cmd(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=CSV_HELP)] = BUNDLED_CSV,
    symbol: Annotated[str | None, typer.Option(help="Default: BTCMETA_SYMBOL.")] = None,
) -> None:
    """Import a CSV's history at its own timeframe (never pruned; demos and training)."""
    from common.db.session import make_engine
    from producers.sources import CsvSource
    from producers.sync import import_csv

    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    source = CsvSource(path)
    typer.echo(f"timeframe={source.timeframe}")
    for line, reason in source.unreadable:
        typer.echo(f"rejected line {line}: {reason}", err=True)
    _summary(import_csv(settings, engine, source, symbol=symbol))


@app.command()
def gaps(
    start: Annotated[str, typer.Option(help="Range start (ISO, UTC).")],
    end: Annotated[str, typer.Option(help="Range end, exclusive (ISO, UTC).")],
    timeframe: Annotated[str | None, typer.Option(help="Default: BTCMETA_MIN_TIMEFRAME.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Default: BTCMETA_SYMBOL.")] = None,
) -> None:
    """List missing candle ranges in [start, end); exit code 1 when there are any."""
    from common.db.session import make_engine
    from producers.sync import report_gaps

    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    found = report_gaps(
        engine,
        symbol or settings.symbol,
        timeframe or settings.min_timeframe,
        parse_when(start),
        parse_when(end),
    )
    for g in found:
        typer.echo(f"{g.start.isoformat()}\t{g.end.isoformat()}\t{g.bars} bars missing")
    typer.echo(f"{len(found)} gap(s)")
    raise typer.Exit(1 if found else 0)


# ------------------------------------------------------------------------------------ exogenous

exogenous_app = make_app("Exogenous (non-price) series: shared files and live sources -> Postgres.")
app.add_typer(exogenous_app, name="exogenous")


def _known_series(values: list[str] | None) -> list[str] | None:
    from common.exogenous.catalog import TIME_SERIES

    for name in values or []:
        if name not in TIME_SERIES:
            raise typer.BadParameter(f"unknown series {name!r}; known: {', '.join(TIME_SERIES)}")
    return values or None


def _known_sources(values: list[str] | None) -> list[str] | None:
    for name in values or []:
        if name not in SOURCE_NAMES:
            raise typer.BadParameter(f"unknown source {name!r}; known: {', '.join(SOURCE_NAMES)}")
    return values or None


def _exo_summary(reports: list[ImportReport]) -> None:
    for report in reports:
        typer.echo(report.line(), err=report.error is not None)
    failed = [r for r in reports if r.error is not None]
    if failed:
        typer.echo(f"{len(failed)} of {len(reports)} failed", err=True)
        raise typer.Exit(1)


@exogenous_app.command("import")
def exogenous_import(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            exists=True,
            file_okay=False,
            help="Folder of the shared exogenous CSVs (default: BTCMETA_EXOGENOUS__DATA_DIR).",
        ),
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option("--series", callback=_known_series, help="Only this series (repeatable); default: all."),
    ] = None,
) -> None:
    """Load the shared files, validated, idempotent: a re-run inserts nothing new.

    Prints per series the rows read, taken, newly inserted, already stored, and refused per reason.
    """
    from common.db.session import make_engine
    from producers import exogenous

    settings = _setup("producers")
    folder = directory or Path(settings.exogenous.data_dir)
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="--dir")
    engine = make_engine(settings.database_url.get_secret_value())
    _exo_summary(exogenous.import_dir(engine, folder, series))


@exogenous_app.command("poll")
def exogenous_poll(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            callback=_known_sources,
            help=f"Only this source (repeatable): {', '.join(SOURCE_NAMES)}; default: all configured.",
        ),
    ] = None,
) -> None:
    """Fetch the live sources (URLs from BTCMETA_EXOGENOUS__*) once and store what is new.

    A source that is unreachable or answers garbage is reported (exit 1); its stored data is kept.
    """
    from common.db.session import make_engine
    from producers import exogenous

    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    _exo_summary(exogenous.poll(engine, settings.exogenous, source))
