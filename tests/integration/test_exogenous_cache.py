"""The emitter's in-memory exogenous feed answers exactly what one query per series would.

``CachedDbFeed`` against ``DbFeed`` (the reference: one indexed query per series and tick) on real
series in a real PostgreSQL (TimescaleDB where the cluster has it), hour by hour over two weeks of
2022 where news is densest: every row, time, value and text equal at every tick, with

* rows that arrive late (published before the tick that reads them, inserted after the cache read
  that publication range), including a transaction that commits after a refresh began,
* trimming (memory bounded by what the needs can reach, old ranges reloaded when asked again),
* the replay mode (read ahead, never re-checked) and the live mode (background refresh),
* the microsecond cut: a row published half a millisecond after the tick is not attached.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from sqlalchemy import Engine, text

from common.db import migrate
from common.db.session import make_engine
from common.exogenous.catalog import get_series
from common.exogenous.files import load_dir
from common.exogenous.store import store_frame
from common.registry import StrategySpec
from common.serde_bars import ExogenousArrays
from tick_emitter.core import BarPayload, DuePlan
from tick_emitter.exogenous import CachedDbFeed, DbFeed, ExogenousNeed, attach_exogenous

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "exogenous"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
H = 3_600_000
SERIES = ("news_headlines", "funding_binance_8h", "exchange_reserves")
#: A news strategy on 1h, a funding one on 4h and a reserves one on 1d (due only at midnight).
NEEDS = (
    ExogenousNeed("news", "1h", ("news_headlines",), 24 * H, 48),
    ExogenousNeed("funding", "4h", ("funding_binance_8h", "news_headlines"), 10 * 24 * H, 60),
    ExogenousNeed("reserves", "1d", ("exchange_reserves",), 30 * 24 * H, 30),
)
TF_MS = {"1h": H, "4h": 4 * H, "1d": 24 * H}
START = datetime(2022, 2, 20, tzinfo=UTC)
END = datetime(2022, 3, 6, tzinfo=UTC)
#: How long after publication each held-back series arrives in the live test.
DELAY = {
    "news_headlines": timedelta(hours=3),
    "funding_binance_8h": timedelta(hours=9),
    "exchange_reserves": timedelta(hours=30),
}


def _ms(when: datetime | pd.Timestamp) -> int:
    return int(pd.Timestamp(when).value // 1_000_000)


def _ticks() -> list[int]:
    return list(range(_ms(START), _ms(END) + 1, H))


def _due(tick: int) -> list[ExogenousNeed]:
    return [n for n in NEEDS if tick % TF_MS[n.timeframe] == 0]


def _wanted(tick: int) -> dict[str, tuple[int, int]]:
    """What ``attach_exogenous`` asks at ``tick`` for gap-free bars: per series, from the earliest
    window's first bar close minus its reach, up to the tick."""
    lows: dict[str, int] = {}
    for need in _due(tick):
        lo = tick - (need.bars - 1) * TF_MS[need.timeframe] - need.reach_ms
        for series in need.series:
            lows[series] = min(lows.get(series, lo), lo)
    return {series: (lo, tick) for series, lo in lows.items()}


def _keep_ms(series: str) -> int:
    """The span the cache keeps for ``series`` (its docstring: reach + bars + one bar)."""
    return max(n.reach_ms + (n.bars + 1) * TF_MS[n.timeframe] for n in NEEDS if series in n.series)


def assert_same(got: ExogenousArrays, want: ExogenousArrays, where: str) -> None:
    assert got.series == want.series, where
    assert np.array_equal(got.published_ms, want.published_ms), (where, len(got), len(want))
    assert np.array_equal(got.about_ms, want.about_ms), where
    assert got.about_ms.dtype == want.about_ms.dtype == np.int64, where
    assert list(got.numbers) == list(want.numbers) and list(got.texts) == list(want.texts), where
    for col, values in want.numbers.items():
        assert got.numbers[col].dtype == np.float64, (where, col)
        assert np.array_equal(got.numbers[col], values, equal_nan=True), (where, col)
    for col, texts in want.texts.items():
        assert list(got.texts[col]) == list(texts), (where, col)


