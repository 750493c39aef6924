"""common.ccxt_history: the one CCXT pager (live sync and training download) and the CSV download.

The pager is driven by a local object with ccxt's ``fetch_ohlcv`` signature (rate limits and
network errors raised as ccxt raises them); the download goes through real ccxt to the local
Kraken Futures stand-in serving the bundled real candles.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pandas as pd
import pytest

from common.ccxt_history import OhlcvHistory, download_csv
from common.dataset import load_bundled_candles, read_ohlcv_csv
from common.kraken import api_urls
from producers.sources import CcxtSource
from tests.standin.kraken_futures import KrakenFuturesStandIn

H = 3_600_000
T0 = int(datetime(2021, 1, 1, tzinfo=UTC).timestamp() * 1000)


class Venue:
    """ccxt-like: serves ``rows`` from ``since``, ``limit`` at a time; raises the queued errors first."""

    def __init__(
        self,
        rows: list[list[Any]],
        errors: list[Exception] | None = None,
        ignore_since: bool = False,
        window: bool = False,
    ) -> None:
        self.rows = rows
        self.errors = list(errors or [])
        self.ignore_since = ignore_since
        self.window = window  # like Kraken's charts API: only bars in [since, since + limit hours)
        self.calls: list[int | None] = []

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]:
        self.calls.append(since)
        if self.errors:
            raise self.errors.pop(0)
        rows = self.rows if self.ignore_since else [r for r in self.rows if since is None or r[0] >= since]
        if self.window and since is not None and limit is not None:
            rows = [r for r in rows if r[0] < since + limit * H]
        return rows[:limit]


def hourly(start_ms: int, count: int) -> list[list[Any]]:
    return [[start_ms + i * H, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0] for i in range(count)]


def test_pages_until_the_end_and_steps_over_holes() -> None:
    rows = hourly(T0, 25)
    venue = Venue(rows[:5] + rows[20:], window=True)  # 15 hours missing: 4-hour pages come back empty
    got = OhlcvHistory(venue, page_limit=4).rows("X", "1h", T0, T0 + 25 * H)
    assert got == rows[:5] + rows[20:]
    # after bar 4, the windows 5-8, 9-12 and 13-16 are empty and stepped over; 17-20 finds bar 20
    assert venue.calls == [T0 + h * H for h in (0, 4, 5, 9, 13, 17, 21)]


def test_rows_come_back_verbatim_and_max_rows_stops_paging() -> None:
    odd: list[list[Any]] = [[T0, None, 1, 1, 1, 1], [T0, 2.0, 2, 2, 2, 2], [T0 + 99 * H, 1.0, 1, 1, 1, 1]]
    assert OhlcvHistory(Venue(odd)).rows("X", "1h", T0, T0 + 5 * H) == odd  # validation judges, not the pager
    venue = Venue(hourly(T0, 50))
    assert len(OhlcvHistory(venue, page_limit=10).rows("X", "1h", T0, T0 + 50 * H, max_rows=15)) == 20
    assert len(venue.calls) == 2


def test_a_venue_ignoring_since_does_not_loop_forever() -> None:
    venue = Venue(hourly(T0 - 10 * H, 3), ignore_since=True)
    got = OhlcvHistory(venue, page_limit=100).rows("X", "1h", T0, T0 + 250 * H)
    assert len(venue.calls) == 3 and len(got) == 9  # nothing new: one page stepped over per call


def test_rate_limits_and_network_errors_are_retried_then_surface() -> None:
    venue = Venue(hourly(T0, 3), [ccxt.RateLimitExceeded("429"), ccxt.NetworkError("reset")])
    assert len(OhlcvHistory(venue, base_wait_s=0.001).rows("X", "1h", T0, T0 + 3 * H)) == 3
    down = Venue([], [ccxt.NetworkError("down")] * 5)
    with pytest.raises(ccxt.NetworkError):
        OhlcvHistory(down, attempts=3, base_wait_s=0.001).rows("X", "1h", T0, T0 + 3 * H)
    assert len(down.calls) == 3
    refused = Venue([], [ccxt.BadSymbol("no such market")])
    with pytest.raises(ccxt.BadSymbol):  # not a transient error: no retry
        OhlcvHistory(refused, base_wait_s=0.001).rows("X", "1h", T0, T0 + 3 * H)
    assert len(refused.calls) == 1


def test_the_sync_source_uses_the_same_pager() -> None:
    rows = hourly(T0, 12)
    candles = CcxtSource(Venue(rows[:2] + rows[9:], window=True), page_limit=3).fetch(
        "X",
        "1h",
        pd.Timestamp(T0, unit="ms", tz="UTC").to_pydatetime(),
        pd.Timestamp(T0 + 12 * H, unit="ms", tz="UTC").to_pydatetime(),
    )
    assert [c.open_time_ms for c in candles] == [r[0] for r in rows[:2] + rows[9:]]  # past the hole


@pytest.fixture(scope="module")
def real_part() -> pd.DataFrame:
    return load_bundled_candles().iloc[-2_500:]


@pytest.fixture
def kraken(real_part: pd.DataFrame) -> Iterator[KrakenFuturesStandIn]:
    with KrakenFuturesStandIn(secrets.token_hex(8)) as venue:
        venue.state.candles = [
            [int(t.value // 1_000_000), *map(float, row)]
            for t, row in zip(real_part.index, real_part.to_numpy(), strict=True)
        ]
        yield venue


def test_download_from_the_kraken_standin_writes_the_real_candles(
    kraken: KrakenFuturesStandIn, real_part: pd.DataFrame, tmp_path: Path
) -> None:
    kraken.state.candles = kraken.state.candles[:700] + kraken.state.candles[1_900:]  # a 1,200 h hole
    until = (real_part.index[-1] - pd.Timedelta(hours=9)).to_pydatetime()  # the last 10 bars: not asked
    out = download_csv(
        tmp_path / "k.csv",
        since=real_part.index[0].to_pydatetime(),
        until=until,
        client_options={"urls": {"api": api_urls(kraken.base_url)}},
    )
    got = read_ohlcv_csv(out, strict=True)
    expected = pd.concat([real_part.iloc[:700], real_part.iloc[1_900:-10]])
    assert got.index.equals(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert kraken.state.calls.count("charts") >= 3
