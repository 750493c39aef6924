"""The exogenous catalog and loader on the real shared files, plus one bad-row fixture per reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.exogenous import SERIES, TIME_SERIES, get_series, series_for_file
from common.exogenous.files import (
    ABOUT,
    PUBLISHED,
    PointInTime,
    Reason,
    SeriesFileError,
    asof,
    asof_index,
    asof_values,
    load_dir,
    load_series,
    load_static,
    visible_at,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "exogenous"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _utc(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(list(stamps)).tz_localize("UTC") if stamps else pd.DatetimeIndex([], tz="UTC")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return load_dir(DATA, now=NOW)


# ------------------------------------------------------------------------------ catalog vs README


def test_every_file_in_the_readme_and_manifest_is_in_the_catalog() -> None:
    readme = (DATA / "README.md").read_text()
    readme = readme[readme.index("## Files") : readme.index("## Sources")]  # not the upstream file names
    in_readme = set(re.findall(r"`([a-z0-9_]+\.csv)`", readme)) - {"manifest.csv"}
    manifest = set(pd.read_csv(DATA / "manifest.csv")["file"])
    on_disk = {p.name for p in DATA.glob("*.csv")} - {"manifest.csv"}
    catalog = {s.file for s in SERIES}
    assert in_readme == manifest == on_disk == catalog, (in_readme ^ catalog, manifest ^ catalog)
    assert len(in_readme) == 28
    for s in SERIES:
        assert series_for_file(s.file) is s
        assert get_series(s.name) is s


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="fear_greed"):
        get_series("fear_and_greed")


def test_every_time_series_loads_with_the_manifest_row_count(frames: dict[str, pd.DataFrame]) -> None:
    manifest = pd.read_csv(DATA / "manifest.csv").set_index("file")
    refused = {"funding_aggregate_daily": 2, "sopr": 2}  # README: 2 empty values in each
    assert set(frames) == set(TIME_SERIES)
    for name in TIME_SERIES:
        s = get_series(name)
        result = load_series(DATA, name, now=NOW)
        assert result.rows_read == manifest.loc[s.file, "rows"], name
        assert result.taken == result.rows_read - refused.get(name, 0), (name, result.rejected)
        if name in refused:
            assert result.rejected == {"empty_value": refused[name]}
        frame = frames[name]
        assert list(frame.columns) == [ABOUT, PUBLISHED, *s.value_columns]
        assert str(frame[ABOUT].dtype) == "datetime64[ns, UTC]"
        assert str(frame[PUBLISHED].dtype) == "datetime64[ns, UTC]"
        for c in s.columns:
            expected = np.float64 if c.kind == "number" else object
            assert frame[c.name].dtype == expected, (name, c.name)
        assert (frame[PUBLISHED] >= frame[ABOUT]).all(), name  # never known before it happened
        ordered = frame.sort_values([PUBLISHED, ABOUT], kind="stable", ignore_index=True)
        pd.testing.assert_frame_equal(frame, ordered)
        assert frame[ABOUT].iloc[0] == pd.Timestamp(manifest.loc[s.file, "first_ts"])


def test_values_are_the_files_literal_numbers(frames: dict[str, pd.DataFrame]) -> None:
    bitmex = frames["funding_bitmex_8h"]
    assert bitmex["funding_rate"].iloc[0] == float("6.900000000000001e-4")
    assert bitmex["symbol"].iloc[0] == "XBTUSD"
    social = frames["social_sentiment"]
    assert social["stocktwits_sentiment"].isna().sum() == 149  # empty cells stay missing, not filled
    assert social["reddit_comments_volume"].iloc[0] == 4600.0
    news = frames["news_headlines"]
    assert (news["title"] == "").sum() == 28 and len(news) == 7524


def test_lexicon_is_static() -> None:
    lexicon = load_static(DATA, "lexicon_chen2019")
    assert len(lexicon) == 9613
    assert lexicon.loc[lexicon["keyword"] == "lower", "sw"].iloc[0] == pytest.approx(-0.4963537553004952)
    with pytest.raises(SeriesFileError, match="static"):
        load_series(DATA, "lexicon_chen2019")


# ------------------------------------------------------------------------------ publication rules


@pytest.mark.parametrize(
    ("name", "about", "published"),
    [
        ("mvrv", "2020-03-12T00:00:00", "2020-03-13T00:00:00"),  # daily: D+1 00:00
        ("open_interest_daily", "2020-03-12T00:00:00", "2020-03-13T00:00:00"),
        ("google_trends", "2020-03-12T00:00:00", "2020-03-13T00:00:00"),
        ("news_events", "2020-03-12T00:00:00", "2020-03-13T00:00:00"),
        ("funding_binance_8h", "2020-03-12T08:00:00", "2020-03-12T08:00:00"),  # settlement: ts
        ("funding_bitmex_8h", "2020-03-12T04:00:00", "2020-03-12T04:00:00"),
        ("funding_deribit_1h", "2020-03-12T05:00:00", "2020-03-12T05:00:00"),
        ("fear_greed", "2020-03-12T00:00:00", "2020-03-12T01:00:00"),  # D 01:00
        ("news_headlines", "2022-04-19T13:51:00", "2022-04-19T15:00:00"),  # one-bar buffer
        ("news_headlines", "2022-04-19T14:00:00", "2022-04-19T15:00:00"),
        ("fed_funds_rate", "2020-03-12T00:00:00", "2020-03-13T14:00:00"),  # Thu -> Fri 14:00
        ("fed_funds_rate", "2020-03-13T00:00:00", "2020-03-16T14:00:00"),  # Fri -> Mon
        ("fed_funds_rate", "2020-03-14T00:00:00", "2020-03-16T14:00:00"),  # Sat -> Mon
        ("fed_funds_rate", "2020-12-24T00:00:00", "2020-12-28T14:00:00"),  # Christmas Friday skipped
        ("fed_funds_rate", "2021-06-17T00:00:00", "2021-06-21T14:00:00"),  # Juneteenth (observed Fri)
        ("real_dollar_index", "2020-01-01T00:00:00", "2020-03-01T00:00:00"),  # month after next
        ("real_dollar_index", "2020-12-01T00:00:00", "2021-02-01T00:00:00"),
    ],
)
def test_publication_rule(name: str, about: str, published: str) -> None:
    rule = get_series(name).publication
    assert rule.published_at(_utc(about))[0] == pd.Timestamp(published, tz="UTC")


def test_published_at_in_the_loaded_frames(frames: dict[str, pd.DataFrame]) -> None:
    mvrv = frames["mvrv"].set_index(ABOUT)
    assert mvrv.loc[pd.Timestamp("2020-03-12", tz="UTC"), PUBLISHED] == pd.Timestamp("2020-03-13", tz="UTC")
    rules = {s.name: s.publication.text for s in SERIES}
    assert "D+1 00:00 UTC" in rules["exchange_reserves"]


def test_static_rule_has_no_publication_time() -> None:
    with pytest.raises(ValueError, match="static"):
        get_series("lexicon_chen2019").publication.published_at(_utc("2020-01-01"))


# ------------------------------------------------------------------------------ point-in-time reads


def test_visible_at_cuts_on_publication(frames: dict[str, pd.DataFrame]) -> None:
    mvrv = frames["mvrv"]
    seen = visible_at(mvrv, pd.Timestamp("2020-03-12T23:59:59Z"))
    assert seen[ABOUT].max() == pd.Timestamp("2020-03-11", tz="UTC")  # the 12th is not known yet
    seen = visible_at(mvrv, pd.Timestamp("2020-03-13T00:00:00Z"))
    assert seen[ABOUT].max() == pd.Timestamp("2020-03-12", tz="UTC")  # published exactly now: visible


def test_asof_and_staleness(frames: dict[str, pd.DataFrame]) -> None:
    fg = frames["fear_greed"]  # 2018-04-14/15/16 are missing in the source
    times = _utc("2018-02-01T00:30", "2018-04-14T00:30", "2018-04-15T00:30", "2018-04-17T01:00")
    values = asof_values(fg, times, "value", max_age=timedelta(hours=30))
    assert np.isnan(values[0])  # nothing published yet
    assert values[1] == fg.loc[fg[ABOUT] == pd.Timestamp("2018-04-13", tz="UTC"), "value"].iloc[0]
    assert np.isnan(values[2])  # the 13th's value is 47.5 h old: stale, not forward-filled
    assert values[3] == fg.loc[fg[ABOUT] == pd.Timestamp("2018-04-17", tz="UTC"), "value"].iloc[0]
    no_limit = asof_values(fg, times, "value")
    assert no_limit[2] == values[1]
    by_about = asof_values(fg, times, "value", max_age=timedelta(hours=24), age_from="about_ts")
    assert np.isnan(by_about[1])  # 24.5 h after the day it describes began

    table = asof(fg, times, max_age=timedelta(hours=30))
    assert list(table.columns) == [ABOUT, PUBLISHED, "value", "classification"]
    assert table.index.equals(times)
    assert table["classification"].iloc[0] == "" and pd.isna(table[ABOUT].iloc[2])
    assert table["value"].iloc[1] == values[1]
    assert list(asof_index(fg, times[:1])) == [-1]

    cached = PointInTime(fg)
    hourly = pd.date_range("2018-01-01", "2022-09-01", freq="h", tz="UTC")
    for age in (None, timedelta(hours=30)):
        expected = asof_values(fg, hourly, "value", age)
        np.testing.assert_array_equal(cached.values(hourly, "value", age), expected)
    assert cached.count_visible(pd.Timestamp("2018-02-01T01:00Z")) == 1


def test_asof_refuses_naive_times(frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        asof_values(frames["mvrv"], [datetime(2020, 1, 1)], "mvrv")


def test_news_items_per_bar(frames: dict[str, pd.DataFrame]) -> None:
    news = PointInTime(frames["news_headlines"])
    start = pd.date_range("2022-04-19T00:00", periods=24, freq="h", tz="UTC")
    counts = news.count_published_between(start, start + pd.Timedelta(hours=1))
    published = frames["news_headlines"][PUBLISHED]
    day = (published > start[0]) & (published <= start[-1] + pd.Timedelta(hours=1))
    assert counts.sum() == day.sum() > 0


# ------------------------------------------------------------------------------ refused rows


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / get_series(name).file
    path.write_text(body)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "rows", "reason"),
    [
        ("mvrv", "2020-01-03T00:00:00Z,\n", Reason.EMPTY_VALUE),
        ("mvrv", "2020-01-03T00:00:00Z,nan\n", Reason.NON_FINITE),
        ("mvrv", "2020-01-03T00:00:00Z,inf\n", Reason.NON_FINITE),
        ("mvrv", "2020-01-03T00:00:00Z,1.2.3\n", Reason.BAD_FORMAT),
        ("mvrv", "2020-01-03T00:00:00Z,1e999\n", Reason.NON_FINITE),
        ("mvrv", "2020-01-03 00:00:00,1.5\n", Reason.BAD_TIMESTAMP),
        ("mvrv", "2020-02-30T00:00:00Z,1.5\n", Reason.BAD_TIMESTAMP),
        ("mvrv", "2020-01-03T06:00:00Z,1.5\n", Reason.OFF_GRID),
        ("mvrv", "2020-01-01T00:00:00Z,1.5\n", Reason.OUT_OF_ORDER),
        ("mvrv", "2020-01-02T00:00:00Z,2.5\n", Reason.DUPLICATE),
        ("mvrv", "2030-01-03T00:00:00Z,1.5\n", Reason.FUTURE),
        ("fear_greed", "2020-01-03T00:00:00Z,101,Extreme Greed\n", Reason.OUT_OF_RANGE),
        ("fear_greed", "2020-01-03T00:00:00Z,50,Meh\n", Reason.UNKNOWN_UNIT),
        ("funding_bitmex_8h", "2020-01-02T12:00:00Z,XBTUSD,12,0.0001,0.0003\n", Reason.UNKNOWN_UNIT),
        ("funding_bitmex_8h", "2020-01-02T12:00:00Z,ETHUSD,8,0.0001,0.0003\n", Reason.UNKNOWN_UNIT),
        ("social_sentiment", "2020-01-03T00:00:00Z,,,,,,\n", Reason.EMPTY_VALUE),
    ],
)
def test_each_bad_row_is_refused_with_its_reason(
    tmp_path: Path, name: str, rows: str, reason: Reason
) -> None:
    s = get_series(name)
    header = ",".join(["ts", *s.value_columns]) + "\n"
    # good rows before the bad one, and one good row after it (so a bad row does not stop the file)
    before, after = {
        "mvrv": ("2020-01-01T00:00:00Z,1.5\n2020-01-02T00:00:00Z,2.5\n", "2020-01-12T00:00:00Z,3.5\n"),
        "fear_greed": (
            "2020-01-01T00:00:00Z,40,Fear\n2020-01-02T00:00:00Z,41,Fear\n",
            "2020-01-12T00:00:00Z,42,Fear\n",
        ),
        "funding_bitmex_8h": (
            "2020-01-02T04:00:00Z,XBTUSD,8,0.0001,0.0003\n",
            "2020-01-12T20:00:00Z,XBTUSD,8,0.0001,0.0003\n",
        ),
        "social_sentiment": (
            "2020-01-01T00:00:00Z,0.1,,,10,,\n2020-01-02T00:00:00Z,0.2,0.3,,11,12,\n",
            "2020-01-12T00:00:00Z,0.2,0.3,,11,12,\n",
        ),
    }[name]
    good = before
    directory = _write(tmp_path, name, header + before + rows + after)
    result = load_series(directory, name, now=NOW)
    assert result.rejected == {reason.value: 1}, result.rejections
    bad = result.rejections[0]
    assert bad.line == 2 + len(good.splitlines())  # the line in the file (header = 1)
    assert result.taken == len(good.splitlines()) + 1
    assert not (result.frame[ABOUT] == pd.Timestamp("2030-01-03", tz="UTC")).any()


def test_conflicting_duplicates_are_both_refused(tmp_path: Path) -> None:
    body = "ts,mvrv\n2020-01-01T00:00:00Z,1.5\n2020-01-02T00:00:00Z,2.5\n2020-01-02T00:00:00Z,2.6\n"
    result = load_series(_write(tmp_path, "mvrv", body), "mvrv", now=NOW)
    assert result.rejected == {"conflicting_duplicate": 2}
    assert [r.line for r in result.rejections] == [3, 4]
    assert result.frame["mvrv"].tolist() == [1.5]  # neither version is guessed


def test_news_items_may_share_a_timestamp_but_not_repeat(tmp_path: Path) -> None:
    s = get_series("news_headlines")
    header = ",".join(["ts", *s.value_columns]) + "\n"
    a = "2022-01-01T10:00:00Z,CryptoNews,bitcoin,BTC up,text,https://a,positive,0.5,0.5\n"
    b = "2022-01-01T10:00:00Z,CryptoNews,bitcoin,BTC down,text,https://b,negative,-0.5,0.5\n"
    empty = "2022-01-01T11:00:00Z,,,,,,,,\n"
    directory = _write(tmp_path, "news_headlines", header + a + b + a + empty)
    result = load_series(directory, "news_headlines", now=NOW)
    assert result.rejected == {"duplicate": 1, "empty_value": 1}
    assert result.frame["title"].tolist() == ["BTC up", "BTC down"]


def test_a_file_with_an_unknown_column_is_refused_whole(tmp_path: Path) -> None:
    directory = _write(tmp_path, "mvrv", "ts,mvrv,mvrv_usd\n2020-01-01T00:00:00Z,1.5,3\n")
    with pytest.raises(SeriesFileError, match=r"unknown column\(s\) \['mvrv_usd'\]"):
        load_series(directory, "mvrv", now=NOW)
    with pytest.raises(SeriesFileError, match="file not found"):
        load_series(tmp_path, "sopr", now=NOW)


def test_rejections_are_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from common.logging import configure_logging

    configure_logging("test", "INFO", json=True)
    load_series(_write(tmp_path, "mvrv", "ts,mvrv\n2020-01-01T00:00:00Z,nan\n"), "mvrv", now=NOW)
    err = capsys.readouterr().err
    assert '"event": "exogenous_row_rejected"' in err and '"reason": "non_finite"' in err
    assert '"line": 2' in err and '"series": "mvrv"' in err


# ------------------------------------------------------------------------------ storage on SQLite


def test_store_round_trip_on_sqlite(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    """The laptop path: migrations and the exogenous store work on SQLite too."""
    from common.db import migrate
    from common.db.session import make_engine
    from common.exogenous.store import count_rows, read_series, store_frame

    url = f"sqlite:///{tmp_path / 'exo.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        for name in ("fear_greed", "social_sentiment", "news_events", "funding_binance_8h"):
            frame = frames[name]
            first = store_frame(engine, get_series(name), frame, "test")
            assert first.inserted == len(frame) and not first.conflicts
            again = store_frame(engine, get_series(name), frame, "test")
            assert again.inserted == 0 and again.unchanged == len(frame)
            assert count_rows(engine, name) == len(frame)
            back = read_series(engine, name)
            if get_series(name).is_event:
                key = [ABOUT, PUBLISHED, *get_series(name).value_columns]
                back = back.sort_values(key, ignore_index=True)
                frame = frame.sort_values(key, ignore_index=True)
            pd.testing.assert_frame_equal(back, frame, check_exact=True, obj=name)
        changed = frames["fear_greed"].head(3).copy()
        changed.loc[1, "value"] += 1
        report = store_frame(engine, get_series("fear_greed"), changed, "test")
        assert len(report.conflicts) == 1 and report.unchanged == 2 and report.inserted == 0
        migrate.downgrade(url, "0003")
    finally:
        engine.dispose()
