"""Market data sync: fetch from a source, validate, store idempotently, record refusals, prune.

``initialize_market_data`` fills the whole retention window; ``sync_market_data`` fetches only what
is new since the last stored candle (so a tick's sync is one small request). Both are safe to repeat:
running twice stores exactly what running once does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import Engine

from common.logging import get_logger
from common.timeframes import parse_timeframe
from config import Settings
from producers import store
from producers.candles import CandleSource
from producers.sources import CsvSource
from producers.validation import Gap, Rejection, find_gaps, validate_candles

log = get_logger(__name__)

CANDLES_STORED = Counter("btcmeta_candles_stored_total", "New candles stored", ["source", "timeframe"])
CANDLES_REJECTED = Counter("btcmeta_candles_rejected_total", "Candles refused", ["source", "reason"])


@dataclass
class SyncReport:
    """What one sync did; logged and returned to the CLI."""

    fetched: int = 0
    inserted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    pruned: int = 0
    since: datetime | None = None
    until: datetime | None = None


def floor_time(when: datetime, minutes: int) -> datetime:
    """Start of the ``minutes``-long grid cell (epoch-aligned) containing ``when``."""
    step = minutes * 60
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, tz=UTC)


def fetch_and_store(
    engine: Engine,
    source: CandleSource,
    symbol: str,
    timeframe: str,
    timeframe_minutes: int,
    since: datetime,
    until: datetime,
    now: datetime,
) -> SyncReport:
    """One validated, idempotent load of ``[since, until)``; refusals are logged and stored."""
    raw = source.fetch(symbol, timeframe, since, until)
    result = validate_candles(raw, timeframe_minutes, now)
    inserted, conflicts = store.insert_candles(engine, symbol, timeframe, result.accepted, source.name)
    rejected = [*result.rejected, *conflicts]
    store.record_rejections(engine, symbol, timeframe, rejected, source.name)
    for r in rejected:
        CANDLES_REJECTED.labels(source.name, r.reason.value).inc()
        log.warning(
            "candle_rejected",
            symbol=symbol,
            timeframe=timeframe,
            source=source.name,
            open_time_ms=r.candle.open_time_ms,
            reason=r.reason.value,
        )
    CANDLES_STORED.labels(source.name, timeframe).inc(inserted)
    report = SyncReport(fetched=len(raw), inserted=inserted, rejected=rejected, since=since, until=until)
    log.info(
        "candles_synced",
        symbol=symbol,
        timeframe=timeframe,
        source=source.name,
        fetched=len(raw),
        inserted=inserted,
        rejected=len(rejected),
        open_bars=len(result.open_bars),
        since=since.isoformat(),
        until=until.isoformat(),
    )
    return report


def _retention_start(settings: Settings, now: datetime) -> datetime:
    return floor_time(now, settings.min_timeframe_minutes) - timedelta(hours=settings.max_lookback_hours)


def _prune(
    engine: Engine, settings: Settings, source: CandleSource, now: datetime, keep_extra_hours: int
) -> int:
    cutoff = _retention_start(settings, now) - timedelta(hours=keep_extra_hours)
    removed = store.prune(engine, settings.symbol, settings.min_timeframe, cutoff, source.name)
    if removed:
        log.info("candles_pruned", removed=removed, before=cutoff.isoformat(), source=source.name)
    return removed


def initialize_market_data(
    settings: Settings,
    engine: Engine,
    source: CandleSource,
    *,
    now: datetime | None = None,
    prune: bool = True,
    keep_extra_hours: int = 24,
) -> SyncReport:
    """Fetch the whole retention window (MAX_LOOKBACK_HOURS back from now) at MIN_TIMEFRAME.

    ``keep_extra_hours`` keeps a margin past the lookback so a catch-up after a short outage still
    finds the history its first missed tick needs.
    """
    now = now or datetime.now(UTC)
    since = _retention_start(settings, now)
    until = floor_time(now, settings.min_timeframe_minutes)
    report = fetch_and_store(
        engine,
        source,
        settings.symbol,
        settings.min_timeframe,
        settings.min_timeframe_minutes,
        since,
        until,
        now,
    )
    if prune:
        report.pruned = _prune(engine, settings, source, now, keep_extra_hours)
    return report


def sync_market_data(
    settings: Settings,
    engine: Engine,
    source: CandleSource,
    *,
    now: datetime | None = None,
    prune: bool = True,
    keep_extra_hours: int = 24,
) -> SyncReport:
    """Fetch only candles newer than the last stored one (the whole window when the store is empty)."""
    now = now or datetime.now(UTC)
    last = store.last_open_time(engine, settings.symbol, settings.min_timeframe)
    if last is None:
        return initialize_market_data(
            settings, engine, source, now=now, prune=prune, keep_extra_hours=keep_extra_hours
        )
    tf = timedelta(minutes=settings.min_timeframe_minutes)
    since = max(last + tf, _retention_start(settings, now))
    until = floor_time(now, settings.min_timeframe_minutes)
    if since >= until:
        report = SyncReport(since=since, until=until)
    else:
        report = fetch_and_store(
            engine,
            source,
            settings.symbol,
            settings.min_timeframe,
            settings.min_timeframe_minutes,
            since,
            until,
            now,
        )
    if prune:
        report.pruned = _prune(engine, settings, source, now, keep_extra_hours)
    return report


def import_csv(
    settings: Settings,
    engine: Engine,
    source: CsvSource,
    *,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> SyncReport:
    """Import a CSV's history at the file's own timeframe; never pruned (demos and training use it)."""
    now = now or datetime.now(UTC)
    tf = source.timeframe
    since = start or datetime.fromtimestamp(source.first_time / 1000, tz=UTC)
    minutes = parse_timeframe(tf)
    until = end or datetime.fromtimestamp(source.last_time / 1000, tz=UTC) + timedelta(minutes=minutes)
    return fetch_and_store(engine, source, symbol or settings.symbol, tf, minutes, since, until, now)


def report_gaps(engine: Engine, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[Gap]:
    """Missing candle ranges in ``[start, end)``: reported, never filled."""
    times = store.open_times_ms(engine, symbol, timeframe, start, end)
    return find_gaps(times, parse_timeframe(timeframe), start, end)
