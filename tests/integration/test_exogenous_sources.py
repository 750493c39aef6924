"""Live exogenous sources against a local HTTP stand-in serving the shared files, into real Postgres.

The stand-in (tests/standin/exogenous_http.py) answers in the real APIs' shapes (alternative.me's
``/fng/`` JSON, an RSS 2.0 feed, a sentiment JSON) with the real recorded values, so the whole
client path (HTTP, parsing, row rules, storage) runs; failures are the stand-in's bad days.
"""

from __future__ import annotations

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
from producers.exogenous import SourceError, import_dir, live_sources, poll, poll_source
from tests.standin.exogenous_http import ExogenousStandIn

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "exogenous"
AS_OF = datetime(2022, 3, 1, tzinfo=UTC)


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    migrate.upgrade(empty_database_url)
    eng = make_engine(empty_database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def standin() -> Iterator[ExogenousStandIn]:
    with ExogenousStandIn(as_of=AS_OF) as server:
        yield server


def _settings(standin: ExogenousStandIn, **changes: Any) -> ExogenousSettings:
    url = standin.base_url
    base: dict[str, Any] = {
        "fear_greed_url": f"{url}/fng/",
        "fear_greed_limit": 10,
        "news_rss_url": f"{url}/rss",
        "sentiment_url": f"{url}/sentiment?days=5",
        "binance_futures_url": "",  # its own tests below (the default is the internet)
        "timeout_s": 5.0,
        "attempts": 1,
    }
    return ExogenousSettings(**{**base, **changes})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_poll_stores_what_the_sources_serve(engine: Engine, standin: ExogenousStandIn) -> None:
    settings = _settings(standin)
    reports = {r.series: r for r in poll(engine, settings)}
    assert set(reports) == {"fear_greed", "news_headlines", "social_sentiment"}
    assert all(r.error is None for r in reports.values()), [r.line() for r in reports.values()]

    # Fear & Greed: the last 10 days up to AS_OF, exactly the file's values and publication times
    fg = reports["fear_greed"]
    assert fg.rows_read == fg.taken == fg.inserted == 10 and fg.rejected == {}
    stored = read_series(engine, "fear_greed")
    from_file = load_series(DATA, "fear_greed").frame
    expected = from_file[from_file["about_ts"] <= pd.Timestamp(AS_OF)].tail(10).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)
    assert stored["published_at"].iloc[-1] == pd.Timestamp("2022-03-01T01:00", tz="UTC")

    # News: every item of the feed, by its pubDate, with the one-bar publication buffer
    news = reports["news_headlines"]
    served = standin.news_rows()
    assert news.rows_read == len(served) > 0 and news.inserted == news.taken == len(served)
    items = read_series(engine, "news_headlines")
    assert sorted(items["title"]) == sorted(served["title"])
    assert set(items["source"]) == {"Crypto news (stand-in)"}
    assert items["sentiment_polarity"].isna().all()  # the feed carries no upstream scores
    assert (items["published_at"] == (items["about_ts"] + pd.Timedelta(hours=1)).dt.ceil("h")).all()

    # Sentiment: the 5 last days, NaN where the file has no value
    social = reports["social_sentiment"]
    assert social.inserted == 5
    stored_social = read_series(engine, "social_sentiment")
    file_social = load_series(DATA, "social_sentiment").frame
    file_social = file_social[file_social["about_ts"] <= pd.Timestamp(standin.sentiment_as_of)]
    file_social = file_social.tail(5).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored_social, file_social, check_exact=True)

    # Polling again stores nothing new
    again = poll(engine, settings)
    assert all(r.inserted == 0 and r.unchanged == r.taken for r in again), [r.line() for r in again]


def test_live_values_agree_with_the_imported_file(engine: Engine, standin: ExogenousStandIn) -> None:
    """The file import and the live API give the same rows: a later poll finds them all unchanged."""
    import_dir(engine, DATA, ["fear_greed"])
    report = poll_source(engine, live_sources(_settings(standin))[0], _settings(standin))
    assert report.series == "fear_greed" and report.inserted == 0 and report.unchanged == 10


