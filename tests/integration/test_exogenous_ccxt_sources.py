"""Kraken Futures funding history and open interest, polled through CCXT, into real Postgres.

The venue is the executor's Kraken Futures stand-in (tests/standin/kraken_futures.py) replaying
real recorded data (``serve_recorded``): the hourly Deribit funding of
``funding_deribit_btc_perpetual_1h.csv`` as Kraken's ``historicalfundingrates`` and the daily
``open_interest_allexchanges_daily.csv`` as the ticker's ``openInterest``. CCXT's real
``krakenfutures`` client runs against it (URLs re-rooted as the executor does), so the whole path
runs: CCXT's requests and parsing, the row rules, the store. Failures are the stand-in's bad days.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from common.db import migrate
from common.db.session import make_engine
from common.exogenous.files import load_series
from common.exogenous.store import count_rows, read_series
from config import ExogenousSettings, get_settings
from producers.cli import app
from producers.exogenous import SourceError, live_sources, poll, poll_source
from tests.standin.exogenous_http import ExogenousStandIn
from tests.standin.kraken_futures import KrakenFuturesStandIn

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "exogenous"
#: Inside both files' coverage; the 3 days before it hold Deribit's 2 missing hours (2020-08-27 06/07h).
AS_OF = datetime(2020, 8, 28, tzinfo=UTC)
#: Two days after the Deribit file starts: its whole history up to here is small.
EARLY = datetime(2019, 5, 2, tzinfo=UTC)
KRAKEN = ("kraken_funding", "kraken_open_interest")


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    migrate.upgrade(empty_database_url)
    eng = make_engine(empty_database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def venue() -> Iterator[KrakenFuturesStandIn]:
    with KrakenFuturesStandIn(secrets.token_hex(16)) as v:  # public endpoints: the key is never sent
        v.serve_recorded(AS_OF)
        yield v


def _settings(venue: KrakenFuturesStandIn, **changes: Any) -> ExogenousSettings:
    """Only the Kraken sources on (the others' defaults are internet URLs)."""
    base: dict[str, Any] = {
        "fear_greed_url": "",
        "news_rss_url": "",
        "sentiment_url": "",
        "kraken_futures_url": venue.base_url,
        "binance_futures_url": "",
        "kraken_funding_days": 3,
        "timeout_s": 5.0,
        "attempts": 1,
    }
    return ExogenousSettings(**{**base, **changes})


def _source(settings: ExogenousSettings, name: str) -> Any:
    return next(s for s in live_sources(settings) if s.name == name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _funding_file(start: datetime, end: datetime) -> pd.DataFrame:
    """The served file's rates about [start, end], as the kraken_funding series should hold them."""
    f = load_series(DATA, "funding_deribit_1h").frame
    f = f[(f["about_ts"] >= pd.Timestamp(start)) & (f["about_ts"] <= pd.Timestamp(end))]
    return (
        f[["about_ts", "published_at", "interest_1h"]]
        .rename(columns={"interest_1h": "funding_rate"})
        .reset_index(drop=True)
    )


def _open_interest_file(day: str) -> float:
    f = pd.read_csv(DATA / "open_interest_allexchanges_daily.csv", dtype=str).set_index("ts")
    return float(f.loc[f"{day}T00:00:00Z", "open_interest_usd"])


def _sources_column(engine: Engine, series: str) -> set[str]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT DISTINCT source FROM exogenous_observations WHERE series = :s"), {"s": series}
            )
            .scalars()
            .all()
        )
    return set(rows)