def assert_feeds_agree(
    cache: CachedDbFeed, db: DbFeed, wanted: dict[str, tuple[int, int]], where: str
) -> int:
    """The cache's answer equals the database's; returns how many rows that was."""
    got, want = cache.read_all(wanted), db.read_all(wanted)
    assert set(got) == set(want) == set(wanted), where
    for series, (_, hi) in wanted.items():
        assert_same(got[series], want[series], f"{where} {series}")
        never_after = len(got[series]) == 0 or int(got[series].published_ms.max()) <= hi
        assert never_after, where
    return sum(len(a) for a in want.values())


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return load_dir(DATA, SERIES, now=NOW)


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


def _store(engine: Engine, name: str, frame: pd.DataFrame) -> int:
    return store_frame(engine, get_series(name), frame, f"file:{get_series(name).file}").inserted


def _held_back(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Rows stored only once the walk is past their publication plus ``DELAY``: every 5th news item
    from the third day, every 3rd funding rate, every reserves value from the fourth day."""
    out = {}
    for name, frame in frames.items():
        pub = frame["published_at"]
        if name == "news_headlines":
            rows = frame[(pub >= pd.Timestamp(START + timedelta(days=2))) & (pub <= pd.Timestamp(END))]
            rows = rows.iloc[::5]
        elif name == "funding_binance_8h":
            rows = frame[(pub >= pd.Timestamp(START)) & (pub <= pd.Timestamp(END))].iloc[::3]
        else:
            rows = frame[(pub >= pd.Timestamp(START + timedelta(days=3))) & (pub <= pd.Timestamp(END))]
        out[name] = rows
    return out


def test_live_cache_equals_db_feed_at_every_tick_with_late_rows(
    engine: Engine, frames: dict[str, pd.DataFrame]
) -> None:
    late = _held_back(frames)
    for name, frame in frames.items():
        assert _store(engine, name, frame.drop(late[name].index)) > 0
    pending = {name: rows.copy() for name, rows in late.items()}
    assert all(len(rows) for rows in pending.values()), {n: len(r) for n, r in pending.items()}

    db = DbFeed(engine)
    cache = CachedDbFeed(engine, NEEDS, refresh_s=None)  # live layout; refreshed by hand below
    delivered = arrived = merged = 0
    seen_stale = set()
    for tick in _ticks():
        when = pd.Timestamp(tick, unit="ms", tz="UTC")
        for name, rows in pending.items():
            due = rows[rows["published_at"] + DELAY[name] <= when]
            if len(due):
                assert _store(engine, name, due) == len(due)
                pending[name] = rows.drop(due.index)
                arrived += len(due)
                wanted = {name: (tick - _keep_ms(name) + H, tick)}
                if name not in seen_stale and name in cache.held_rows():
                    # Before the refresh the cache cannot know them: this is what refresh is for.
                    got, want = cache.read_all(wanted)[name], db.read_all(wanted)[name]
                    assert len(got) < len(want), (name, when)
                    seen_stale.add(name)
        merged += cache.refresh()
        delivered += assert_feeds_agree(cache, db, _wanted(tick), f"tick {when}")
        for series in _wanted(tick):
            lo_us, _ = cache.held_range(series)
            assert lo_us >= (tick - _keep_ms(series)) * 1000, series  # trimmed to what the needs reach
    assert seen_stale == set(SERIES)
    assert arrived == merged == sum(len(r) for r in late.values()) - sum(len(r) for r in pending.values())
    assert arrived > 100 and delivered > 10_000
    assert cache.queries.get("load", 0) <= len(SERIES)  # then only refreshes, never a read per tick
    # A range older than what is held is read again, and still equal.
    assert_feeds_agree(cache, db, {"news_headlines": (_ms(START) - 20 * 24 * H, _ms(START))}, "old range")


def test_replay_cache_reads_ahead_trims_and_equals_db_feed(
    engine: Engine, frames: dict[str, pd.DataFrame]
) -> None:
    for name, frame in frames.items():
        assert _store(engine, name, frame) > 0
    db = DbFeed(engine)
    ahead = timedelta(days=2)
    cache = CachedDbFeed(engine, NEEDS, refresh_s=None, ahead=ahead)
    pub_ms = {n: f["published_at"].array.as_unit("ms").asi8 for n, f in frames.items()}  # type: ignore[attr-defined]
    ticks = _ticks()
    for tick in ticks:
        assert_feeds_agree(cache, db, _wanted(tick), f"tick {pd.Timestamp(tick, unit='ms', tz='UTC')}")
        held = cache.held_rows()
        for series in held:
            lo_us, hi_us = cache.held_range(series)
            if series in _wanted(tick):  # trimmed when read
                assert lo_us >= (tick - _keep_ms(series)) * 1000, series
            assert hi_us <= (tick + int(ahead / timedelta(milliseconds=1))) * 1000, series
            # memory: exactly the rows published in the held range, no more
            p = pub_ms[series]
            assert held[series] == int(((p * 1000 >= lo_us) & (p * 1000 <= hi_us)).sum()), series
    queries = sum(cache.queries.values())
    assert cache.queries["load"] == 1 and queries <= len(ticks) // 12, cache.queries  # not one per tick
    assert cache.held_rows()["news_headlines"] < len(frames["news_headlines"]) // 4

    # The leak guard passes bars built from a cache that holds rows published after the tick,
    # and the bars equal those built from the database.
    tick = _ms(datetime(2022, 3, 2, tzinfo=UTC))
    specs = tuple(StrategySpec(n.strategy, "x:Y", n.timeframe, 48, True, "1.0.0", {}) for n in _due(tick))
    payloads = [
        BarPayload(
            "t",
            "BTC/USD:USD",
            n.timeframe,
            np.arange(tick - n.bars * TF_MS[n.timeframe], tick, TF_MS[n.timeframe]),
            np.zeros((n.bars, 5)),
        )
        for n in _due(tick)
    ]
    plan = DuePlan(
        pd.Timestamp(tick, unit="ms", tz="UTC").to_pydatetime(),
        specs,
        {n.timeframe: n.bars for n in _due(tick)},
    )
    assert cache.held_range("news_headlines")[1] > tick * 1000
    from_cache = attach_exogenous(payloads, plan, NEEDS, cache)
    from_db = attach_exogenous(payloads, plan, NEEDS, db)
    for a, b in zip(from_cache, from_db, strict=True):
        assert len(a.exogenous) == len(b.exogenous) > 0
        for x, y in zip(a.exogenous, b.exogenous, strict=True):
            assert_same(x, y, f"attach {a.timeframe}")


def test_a_transaction_committing_after_a_refresh_is_still_picked_up(
    engine: Engine, frames: dict[str, pd.DataFrame], empty_database_url: str
) -> None:
    """Its rows carry its start time, older than the refresh that could not see them yet."""
    funding = frames["funding_binance_8h"]
    late = funding[funding["published_at"] == pd.Timestamp(datetime(2022, 3, 1, 8, tzinfo=UTC))]
    assert len(late) == 1
    _store(engine, "funding_binance_8h", funding.drop(late.index))
    db = DbFeed(engine)
    # exact: sees the open transaction in pg_stat_activity; margin: no view of it, 10 min margin;
    # blind: neither (what the margin is for)
    exact = CachedDbFeed(engine, NEEDS, refresh_s=None, late_margin=timedelta(0))
    margin = CachedDbFeed(engine, NEEDS, refresh_s=None, watch_transactions=False)
    blind = CachedDbFeed(engine, NEEDS, refresh_s=None, watch_transactions=False, late_margin=timedelta(0))
    feeds = (exact, margin, blind)
    tick = _ms(datetime(2022, 3, 2, tzinfo=UTC))
    wanted = {"funding_binance_8h": (tick - 10 * 24 * H, tick)}
    row = late.iloc[0]
    with psycopg.connect(empty_database_url.replace("postgresql+psycopg://", "postgresql://")) as raw:
        # The row's ingested_at is its transaction's start: before every read below.
        raw.execute(
            "INSERT INTO exogenous_observations (series, about_ts, item_key, published_at, value, "
            "source) VALUES ('funding_binance_8h', %s, '', %s, %s, 'test:raw')",
            (
                row["about_ts"].to_pydatetime(),
                row["published_at"].to_pydatetime(),
                float(row["funding_rate"]),
            ),
        )
        time.sleep(0.05)
        for feed in feeds:
            assert_feeds_agree(feed, db, wanted, "before the commit")
        time.sleep(0.05)
        assert [feed.refresh() for feed in feeds] == [0, 0, 0]  # not committed yet
        raw.commit()
    in_db = len(db.read_all(wanted)["funding_binance_8h"])
    assert all(len(feed.read_all(wanted)["funding_binance_8h"]) + 1 == in_db for feed in feeds)
    assert [feed.refresh() for feed in feeds] == [1, 1, 0]
    assert_feeds_agree(exact, db, wanted, "after, watching transactions")
    assert_feeds_agree(margin, db, wanted, "after, with the margin")
    assert len(blind.read_all(wanted)["funding_binance_8h"]) + 1 == in_db  # missed ...
    assert blind.refresh(full=True) == 1  # ... until the periodic full reload
    assert_feeds_agree(blind, db, wanted, "after a full reload")
    # Once merged, nothing more comes in.
    assert [feed.refresh() for feed in (exact, blind)] == [0, 0]


def test_the_cut_is_in_microseconds_like_the_query(engine: Engine, frames: dict[str, pd.DataFrame]) -> None:
    _store(engine, "funding_binance_8h", frames["funding_binance_8h"])
    tick_dt = datetime(2022, 3, 2, 1, tzinfo=UTC)  # no funding settles at 01:00: the two rows below are alone
    db = DbFeed(engine)
    cache = CachedDbFeed(engine, NEEDS, refresh_s=None)
    tick = _ms(tick_dt)
    wanted = {"funding_binance_8h": (tick - 24 * H, tick)}
    before = assert_feeds_agree(cache, db, wanted, "before")
    with engine.begin() as conn:
        for about, published in (
            (tick_dt, tick_dt),
            (tick_dt + timedelta(minutes=1), tick_dt + timedelta(microseconds=500)),
        ):
            conn.execute(
                text(
                    "INSERT INTO exogenous_observations (series, about_ts, item_key, published_at, "
                    "value, source) VALUES ('funding_binance_8h', :a, '', :p, 0.0001, 'test:raw')"
                ),
                {"a": about, "p": published},
            )
    assert cache.refresh() == 2
    assert assert_feeds_agree(cache, db, wanted, "at the tick") == before + 1  # the +0.5 ms row is not in
    later = {"funding_binance_8h": (tick - 24 * H, tick + 1)}
    got = cache.read_all(later)["funding_binance_8h"]
    assert assert_feeds_agree(cache, db, later, "1 ms later") == before + 2
    assert int(got.published_ms[-1]) == tick  # shown truncated to the ms, as DbFeed shows it


def test_background_refresh_picks_up_a_late_row_and_stops_with_the_feed(
    engine: Engine, frames: dict[str, pd.DataFrame]
) -> None:
    news = frames["news_headlines"]
    tick_dt = datetime(2022, 3, 2, 12, tzinfo=UTC)
    pub = news["published_at"]
    late = news[(pub > pd.Timestamp(tick_dt - timedelta(hours=6))) & (pub <= pd.Timestamp(tick_dt))]
    assert len(late) > 3
    _store(engine, "news_headlines", news.drop(late.index))
    db = DbFeed(engine)
    cache = CachedDbFeed(engine, NEEDS, refresh_s=0.1)
    tick = _ms(tick_dt)
    wanted = {"news_headlines": (tick - 2 * 24 * H, tick)}
    before = set(threading.enumerate())
    assert_feeds_agree(cache, db, wanted, "before")
    mine = [t for t in threading.enumerate() if t not in before and t.name == "exogenous-cache-refresh"]
    assert len(mine) == 1, "the first read starts the background refresh"
    _store(engine, "news_headlines", late)
    deadline = time.monotonic() + 20
    want = len(db.read_all(wanted)["news_headlines"])
    while len(cache.read_all(wanted)["news_headlines"]) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_feeds_agree(cache, db, wanted, "after the background refresh")
    assert cache.queries.get("refresh", 0) >= 1 and cache.queries.get("load") == 1

    # The refresh thread holds the feed only weakly: dropping the feed ends it.
    del cache
    gc.collect()
    mine[0].join(timeout=5)
    assert not mine[0].is_alive()


def test_a_stalled_refresh_makes_the_tick_refresh_itself(
    engine: Engine, frames: dict[str, pd.DataFrame]
) -> None:
    funding = frames["funding_binance_8h"]
    late = funding[funding["published_at"] == pd.Timestamp(datetime(2022, 3, 1, 16, tzinfo=UTC))]
    _store(engine, "funding_binance_8h", funding.drop(late.index))
    db = DbFeed(engine)
    cache = CachedDbFeed(engine, NEEDS, refresh_s=3600.0, stale_after_s=0.0)  # the thread sleeps an hour
    tick = _ms(datetime(2022, 3, 2, tzinfo=UTC))
    wanted = {"funding_binance_8h": (tick - 10 * 24 * H, tick)}
    assert_feeds_agree(cache, db, wanted, "before")
    _store(engine, "funding_binance_8h", late)
    assert_feeds_agree(cache, db, wanted, "after")
    assert cache.queries.get("refresh", 0) >= 1
    cache.close()