@pytest.mark.parametrize(
    ("path", "source", "kind", "message"),
    [
        ("/fng/", "fear_greed", "500", "HTTP 500"),
        ("/fng/", "fear_greed", "malformed", "malformed answer"),
        ("/fng/", "fear_greed", "garbage", "malformed answer"),
        ("/fng/", "fear_greed", "html", "malformed answer"),
        ("/rss", "news", "500", "HTTP 500"),
        ("/rss", "news", "malformed", "malformed answer"),
        ("/rss", "news", "html", "malformed answer"),
        ("/sentiment", "sentiment", "500", "HTTP 500"),
        ("/sentiment", "sentiment", "malformed", "malformed answer"),
        ("/sentiment", "sentiment", "garbage", "malformed answer"),
    ],
)
def test_a_failing_source_gives_a_clear_error_and_keeps_the_last_good_data(
    engine: Engine, standin: ExogenousStandIn, path: str, source: str, kind: str, message: str
) -> None:
    settings = _settings(standin)
    first = {r.series: r for r in poll(engine, settings)}
    series = next(s for s in live_sources(settings) if s.name == source)
    before = read_series(engine, series.series)
    assert len(before) == first[series.series].inserted > 0

    standin.as_of += timedelta(days=3)  # there would be new data...
    standin.sentiment_as_of += timedelta(days=3)
    standin.fail_next(path, kind)  # ...but the source fails
    reports = {r.series: r for r in poll(engine, settings)}
    failed = reports[series.series]
    assert failed.error is not None and message in failed.error and source in failed.error
    assert standin.base_url.split("//")[1] in failed.error  # names where it went wrong
    pd.testing.assert_frame_equal(read_series(engine, series.series), before)  # last good data intact
    others = [r for name, r in reports.items() if name != series.series]
    assert all(r.error is None and r.inserted > 0 for r in others)  # one source down is not all down
    assert "Traceback" not in failed.line()

    recovered = poll_source(engine, series, settings)  # the source is back: the catch-up comes in
    assert recovered.inserted > 0
    assert len(read_series(engine, series.series)) == len(before) + recovered.inserted


def test_unreachable_source_and_retry(engine: Engine, standin: ExogenousStandIn) -> None:
    dead = _settings(standin, fear_greed_url=f"http://127.0.0.1:{_free_port()}/fng/", attempts=2)
    expected = r"fear_greed: http://127\.0\.0\.1:\d+/fng/ failed after 2 attempt\(s\): unreachable"
    with pytest.raises(SourceError, match=expected):
        poll_source(engine, live_sources(dead)[0], dead)
    assert count_rows(engine, "fear_greed") == 0

    # one 500 then success: a retry hides a blip
    retrying = _settings(standin, attempts=2)
    standin.fail_next("/fng/", "500")
    report = poll_source(engine, live_sources(retrying)[0], retrying)
    assert report.inserted == 10 and standin.requests["/fng/"] == 2


def test_bad_rows_in_a_live_answer_are_refused_and_counted(engine: Engine, standin: ExogenousStandIn) -> None:
    settings = _settings(standin)
    standin.fail_next("/fng/", "bad_rows")
    standin.fail_next("/rss", "bad_rows")
    standin.fail_next("/sentiment", "bad_rows")
    reports = {r.series: r for r in poll(engine, settings)}
    assert reports["fear_greed"].rejected == {"bad_format": 1} and reports["fear_greed"].inserted == 9
    assert reports["news_headlines"].rejected == {"bad_timestamp": 1}
    assert reports["news_headlines"].inserted == len(standin.news_rows()) - 1
    assert reports["social_sentiment"].rejected == {"bad_format": 1}
    assert reports["social_sentiment"].inserted == 4
    line = reports["fear_greed"].line()
    assert "rejected=1" in line and "rejected[bad_format]=1" in line


