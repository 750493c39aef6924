"""Text Postgres cannot store never reaches a handler: no crash loop on the meta consumer's path.

A recommendation whose strategy name (or indicator key) holds a NUL character decodes fine, but
the meta consumer's batch write (``meta_consumer.store.save_batch``) fails on it, and under
``OnError.STOP`` the loop stopped on it again after every restart. The shared loop now
dead-letters it before any handler runs (``common.kafka.consumer.nul_field``).
"""

from __future__ import annotations

from typing import Any

import pytest

from common import serde, testkit
from common.db.session import make_engine
from common.events import Recommendation
from common.kafka.consumer import ConsumerLoop, OnError
from common.kafka.producer import EventProducer
from common.kafka.topics import RECOMMENDATIONS
from config import Settings
from meta_consumer import store

pytestmark = pytest.mark.integration


def test_nul_text_is_dead_lettered_before_the_database_write(settings: Settings) -> None:
    engine = make_engine(settings.database_url.get_secret_value())
    ns = settings.kafka.topic_prefix
    topic = settings.topic(RECOMMENDATIONS)
    bad_name = testkit.sample_recommendation(strategy="super\x00trend")
    bad_key = testkit.sample_recommendation(strategy="rsi", indicators={"rsi\x00": 1.0})
    good = testkit.sample_recommendation(strategy="macd")
    producer = EventProducer(settings, "test")
    for rec in (bad_name, bad_key, good):
        producer.send(topic, rec, key=rec.tick_id)  # one key: one partition, in order
    producer.flush()

    def save(event: Recommendation, _msg: Any) -> None:
        store.save_batch(engine, ns, [event], [])

    loop = ConsumerLoop(
        settings,
        service="test-meta",
        group_id=f"{ns}nul",
        topics=[topic],
        handler=save,
        producer=producer,
        expected=Recommendation,
        on_error=OnError.STOP,
    )
    stats = loop.run(max_messages=3, idle_timeout=20)
    assert (stats.handled, stats.dead_lettered) == (1, 2)
    assert store.answered(engine, ns, good.tick_id) == {"macd"}
    assert serde.decode(serde.encode(bad_name), Recommendation) == bad_name  # the contract is unchanged
    engine.dispose()
