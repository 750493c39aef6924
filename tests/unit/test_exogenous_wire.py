"""Exogenous inputs on the wire: BarClosed v2 round trips (fast and generic paths agree, real
series survive exactly), old writers and readers still work, the emitter never attaches anything
published after the tick, and the Recommendation's reason / attention fields evolve compatibly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from fastavro import schemaless_reader

from common import serde
from common.events import BarClosed, Recommendation
from common.exogenous.files import load_dir
from common.registry import StrategySpec
from common.serde_bars import BAR_ENCODER, ExogenousArrays, decode_bar_window, encode_bar
from common.testkit import sample_bar_closed, sample_recommendation
from tick_emitter.core import BarPayload, DuePlan
from tick_emitter.exogenous import ExogenousLeak, ExogenousNeed, FrameFeed, attach_exogenous

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "exogenous"
SERIES = ("news_headlines", "funding_binance_8h", "exchange_reserves", "social_sentiment")
TICK = datetime(2022, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return load_dir(DATA, SERIES, now=datetime(2026, 1, 1, tzinfo=UTC))


def _cut(frames: dict[str, pd.DataFrame], name: str, tick: datetime, days: int) -> pd.DataFrame:
    """Rows published in (tick - days, tick]; social sentiment from its last half year (it ends in
    May 2021, with empty cells: the NaN case)."""
    f = frames[name]
    lo, hi = pd.Timestamp(tick - timedelta(days=days)), pd.Timestamp(tick)
    if name == "social_sentiment":
        lo, hi = pd.Timestamp("2020-11-01", tz="UTC"), pd.Timestamp("2021-06-01", tz="UTC")
    return f[(f["published_at"] > lo) & (f["published_at"] <= hi)].reset_index(drop=True)


def _payload(frames: dict[str, pd.DataFrame], tick: datetime = TICK, days: int = 10) -> BarPayload:
    bar = sample_bar_closed(bars=48)
    times = np.array(
        [int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1)) for t in bar.open_time],
        dtype=np.int64,
    )
    values = np.array([bar.open, bar.high, bar.low, bar.close, bar.volume]).T
    exo = []
    for name in SERIES:
        exo.append(ExogenousArrays.from_frame(name, _cut(frames, name, tick, days)))
    return BarPayload(bar.tick_id, bar.symbol, "1h", times, values, tuple(exo))


def test_real_series_round_trip_exactly_on_both_paths(frames: dict[str, pd.DataFrame]) -> None:
    assert BAR_ENCODER.enabled
    payload = _payload(frames)
    fast = encode_bar(payload)
    assert fast == serde.encode(payload.to_event())  # the replay encoder writes the generic bytes
    window = decode_bar_window(fast)
    generic = serde.decode(fast, BarClosed)
    # the fast decoder reads what fastavro reads (compared as bytes: NaN != NaN in tuples)
    assert serde.encode(window.to_event()) == serde.encode(generic) == fast
    assert [f.series for f in generic.exogenous] == list(SERIES)
    for name, sent in zip(SERIES, payload.exogenous, strict=True):
        got = window.exogenous[name].to_frame()
        want = sent.to_frame()
        pd.testing.assert_frame_equal(got, want)
        assert list(got.columns) == list(frames[name].columns)  # catalog order, text and numbers
    news = window.exogenous["news_headlines"].to_frame()
    assert len(news) > 50 and news["title"].str.len().gt(0).any()
    social = window.exogenous["social_sentiment"]
    assert len(social) and np.isnan(social.numbers["reddit_comments_sentiment"]).any()  # NaN survives


def test_frames_match_the_loader_exactly(frames: dict[str, pd.DataFrame]) -> None:
    """What the runner hands the strategy is the loader's frame, row for row (ms-precision times)."""
    payload = _payload(frames, days=3)
    window = decode_bar_window(encode_bar(payload))
    for name in SERIES:
        pd.testing.assert_frame_equal(window.exogenous[name].to_frame(), _cut(frames, name, TICK, 3))


def test_old_and_new_readers_and_writers(frames: dict[str, pd.DataFrame]) -> None:
    schemas = serde.load_schema_set()
    v1 = schemas.get(BarClosed.SCHEMA_NAME, 1)
    event = _payload(frames).to_event()
    # a v1 consumer reads a v2 message: the window, without the exogenous field
    data = serde.encode(event)
    buf = BytesIO(data)
    buf.seek(serde.HEADER_SIZE)
    as_v1 = schemaless_reader(buf, schemas.current[BarClosed.SCHEMA_NAME].parsed, v1.parsed)
    assert "exogenous" not in as_v1 and list(as_v1["close"]) == list(event.close)
    # a v1 producer's message reads as a v2 event without exogenous inputs, on both decoders
    record = {k: v for k, v in event.to_dict().items() if k != "exogenous"}
    old_bytes = serde.encode_raw(record, BarClosed.SCHEMA_NAME, 1)
    assert serde.decode(old_bytes, BarClosed) == replace(event, exogenous=())
    assert decode_bar_window(old_bytes).exogenous == {}