def test_poll_stores_the_recorded_funding_and_open_interest(
    engine: Engine, venue: KrakenFuturesStandIn
) -> None:
    settings = _settings(venue)
    assert [s.name for s in live_sources(settings)] == list(KRAKEN)
    reports = {r.series: r for r in poll(engine, settings, now=AS_OF)}
    assert set(reports) == set(KRAKEN)
    assert all(r.error is None for r in reports.values()), [r.line() for r in reports.values()]

    # funding: exactly the file's hourly rates of the last 3 days, published at their ts, no filling
    expected = _funding_file(AS_OF - timedelta(days=3), AS_OF)
    funding = reports["kraken_funding"]
    assert funding.rows_read == funding.taken == funding.inserted == len(expected) == 3 * 24 + 1 - 2
    assert funding.rejected == {}
    stored = read_series(engine, "kraken_funding")
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)
    missing = {pd.Timestamp("2020-08-27T06:00Z"), pd.Timestamp("2020-08-27T07:00Z")}
    assert missing.isdisjoint(set(stored["about_ts"]))
    assert _sources_column(engine, "kraken_funding") == {
        f"{venue.base_url}/derivatives/api/v4/historicalfundingrates"
    }

    # open interest: one snapshot at the answer's serverTime, the row published by then (day before)
    oi = read_series(engine, "kraken_open_interest")
    assert reports["kraken_open_interest"].inserted == 1 and len(oi) == 1
    assert oi["about_ts"].iloc[0] == pd.Timestamp(AS_OF)
    assert oi["published_at"].iloc[0] == pd.Timestamp(AS_OF) + pd.Timedelta(seconds=1)
    assert oi["open_interest"].iloc[0] == _open_interest_file("2020-08-27")

    # polling again stores nothing new (the venue's clock did not move)
    again = poll(engine, settings, now=AS_OF)
    assert all(r.inserted == 0 and r.unchanged == r.taken > 0 for r in again), [r.line() for r in again]

    # a day later: 24 new rates after the re-read window, one new snapshot with the next day's value
    later = AS_OF + timedelta(days=1)
    with venue.lock:
        venue.state.as_of = later
    step = {r.series: r for r in poll(engine, settings, now=later)}
    assert step["kraken_funding"].inserted == 24
    assert step["kraken_funding"].unchanged == len(_funding_file(later - timedelta(days=3), AS_OF))
    pd.testing.assert_frame_equal(
        read_series(engine, "kraken_funding"),
        _funding_file(AS_OF - timedelta(days=3), later),
        check_exact=True,
    )
    oi = read_series(engine, "kraken_open_interest")
    assert step["kraken_open_interest"].inserted == 1 and len(oi) == 2
    assert oi["open_interest"].tolist() == [_open_interest_file(d) for d in ("2020-08-27", "2020-08-28")]
    # cut at a tick between the two snapshots, only the first is visible
    cut = read_series(engine, "kraken_open_interest", published_until=later - timedelta(seconds=1))
    assert cut["about_ts"].tolist() == [pd.Timestamp(AS_OF)]


def test_an_outage_longer_than_the_window_is_caught_up(engine: Engine, venue: KrakenFuturesStandIn) -> None:
    settings = _settings(venue)
    poll_source(engine, _source(settings, "kraken_funding"), settings, now=AS_OF)
    later = AS_OF + timedelta(days=10)
    with venue.lock:
        venue.state.as_of = later
    report = poll_source(engine, _source(settings, "kraken_funding"), settings, now=later)
    # resumed at the last stored rate, not 3 days back: nothing in between is lost
    assert report.unchanged == 1 and report.inserted == 10 * 24
    pd.testing.assert_frame_equal(
        read_series(engine, "kraken_funding"),
        _funding_file(AS_OF - timedelta(days=3), later),
        check_exact=True,
    )


def test_a_changed_rate_is_refused_and_the_stored_one_kept(
    engine: Engine, venue: KrakenFuturesStandIn
) -> None:
    settings = _settings(venue)
    source = _source(settings, "kraken_funding")
    first = poll_source(engine, source, settings, now=AS_OF)
    before = read_series(engine, "kraken_funding")
    with venue.lock:  # the venue restates one past rate
        i = next(i for i, (ts, _) in enumerate(venue.state.funding) if ts == AS_OF - timedelta(hours=5))
        venue.state.funding[i] = (venue.state.funding[i][0], "0.0123")
    again = poll_source(engine, source, settings, now=AS_OF)
    assert again.rejected == {"conflicts_with_stored": 1} and again.inserted == 0
    assert again.unchanged == first.inserted - 1 and "rejected[conflicts_with_stored]=1" in again.line()
    pd.testing.assert_frame_equal(read_series(engine, "kraken_funding"), before)


