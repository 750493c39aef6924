"""Recommendation v3's ``reason`` and ``attention`` survive the whole read path.

Answers go through the real broker (current v3 messages and messages written with the kept v1 and
v2 schemas, as an older strategy build would send them), the meta consumer stores them in the real
PostgreSQL, and the bridge and the demo report read them back. Before revision 0006 both fields
were decoded and then dropped on the way into the table.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from bridge.app import create_app
from common import serde
from common.db.models import Recommendation as RecRow
from common.db.session import make_engine, session_scope
from common.events import Recommendation, SignalEvent, Target
from common.ids import make_tick_id
from common.kafka.producer import EventProducer
from common.kafka.topics import RECOMMENDATIONS
from common.registry import load_registry
from config import BridgeSettings, MetaSettings, Settings
from tests.integration.test_meta_consumer import running

pytestmark = pytest.mark.integration

SYMBOL = "BTC/USD:USD"
T0 = datetime(2023, 3, 1, tzinfo=UTC)
VIEWER = "fields-viewer-token"
STALE = "stale:funding_binance_8h"
#: What each strategy answers at tick 1: (writer schema version or None for current, reason, attention).
ANSWERS: dict[str, tuple[int | None, str, bool | None]] = {
    "news_attention": (None, "", True),  # a high-attention bar, with an opinion
    "headline_sentiment": (None, "", False),  # says explicitly: not a high-attention bar
    "funding_extremes": (None, STALE, None),  # no opinion, and why
    "supertrend": (2, "", None),  # an older build: v2 has neither field
    "ott": (1, "", None),  # the oldest: v1 (no indicators either)
}
LIVE = tuple(ANSWERS)


def tick_id(i: int) -> str:
    return make_tick_id(SYMBOL, T0 + timedelta(hours=i))


def answer(i: int, strategy: str, reason: str, attention: bool | None) -> Recommendation:
    t = T0 + timedelta(hours=i)
    return Recommendation(
        tick_id=tick_id(i),
        strategy=strategy,
        strategy_version="1.0.0",
        symbol=SYMBOL,
        timeframe="1h",
        bar_close_time=t,
        target=Target.FLAT if reason else Target.LONG,
        event=SignalEvent.NONE,
        confidence=0.0 if reason else 0.7,
        horizon_bars=4,
        produced_at=t,
        indicators={"x": 1.0},
        reason=reason,
        attention=attention,
    )


def old_format(rec: Recommendation, version: int) -> bytes:
    """``rec`` as a build still on Recommendation v``version`` writes it (fields of that version only)."""
    record: dict[str, Any] = rec.to_dict()
    del record["reason"], record["attention"]
    if version < 2:
        del record["indicators"]
    return serde.encode_raw(record, Recommendation.SCHEMA_NAME, version)


def publish(settings: Settings, i: int) -> None:
    producer = EventProducer(settings, "test-fields")
    topic = settings.topic(RECOMMENDATIONS)
    for name, (version, reason, attention) in ANSWERS.items():
        rec = answer(i, name, reason, attention)
        if version is None:
            producer.send(topic, rec, key=tick_id(i))
        else:
            producer.send_raw(topic, old_format(rec, version), key=tick_id(i))
    producer.flush()


def stored(settings: Settings, i: int, n: int, timeout: float = 30.0) -> dict[str, RecRow]:
    """The rows the meta consumer stored for tick ``i``, once there are ``n`` of them."""
    engine = make_engine(settings.database_url.get_secret_value())
    deadline = time.monotonic() + timeout
    try:
        while True:
            with session_scope(engine) as s:
                rows = s.scalars(
                    select(RecRow).where(
                        RecRow.namespace == settings.kafka.topic_prefix, RecRow.tick_id == tick_id(i)
                    )
                ).all()
                s.expunge_all()
            if len(rows) >= n:
                return {r.strategy: r for r in rows}
            assert time.monotonic() < deadline, f"{len(rows)} of {n} answers for tick {i} stored"
            time.sleep(0.05)
    finally:
        engine.dispose()


@pytest.fixture
def tick1(settings: Settings) -> dict[str, RecRow]:
    """Tick 1's answers published and stored by a running meta consumer."""
    with running(settings, MetaSettings(deadline_s=30.0), live=LIVE):
        publish(settings, 1)
        return stored(settings, 1, len(ANSWERS))


def test_reason_and_attention_are_stored_and_old_messages_store_nulls(tick1: dict[str, RecRow]) -> None:
    rows = tick1
    assert set(rows) == set(ANSWERS)
    assert (rows["news_attention"].attention, rows["news_attention"].reason) == (True, None)
    assert (rows["headline_sentiment"].attention, rows["headline_sentiment"].reason) == (False, None)
    assert (rows["funding_extremes"].reason, rows["funding_extremes"].attention) == (STALE, None)
    assert rows["funding_extremes"].target == "FLAT"
    # v1/v2 writers know neither field: both NULL, the rest of the answer intact.
    for old in ("supertrend", "ott"):
        assert (rows[old].reason, rows[old].attention) == (None, None)
        assert (rows[old].target, rows[old].confidence) == ("LONG", pytest.approx(0.7))
    assert rows["supertrend"].indicators == {"x": 1.0} and rows["ott"].indicators == {}


def test_bridge_serves_reason_and_attention(settings: Settings, tick1: dict[str, RecRow]) -> None:
    bridge = BridgeSettings(
        viewer_tokens=[SecretStr(f"vera:{VIEWER}")],
        default_namespace=settings.kafka.topic_prefix,
        stream_enabled=False,
        flatten_on_trip=False,
    )
    with TestClient(create_app(settings, bridge)) as client:
        response = client.get("/api/recommendations", headers={"Authorization": f"Bearer {VIEWER}"})
    assert response.status_code == 200, response.text
    latest = {g["strategy"]: g["latest"] for g in response.json()}
    assert set(latest) == set(ANSWERS)
    got = {name: (r["reason"], r["attention"]) for name, r in latest.items()}
    assert got == {
        "news_attention": (None, True),
        "headline_sentiment": (None, False),
        "funding_extremes": (STALE, None),
        "supertrend": (None, None),
        "ott": (None, None),
    }


def test_demo_report_counts_reasons_and_attention_flags(settings: Settings, tick1: dict[str, RecRow]) -> None:
    from ops.report import _annotations_section, _frames

    recs = _frames(
        settings.database_url.get_secret_value(), settings.kafka.topic_prefix, T0, T0 + timedelta(hours=2)
    )["recs"]
    section = _annotations_section(recs, load_registry(settings.registry_path, import_classes=False))
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in section
        if line.startswith("| ") and not line.startswith("| strategy")
    }
    assert set(rows) == set(ANSWERS)
    # recommendations, no opinion (with a reason), most frequent reason, attention-flagged
    assert rows["news_attention"] == ["1", "0", "", "1"]
    assert rows["headline_sentiment"] == ["1", "0", "", "0"]
    assert rows["funding_extremes"] == ["1", "1", f"`{STALE}`", "0"]
    assert rows["ott"] == ["1", "0", "", "0"]