def test_cli_poll(
    engine: Engine, standin: ExogenousStandIn, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTCMETA_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("BTCMETA_EXOGENOUS__FEAR_GREED_URL", f"{standin.base_url}/fng/")
    monkeypatch.setenv("BTCMETA_EXOGENOUS__NEWS_RSS_URL", f"{standin.base_url}/rss")
    monkeypatch.setenv("BTCMETA_EXOGENOUS__SENTIMENT_URL", f"{standin.base_url}/sentiment?days=3")
    monkeypatch.setenv("BTCMETA_EXOGENOUS__BINANCE_FUTURES_URL", "")
    monkeypatch.setenv("BTCMETA_EXOGENOUS__ATTEMPTS", "1")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        done = runner.invoke(app, ["exogenous", "poll"])
        assert done.exit_code == 0, done.output
        assert "fear_greed: read=10 taken=10 inserted=10 unchanged=0 rejected=0" in done.stdout
        assert "social_sentiment: read=3 taken=3 inserted=3" in done.stdout
        standin.fail_next("/rss", "500")
        done = runner.invoke(app, ["exogenous", "poll", "--source", "news", "--source", "fear_greed"])
        assert done.exit_code == 1
        assert "news_headlines: ERROR news:" in done.stderr and "HTTP 500" in done.stderr
        assert "fear_greed: read=10 taken=10 inserted=0 unchanged=10" in done.stdout
        assert "1 of 2 failed" in done.stderr
        assert "social_sentiment" not in done.output  # only the sources asked for
    finally:
        get_settings.cache_clear()


# ------------------------------------------------------- Binance funding: the live feed of funding_binance_8h


def _binance(standin: ExogenousStandIn, **changes: Any) -> ExogenousSettings:
    """Only the Binance funding source on."""
    return _settings(
        standin,
        fear_greed_url="",
        news_rss_url="",
        sentiment_url="",
        binance_futures_url=standin.base_url,
        **changes,
    )


def _file_funding(start: datetime, end: datetime) -> pd.DataFrame:
    frame = load_series(DATA, "funding_binance_8h").frame
    keep = (frame["about_ts"] >= pd.Timestamp(start)) & (frame["about_ts"] <= pd.Timestamp(end))
    return frame[keep].reset_index(drop=True)


def test_binance_funding_poll_pages_through_and_stores_the_files_rows(
    engine: Engine, standin: ExogenousStandIn
) -> None:
    """400 days are 1,200 settlements: two pages of Binance's 1,000. The stored rows are the shared
    file's, value and publication time, though the answer's fundingTime carries millisecond jitter."""
    settings = _binance(standin, binance_funding_days=400)
    (source,) = live_sources(settings)
    assert (source.name, source.series) == ("binance_funding", "funding_binance_8h")
    report = poll_source(engine, source, settings, now=AS_OF)
    assert report.error is None and report.rejected == {}
    expected = _file_funding(AS_OF - timedelta(days=400), AS_OF)
    assert report.inserted == len(expected) > 1000
    assert standin.requests["/fapi/v1/fundingRate"] == 2
    stored = read_series(engine, "funding_binance_8h")
    pd.testing.assert_frame_equal(stored[expected.columns.tolist()], expected, check_exact=True)
    assert (stored["published_at"] == stored["about_ts"]).all()  # published at settlement (catalog)

    again = poll_source(engine, source, settings, now=AS_OF)  # re-reads the last 400 days: unchanged
    assert again.inserted == 0 and again.unchanged == len(expected)


def test_binance_funding_agrees_with_the_import_and_catches_up_after_an_outage(
    engine: Engine, standin: ExogenousStandIn
) -> None:
    import_dir(engine, DATA, ["funding_binance_8h"])
    imported = count_rows(engine, "funding_binance_8h")
    settings = _binance(standin, binance_funding_days=2)
    (source,) = live_sources(settings)
    report = poll_source(engine, source, settings, now=AS_OF)
    window = _file_funding(AS_OF - timedelta(days=2), AS_OF)
    assert report.inserted == 0 and report.unchanged == len(window) == 7  # the file's rows, unchanged
    assert count_rows(engine, "funding_binance_8h") == imported

    # A fresh database polled 30 days late: it resumes at the last stored settlement, not 2 days back
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM exogenous_observations WHERE series = 'funding_binance_8h' AND about_ts > :t"),
            {"t": AS_OF - timedelta(days=30)},
        )
    caught = poll_source(engine, source, settings, now=AS_OF)
    assert caught.inserted == len(_file_funding(AS_OF - timedelta(days=30), AS_OF)) - 1 == 90


def test_the_combiners_funding_read_sees_the_polled_rate_only_once_published(
    engine: Engine, standin: ExogenousStandIn
) -> None:
    """What the meta consumer's linear combiners read (``store.funding_last``, ADR 0025) is the polled
    series: the last rate settled (= published) at or before the tick, never a later one."""
    from meta_consumer.store import funding_last

    settings = _binance(standin, binance_funding_days=10)
    poll_source(engine, live_sources(settings)[0], settings, now=AS_OF)
    expected = _file_funding(AS_OF - timedelta(days=10), AS_OF)
    settle = expected["about_ts"].iloc[-2].to_pydatetime()
    before = float(expected["funding_rate"].iloc[-3])
    at = float(expected["funding_rate"].iloc[-2])
    assert before != at
    assert funding_last(engine, settle - timedelta(seconds=1)) == before
    assert funding_last(engine, settle) == at
    assert funding_last(engine, settle + timedelta(hours=7, minutes=59)) == at


@pytest.mark.parametrize(("kind", "message"), [("500", "HTTP 500"), ("malformed", "malformed answer")])
def test_a_failing_binance_answer_writes_nothing(
    engine: Engine, standin: ExogenousStandIn, kind: str, message: str
) -> None:
    settings = _binance(standin, binance_funding_days=5)
    (source,) = live_sources(settings)
    standin.fail_next("/fapi/v1/fundingRate", kind)
    with pytest.raises(SourceError, match=message) as failed:
        poll_source(engine, source, settings, now=AS_OF)
    assert "binance_funding" in str(failed.value)
    assert count_rows(engine, "funding_binance_8h") == 0
    five_days = len(_file_funding(AS_OF - timedelta(days=5), AS_OF))  # 16: both ends included
    assert poll_source(engine, source, settings, now=AS_OF).inserted == five_days == 16  # back: all of it


def test_a_bad_binance_row_is_refused_and_counted(engine: Engine, standin: ExogenousStandIn) -> None:
    settings = _binance(standin, binance_funding_days=5)
    standin.fail_next("/fapi/v1/fundingRate", "bad_rows")
    report = poll_source(engine, live_sources(settings)[0], settings, now=AS_OF)
    assert report.rejected == {"bad_format": 1} and report.inserted == 16 - 1