@pytest.mark.parametrize(
    ("endpoint", "source", "kind", "message"),
    [
        ("historicalfundingrates", "kraken_funding", "500", "failed after 1 attempt(s): ExchangeError"),
        ("historicalfundingrates", "kraken_funding", "garbage", "malformed answer"),
        ("historicalfundingrates", "kraken_funding", "malformed", "malformed answer"),
        ("tickers/PF_XBTUSD", "kraken_open_interest", "500", "failed after 1 attempt(s): ExchangeError"),
        ("tickers/PF_XBTUSD", "kraken_open_interest", "garbage", "malformed answer"),
        ("tickers/PF_XBTUSD", "kraken_open_interest", "malformed", "malformed answer"),
    ],
)
def test_a_failing_kraken_source_gives_a_clear_error_and_keeps_the_last_good_data(
    engine: Engine, venue: KrakenFuturesStandIn, endpoint: str, source: str, kind: str, message: str
) -> None:
    """Next to the other live sources (their own stand-in): one failing source is not all failing."""
    with venue.lock:
        venue.state.as_of = EARLY
    with ExogenousStandIn(as_of=datetime(2022, 3, 1, tzinfo=UTC)) as others:
        # wall-clock polls (the two stand-ins' clocks differ): reach back over all recorded funding
        settings = _settings(
            venue,
            kraken_funding_days=3650,
            fear_greed_url=f"{others.base_url}/fng/",
            news_rss_url=f"{others.base_url}/rss",
            sentiment_url=f"{others.base_url}/sentiment?days=5",
        )
        first = {r.series: r for r in poll(engine, settings)}
        assert all(r.error is None and r.inserted > 0 for r in first.values()), [
            r.line() for r in first.values()
        ]
        before = read_series(engine, source)

        with venue.lock:
            venue.state.as_of = EARLY + timedelta(days=1)  # there would be new data...
        others.as_of += timedelta(days=3)
        others.sentiment_as_of += timedelta(days=3)
        venue.fail_next(endpoint, kind)  # ...but the source fails
        reports = {r.series: r for r in poll(engine, settings)}
        failed = reports[source]
        assert failed.error is not None and message in failed.error, failed.error
        assert failed.error.startswith(f"{source}: ") and venue.base_url.split("//")[1] in failed.error
        assert "Traceback" not in failed.line() and len(failed.error) < 600
        pd.testing.assert_frame_equal(read_series(engine, source), before)  # last good data intact
        others_ok = [r for name, r in reports.items() if name != source]
        assert len(others_ok) == 4 and all(r.error is None for r in others_ok), [r.line() for r in others_ok]
        assert all(r.inserted > 0 for r in others_ok), [r.line() for r in others_ok]

    recovered = poll_source(engine, _source(settings, source), settings)  # back: the catch-up comes in
    assert recovered.error is None and recovered.inserted > 0
    assert len(read_series(engine, source)) == len(before) + recovered.inserted


def test_unreachable_venue_and_a_retried_blip(engine: Engine, venue: KrakenFuturesStandIn) -> None:
    dead = _settings(venue, kraken_futures_url=f"http://user:s3cret@127.0.0.1:{_free_port()}", attempts=2)
    for name, path in [
        ("kraken_funding", "/derivatives/api/v4/historicalfundingrates"),
        ("kraken_open_interest", "/derivatives/api/v3/tickers"),
    ]:
        expected = rf"{name}: http://127\.0\.0\.1:\d+{path} failed after 2 attempt\(s\): unreachable"
        with pytest.raises(SourceError, match=expected) as caught:
            poll_source(engine, _source(dead, name), dead, now=AS_OF)
        assert "s3cret" not in str(caught.value) and "user" not in str(caught.value)
        assert count_rows(engine, name) == 0

    # one HTTP 500 then success: a retry hides a blip
    retrying = _settings(venue, attempts=2)
    venue.fail_next("historicalfundingrates", "500")
    report = poll_source(engine, _source(retrying, "kraken_funding"), retrying, now=AS_OF)
    assert report.inserted == 3 * 24 + 1 - 2 and venue.state.calls.count("historicalfundingrates") == 2


