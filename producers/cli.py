"""``python -m producers``: load candles into Postgres and report gaps.

Configuration comes from the environment (config.py); flags only choose what to do, so the same
container image runs as a cron job (``sync``) or a one-off (``init``, ``import-csv``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import ccxt
import typer

from common.dataset import BUNDLED_CSV
from common.db.session import make_engine
from common.logging import configure_logging
from config import Settings, get_settings
from producers.sources import CcxtSource, CsvSource
from producers.sync import (
    SyncReport,
    import_csv,
    initialize_market_data,
    report_gaps,
    sync_market_data,
)

app = typer.Typer(help="Market data: candles exchange/CSV -> Postgres.", no_args_is_help=True,
                  add_completion=False)


def parse_when(value: str) -> datetime:
    """ISO date/time; a naive value is taken as UTC (the whole system runs on UTC)."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date/time (e.g. 2022-01-01T00:00)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _setup(service: str) -> Settings:
    settings = get_settings().resolved()
    configure_logging(service, settings.log_level, settings.log_json)
    return settings


@contextmanager
def _exchange_errors() -> Iterator[None]:
    """An unreachable exchange is an operational condition: one clear line and exit 1, no traceback."""
    try:
        yield
    except ccxt.BaseError as exc:
        typer.echo(f"exchange error after retries: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


def _summary(report: SyncReport) -> None:
    typer.echo(f"fetched={report.fetched} inserted={report.inserted} rejected={len(report.rejected)} "
               f"pruned={report.pruned}")


CSV_HELP = "date,open,high,low,close,volume CSV (.gz ok); default: the bundled dataset."
Prune = Annotated[bool, typer.Option("--prune/--no-prune", help="Delete this source's candles "
                                     "older than MAX_LOOKBACK_HOURS (+ margin).")]


@app.command()
def init(prune: Prune = True) -> None:
    """Fetch the whole MAX_LOOKBACK_HOURS window from the exchange (idempotent)."""
    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    with _exchange_errors():
        source = CcxtSource.from_ccxt_id(settings.exchange.ccxt_id)
        _summary(initialize_market_data(settings, engine, source, prune=prune))


@app.command()
def sync(prune: Prune = True) -> None:
    """Fetch only candles newer than the last stored one (idempotent)."""
    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    with _exchange_errors():
        _summary(sync_market_data(settings, engine, CcxtSource.from_ccxt_id(settings.exchange.ccxt_id),
                                  prune=prune))


@app.command("import-csv")
def import_csv_cmd(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=CSV_HELP)] = BUNDLED_CSV,
    symbol: Annotated[str | None, typer.Option(help="Default: BTCMETA_SYMBOL.")] = None,
) -> None:
    """Import a CSV's history at its own timeframe (never pruned; demos and training)."""
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
    settings = _setup("producers")
    engine = make_engine(settings.database_url.get_secret_value())
    found = report_gaps(engine, symbol or settings.symbol, timeframe or settings.min_timeframe,
                        parse_when(start), parse_when(end))
    for g in found:
        typer.echo(f"{g.start.isoformat()}\t{g.end.isoformat()}\t{g.bars} bars missing")
    typer.echo(f"{len(found)} gap(s)")
    raise typer.Exit(1 if found else 0)
