"""Candle sync against the real Postgres: idempotent, incremental, validated, pruned, gap-reporting.

The exchange is the one stand-in allowed: a local object with ccxt's ``fetch_ohlcv`` signature.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
import pytest
from sqlalchemy import func, select

from common.dataset import read_ohlcv_csv
from common.db.models import Candle, CandleRejection
from common.db.session import make_engine
from common.events import to_epoch_ms
from config import Settings, load_settings
from producers.sources import CcxtSource, CsvSource
from producers.sync import import_csv, initialize_market_data, report_gaps, sync_market_data
from producers.validation import Reason
from tick_emitter.synthetic import random_walk_candles

NOW = datetime(2024, 3, 1, 12, 0, 30, tzinfo=UTC)
M = 60_000


class FakeExchange:
    """ccxt-like: serves ``rows`` by since/limit, can fail with ccxt errors on chosen calls."""

    def __init__(self, rows: list[list[Any]], failures: dict[int, Exception] | None = None) -> None:
        self.rows = sorted(rows, key=lambda r: r[0])
        self.failures = failures or {}
        self.calls: list[tuple[int | None, int | None]] = []

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]:
        self.calls.append((since, limit))
        if len(self.calls) in self.failures:
            raise self.failures[len(self.calls)]
        out = [r for r in self.rows if since is None or r[0] >= since]
        return out[:limit] if limit else out


def walk_rows(start: datetime, count: int) -> list[list[Any]]:
    base = random_walk_candles(to_epoch_ms(start), count)
    return [[int(t), *v] for t, v in zip(base.times.tolist(), base.values.tolist(), strict=True)]


@pytest.fixture
def cfg(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        symbol=f"T{uuid.uuid4().hex[:8]}/USD:USD",
        min_timeframe="1m",
        max_lookback_hours=6,
    )


@pytest.fixture
def engine(database_url: str) -> Any:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def snapshot(engine: Any, symbol: str) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(
                    Candle.open_time,
                    Candle.open,
                    Candle.high,
                    Candle.low,
                    Candle.close,
                    Candle.volume,
                    Candle.source,
                )
                .where(Candle.symbol == symbol)
                .order_by(Candle.open_time)
            )
        ]


def rejections(engine: Any, symbol: str) -> list[tuple[str, Any]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(CandleRejection.reason, CandleRejection.raw)
                .where(CandleRejection.symbol == symbol)
                .order_by(CandleRejection.id)
            )
        ]


def test_sync_twice_equals_once_with_retries_and_pagination(cfg: Settings, engine: Any) -> None:
    start = NOW.replace(second=0) - timedelta(hours=8)
    rows = walk_rows(start, 8 * 60 + 1)  # includes the bar still open at NOW
    fake = FakeExchange(rows, {2: ccxt.RateLimitExceeded("429"), 4: ccxt.NetworkError("reset")})
    source = CcxtSource(fake, name="ccxt", page_limit=100, base_wait_s=0.01)
    first = initialize_market_data(cfg, engine, source, now=NOW)
    assert first.inserted == 6 * 60 and not first.rejected  # the lookback window, closed bars only
    assert len(fake.calls) >= 4 + 2  # paginated, and the two failures were retried
    once = snapshot(engine, cfg.symbol)
    assert once[-1][0] == NOW.replace(second=0) - timedelta(minutes=1)
    again = sync_market_data(cfg, engine, source, now=NOW)
    assert again.inserted == 0 and again.fetched == 0
    again_init = initialize_market_data(cfg, engine, source, now=NOW)
    assert again_init.inserted == 0 and not again_init.rejected
    assert snapshot(engine, cfg.symbol) == once
    fake.calls.clear()
    later = sync_market_data(cfg, engine, source, now=NOW + timedelta(minutes=10), prune=False)
    assert later.inserted == 1  # only the bar that was open at NOW has closed since (rows end there)
    assert fake.calls[0][0] == to_epoch_ms(once[-1][0]) + M  # incremental: asks only for what is new


def test_retries_give_up_on_persistent_errors(cfg: Settings, engine: Any) -> None:
    fake = FakeExchange([], dict.fromkeys(range(1, 10), ccxt.NetworkError("down")))
    with pytest.raises(ccxt.NetworkError):
        initialize_market_data(cfg, engine, CcxtSource(fake, attempts=3, base_wait_s=0.001), now=NOW)
    assert len(fake.calls) == 3


def test_every_bad_candle_rejected_stored_and_gap_reported(cfg: Settings, engine: Any) -> None:
    t0 = NOW.replace(second=0) - timedelta(hours=2)
    rows = walk_rows(t0, 60)
    ms = [r[0] for r in rows]
    rows[3][1] = math.nan  # non_finite
    rows[5][3] = -1.0  # low <= 0 -> non_positive_price
    rows[7][2], rows[7][3] = rows[7][3] - 1, rows[7][2]  # high < low
    rows[9][1] = rows[9][2] * 2  # open above high
    rows[11][4] = rows[11][3] / 2  # close below low
    rows[13][5] = -3.0  # negative volume
    bad_grid = [ms[20] + 1234, 100.0, 101.0, 99.0, 100.0, 1.0]
    future = [to_epoch_ms(NOW.replace(second=0)) + 60 * M, 100.0, 101.0, 99.0, 100.0, 1.0]
    dup = [ms[30], rows[30][1], rows[30][2] * 1.01, rows[30][3], rows[30][4], rows[30][5]]
    late = [ms[0] - 10 * M, 100.0, 101.0, 99.0, 100.0, 1.0]  # older than bars already delivered
    feed = [*rows[:40], bad_grid, dup, *rows[40:], late, future]
    feed.insert(45, [ms[10] - 60 * M, 100.0, 101.0, 99.0, 100.0, 1.0])  # older than what came before

    class Verbatim(FakeExchange):
        def fetch_ohlcv(
            self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
        ) -> list[list[Any]]:
            self.calls.append((since, limit))
            return feed if len(self.calls) == 1 else []

    report = sync_market_data(cfg, engine, CcxtSource(Verbatim([]), page_limit=1000), now=NOW)
    reasons = sorted(r.reason.value for r in report.rejected)
    assert reasons == sorted(
        [
            Reason.NON_FINITE,
            Reason.NON_POSITIVE_PRICE,
            Reason.HIGH_BELOW_LOW,
            Reason.OPEN_OUTSIDE_RANGE,
            Reason.CLOSE_OUTSIDE_RANGE,
            Reason.NEGATIVE_VOLUME,
            Reason.OFF_GRID,
            Reason.FUTURE,
            Reason.DUPLICATE_CONFLICT,
            Reason.DUPLICATE_CONFLICT,
            Reason.OUT_OF_ORDER,
            Reason.OUT_OF_ORDER,
        ]
    )
    stored = rejections(engine, cfg.symbol)
    assert sorted(r for r, _ in stored) == reasons
    assert any(raw["open"] == "nan" or raw["open"] != raw["open"] for r, raw in stored if r == "non_finite")
    missing = {g.start for g in report_gaps(engine, cfg.symbol, "1m", t0, t0 + timedelta(minutes=60))}
    assert missing == {t0 + timedelta(minutes=i) for i in (3, 5, 7, 9, 11, 13, 30)}
    # Re-delivering a stored bar with other values is refused too, and the stored one is kept.
    changed = [ms[0], rows[0][1], rows[0][2] * 1.5, rows[0][3], rows[0][4], rows[0][5]]
    fake = FakeExchange([changed])
    before = snapshot(engine, cfg.symbol)
    initialize_market_data(cfg, engine, CcxtSource(fake), now=NOW)
    assert snapshot(engine, cfg.symbol) == before
    assert rejections(engine, cfg.symbol)[-1][0] == Reason.CONFLICTS_WITH_STORED


def test_prune_keeps_lookback_and_csv_history(cfg: Settings, engine: Any, tmp_path: Any) -> None:
    old = NOW.replace(second=0) - timedelta(hours=60)
    csv = tmp_path / "h.csv"
    lines = ["date,open,high,low,close,volume"]
    lines += [f"{(old + timedelta(hours=i)).isoformat()},10,11,9,10,1" for i in range(3)]
    csv.write_text("\n".join(lines) + "\n")
    one_minute = load_settings(**{**cfg.model_dump(), "min_timeframe": "1m"})
    import_csv(one_minute, engine, CsvSource(csv))
    rows = walk_rows(NOW.replace(second=0) - timedelta(hours=40), 40 * 60)
    sync_market_data(cfg, engine, CcxtSource(FakeExchange(rows)), now=NOW - timedelta(hours=3), prune=False)
    report = sync_market_data(cfg, engine, CcxtSource(FakeExchange(rows)), now=NOW, keep_extra_hours=1)
    assert report.pruned > 0
    with engine.connect() as conn:
        oldest = conn.execute(
            select(func.min(Candle.open_time)).where(Candle.symbol == cfg.symbol, Candle.timeframe == "1m")
        ).scalar_one()
        hourly = conn.execute(
            select(func.count()).where(Candle.symbol == cfg.symbol, Candle.timeframe == "1h")
        ).scalar_one()
    assert oldest == NOW.replace(second=0) - timedelta(hours=6 + 1)
    assert hourly == 3  # CSV-imported history is never pruned by the live sync


def test_import_bundled_dataset_idempotent_and_gap_free(cfg: Settings, engine: Any) -> None:
    from common.dataset import BUNDLED_CSV

    source = CsvSource(BUNDLED_CSV)
    assert source.timeframe == "1h"
    first = import_csv(cfg, engine, source)
    assert first.inserted == 37_387 and not first.rejected
    second = import_csv(cfg, engine, source)
    assert second.inserted == 0 and not second.rejected
    start = datetime(2018, 5, 15, 6, tzinfo=UTC)
    assert report_gaps(engine, cfg.symbol, "1h", start, datetime(2022, 8, 20, 0, tzinfo=UTC)) == []
    holes = report_gaps(engine, cfg.symbol, "1h", start - timedelta(hours=5), start + timedelta(hours=1))
    assert [(g.start, g.bars) for g in holes] == [(start - timedelta(hours=5), 5)]


def test_csv_rows_that_are_not_candles_are_rejected(cfg: Settings, engine: Any, tmp_path: Any) -> None:
    """A broken line loses only itself: an unreadable date is reported by line, a non-number in a
    price is stored as a non-finite rejection; every good row is imported."""
    start = datetime(2021, 1, 1, tzinfo=UTC)
    lines = ["date,open,high,low,close,volume"]
    lines += [f"{(start + timedelta(hours=i)).isoformat()},10,11,9,10,1" for i in range(6)]
    lines[3] = "2021-13-45T00:00:00+00:00,10,11,9,10,1"  # third bar: no such date
    lines[5] = lines[5].replace(",10,1", ",abc,1")  # fifth bar: close is not a number
    csv = tmp_path / "broken.csv"
    csv.write_text("\n".join(lines) + "\n")
    source = CsvSource(csv)
    assert source.unreadable == [(4, "unreadable date '2021-13-45T00:00:00+00:00'")]
    hourly = load_settings(**{**cfg.model_dump(), "min_timeframe": "1h"})
    report = import_csv(hourly, engine, source)
    assert report.inserted == 4
    assert [r.reason for r in report.rejected] == [Reason.NON_FINITE]
    assert [r for r, _ in rejections(engine, cfg.symbol)] == ["non_finite"]
    stored = [row[0] for row in snapshot(engine, cfg.symbol)]
    assert stored == [start + timedelta(hours=i) for i in (0, 1, 3, 5)]
    with pytest.raises(ValueError, match="line 4: unreadable date"):
        read_ohlcv_csv(csv)  # the strict reader (bundled data, training) refuses the file instead