def test_credentials_in_the_url_are_never_stored_or_reported(
    engine: Engine, venue: KrakenFuturesStandIn
) -> None:
    host = venue.base_url.split("//")[1]
    settings = _settings(venue, kraken_futures_url=f"http://reader:s3cret@{host}/")
    reports = poll(engine, settings, now=AS_OF)
    assert all(r.error is None and r.inserted > 0 for r in reports)
    assert all("s3cret" not in r.origin and "reader" not in r.origin for r in reports)
    for name in KRAKEN:
        assert all("s3cret" not in s and "reader" not in s for s in _sources_column(engine, name))


def test_unreadable_snapshots_are_refused_not_stored(engine: Engine, venue: KrakenFuturesStandIn) -> None:
    settings = _settings(venue)
    source = _source(settings, "kraken_open_interest")
    venue.state.ticker_override = {"openInterest": -5.0}
    with pytest.raises(SourceError, match=r"malformed answer .*every row refused \(out_of_range=1\)"):
        poll_source(engine, source, settings, now=AS_OF)
    venue.state.ticker_override = {"openInterest": "lots"}
    with pytest.raises(SourceError, match=r"every row refused \(bad_format=1\)"):
        poll_source(engine, source, settings, now=AS_OF)
    with venue.lock:  # a venue without a serverTime cannot say when it took the reading
        venue.state.as_of = None
    venue.state.ticker_override = {"openInterest": 5.0}
    with pytest.raises(SourceError, match=r"every row refused \(bad_timestamp=1\)"):
        poll_source(engine, source, settings, now=AS_OF)
    assert count_rows(engine, "kraken_open_interest") == 0


def test_cli_poll(
    engine: Engine, venue: KrakenFuturesStandIn, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with venue.lock:
        venue.state.as_of = EARLY
    monkeypatch.setenv("BTCMETA_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("BTCMETA_EXOGENOUS__KRAKEN_FUTURES_URL", venue.base_url)
    monkeypatch.setenv("BTCMETA_EXOGENOUS__KRAKEN_FUNDING_DAYS", "3650")  # the CLI polls on the wall clock
    monkeypatch.setenv("BTCMETA_EXOGENOUS__ATTEMPTS", "1")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        done = runner.invoke(
            app, ["exogenous", "poll", "--source", "kraken_funding", "--source", "kraken_open_interest"]
        )
        assert done.exit_code == 0, done.output
        n = len(_funding_file(EARLY - timedelta(days=3), EARLY))  # the file starts 2019-04-30 10:00
        assert n == 39
        assert f"kraken_funding: read={n} taken={n} inserted={n} unchanged=0 rejected=0" in done.stdout
        assert "kraken_open_interest: read=1 taken=1 inserted=1" in done.stdout
        assert "fear_greed" not in done.output  # only the sources asked for
        venue.fail_next("tickers/PF_XBTUSD", "garbage")
        done = runner.invoke(
            app, ["exogenous", "poll", "--source", "kraken_open_interest", "--source", "kraken_funding"]
        )
        assert done.exit_code == 1
        assert "kraken_open_interest: ERROR kraken_open_interest: malformed answer" in done.stderr
        assert f"kraken_funding: read={n} taken={n} inserted=0 unchanged={n}" in done.stdout
        assert "1 of 2 failed" in done.stderr
        bad = runner.invoke(app, ["exogenous", "poll", "--source", "kraken"])
        assert bad.exit_code == 2 and "kraken_open_interest" in bad.output  # the known names are listed
    finally:
        get_settings.cache_clear()