def test_the_decoder_refuses_malformed_exogenous_frames(frames: dict[str, pd.DataFrame]) -> None:
    record = _payload(frames).to_event().to_dict()
    record["exogenous"][0]["published_at"] = record["exogenous"][0]["published_at"][::-1]
    unsorted = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    record = _payload(frames).to_event().to_dict()
    record["exogenous"][1]["numbers"][0]["values"] = record["exogenous"][1]["numbers"][0]["values"][:-1]
    short = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    record = _payload(frames).to_event().to_dict()
    record["exogenous"].append(record["exogenous"][0])
    duplicate = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    for data in (unsorted, short, duplicate):
        with pytest.raises(serde.SerdeError):
            serde.decode(data, BarClosed)
        with pytest.raises(serde.SerdeError):
            decode_bar_window(data)


def _spec(name: str, timeframe: str) -> StrategySpec:
    return StrategySpec(name, "x:Y", timeframe, 48, True, "1.0.0", {})


def test_attach_cuts_at_the_tick_and_reads_each_series_once(frames: dict[str, pd.DataFrame]) -> None:
    class CountingFeed(FrameFeed):
        calls: ClassVar[list[tuple[str, int, int]]] = []

        def read(self, series: str, lo_ms: int, hi_ms: int) -> ExogenousArrays:
            self.calls.append((series, lo_ms, hi_ms))
            return super().read(series, lo_ms, hi_ms)

    feed = CountingFeed({n: ExogenousArrays.from_frame(n, frames[n]) for n in SERIES})
    payload = _payload(frames, days=0)
    plan = DuePlan(TICK, (_spec("a", "1h"), _spec("b", "1h"), _spec("c", "4h")), {"1h": 48})
    h = 3_600_000
    needs = (
        ExogenousNeed("a", "1h", ("news_headlines",), 24 * h, 24),
        ExogenousNeed("b", "1h", ("news_headlines", "funding_binance_8h"), 200 * h, 48),
        ExogenousNeed("c", "4h", ("exchange_reserves",), 48 * h, 10),  # no 4h bar here: not read
        ExogenousNeed("z", "1h", ("social_sentiment",), 48 * h, 48),
    )  # not due: not read
    tick_ms = int(TICK.timestamp() * 1000)
    payload = replace(payload, exogenous=(), times=payload.times - int(payload.times[-1]) + tick_ms - h)
    [bar] = attach_exogenous([payload], plan, needs, feed)
    assert sorted(c[0] for c in feed.calls) == ["funding_binance_8h", "news_headlines"]
    lo = int(payload.times[0]) + h - 200 * h
    assert all(c[1] == lo and c[2] == tick_ms for c in feed.calls)
    for arrays in bar.exogenous:
        assert len(arrays) and arrays.published_ms.max() <= tick_ms and arrays.published_ms.min() >= lo
        full = feed.frames[arrays.series].published_ms
        assert len(arrays) == int(((full >= lo) & (full <= tick_ms)).sum())  # nothing known is left out

    class LeakyFeed(FrameFeed):
        def read(self, series: str, lo_ms: int, hi_ms: int) -> ExogenousArrays:
            return super().read(series, lo_ms, hi_ms + 30 * 86_400_000)  # a feed that ignores the tick

    with pytest.raises(ExogenousLeak):
        attach_exogenous([payload], plan, needs, LeakyFeed(feed.frames))


def test_recommendation_reason_and_attention_both_ways() -> None:
    rec = replace(sample_recommendation(), reason="stale:funding_binance_8h", attention=True)
    assert serde.decode(serde.encode(rec), Recommendation) == rec
    v2 = serde.load_schema_set().get(Recommendation.SCHEMA_NAME, 2)
    buf = BytesIO(serde.encode(rec))
    buf.seek(serde.HEADER_SIZE)
    current = serde.load_schema_set().current[Recommendation.SCHEMA_NAME]
    old = schemaless_reader(buf, current.parsed, v2.parsed)
    assert "reason" not in old and "attention" not in old and old["target"] == rec.target.value
    record = {k: v for k, v in rec.to_dict().items() if k not in ("reason", "attention")}
    assert serde.decode(serde.encode_raw(record, Recommendation.SCHEMA_NAME, 2)) == replace(
        rec, reason="", attention=None
    )
    with pytest.raises(TypeError):
        replace(rec, attention=1)
