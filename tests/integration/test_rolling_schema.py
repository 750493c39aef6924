"""Rolling deploy: an intent written with a newer, compatible contract the executor does not ship.

The newer producer (say meta consumer v2, one extra field with a default) writes a fingerprint
the running executor has never seen. Before: dead-lettered and committed, i.e. lost. Now: resolved
from the schema store (filled by every producer at start) and traded; when the store does not have
it either, the executor waits without committing and reports not ready, then trades it in order.
"""

from __future__ import annotations

import copy
import io
import threading
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fastavro import parse_schema, schemaless_writer
from prometheus_client import REGISTRY
from sqlalchemy import select

from common import serde
from common.db.models import AvroSchema
from common.db.session import make_engine, session_scope
from common.events import ExecutionStatus, OrderIntent
from common.kafka.configuration import consumer_config, producer_config
from common.kafka.consumer import schema_probe, unknown_schema_waits
from common.kafka.producer import EventProducer
from common.kafka.topics import INTENTS
from common.shutdown import GracefulShutdown
from config import RiskLimits, Settings
from executor.clock import Clock
from executor.runner import SERVICE, run
from executor.service import Executor
from tests.standin.kit import drain_reports, make_intent, manual_clock, paper_executor, publish

pytestmark = pytest.mark.integration
LIMITS = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, daily_loss_cap_usd=500.0, max_orders_per_hour=40)


def _executor(settings: Settings, clock: Clock) -> Executor:
    """On a manual clock: the intents' ages and hourly budget are the test's, not the wall's."""
    return paper_executor(settings, LIMITS, clock=clock)


class NewerContract:
    """OrderIntent as a newer service version writes it: one more field, with a default (compatible).

    The field name is unique per test so that no other test (or this process' learned schemas)
    already knows the fingerprint.
    """

    def __init__(self) -> None:
        self.field = f"venue_hint_{uuid.uuid4().hex[:8]}"
        raw = copy.deepcopy(serde.load_schema_set().get(OrderIntent.SCHEMA_NAME).raw)
        raw["fields"].append({"name": self.field, "type": "string", "default": "", "doc": "added in v9"})
        self.raw = raw
        self.parsed = parse_schema(raw, named_schemas={})
        self.fingerprint = serde.schema_fingerprint(raw)

    def encode(self, intent: OrderIntent) -> bytes:
        buf = io.BytesIO()
        buf.write(serde.MAGIC + self.fingerprint)
        schemaless_writer(buf, self.parsed, intent.to_dict() | {self.field: "post-only"})
        return buf.getvalue()

    def publish(self, settings: Settings, intent: OrderIntent) -> None:
        producer = EventProducer(settings, "meta-consumer-v9")
        headers = {"schema": OrderIntent.SCHEMA_NAME, "producer": "meta-consumer-v9"}
        producer.send_raw(settings.topic(INTENTS), self.encode(intent), intent.intent_id, headers)
        producer.flush()

    def register(self, settings: Settings) -> None:
        """What the newer producer does at start (``schema_store.register_in_background``)."""
        import json

        engine = make_engine(settings.database_url.get_secret_value())
        with session_scope(engine) as s:
            s.add(
                AvroSchema(
                    fingerprint=self.fingerprint.hex(),
                    name=OrderIntent.SCHEMA_NAME,
                    schema_json=json.dumps(self.raw),
                    registered_by="meta-consumer-v9",
                )
            )
        engine.dispose()


def _committed(settings: Settings) -> int:
    consumer = Consumer(consumer_config(settings, f"{settings.kafka.topic_prefix}{SERVICE}"))
    [tp] = consumer.committed([TopicPartition(settings.topic(INTENTS), 0)], timeout=10)
    consumer.close()
    return int(tp.offset)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_newer_schema_from_the_store_is_traded_not_lost(settings: Settings) -> None:
    """The newer producer registered its schema: the executor resolves it and trades the intent.
    Failed before: dead-lettered ('unknown schema fingerprint') and its offset committed."""
    newer = NewerContract()
    newer.register(settings)
    clock = manual_clock()
    ex = _executor(settings, clock)
    first, second = make_intent(0, 0.5, clock=clock), make_intent(1, 1.0, clock=clock)
    newer.publish(settings, first)
    publish(settings, [second])
    stats = run(ex.settings, ex, max_messages=2, idle_timeout=20)
    assert (stats.handled, stats.dead_lettered) == (2, 0)
    reports = drain_reports(settings, 2)
    assert [r.intent_id for r in reports] == [first.intent_id, second.intent_id]
    assert [r.status for r in reports] == [ExecutionStatus.FILLED] * 2
    assert reports[1].position_after == 1.0 == ex.exchange.fetch_position()
    assert _committed(settings) == 2
    assert newer.fingerprint in serde.learned_schemas()


def test_unknown_schema_waits_uncommitted_then_trades_in_order(settings: Settings) -> None:
    """Not in the store yet: the executor neither trades past it nor commits it; it waits, reports
    not ready (flag + metric) and logs; once the schema is registered, both intents trade in order.
    Failed before: the newer intent was dead-lettered at once and the one after it traded."""
    newer = NewerContract()
    clock = manual_clock()
    ex = _executor(settings, clock)
    first, second = make_intent(0, 0.5, clock=clock), make_intent(1, 1.0, clock=clock)
    newer.publish(settings, first)
    publish(settings, [second])
    shutdown = GracefulShutdown()
    result: dict[str, Any] = {}

    def consume() -> None:
        try:
            result["stats"] = run(ex.settings, ex, max_messages=2, shutdown=shutdown)
        except BaseException as exc:
            result["error"] = exc

    counted_before = _metric("btcmeta_unknown_schema_total", service=SERVICE, topic=settings.topic(INTENTS))
    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not unknown_schema_waits() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        waits = unknown_schema_waits()
        assert waits and newer.fingerprint.hex() in waits[0], (waits, result)
        time.sleep(1.5)  # a few retries: still nothing traded, nothing committed
        assert _metric("btcmeta_unknown_schema_waiting", service=SERVICE) == 1.0
        with pytest.raises(RuntimeError, match="unknown_schema_waiting"):
            schema_probe()  # readiness red
        assert (
            _metric("btcmeta_unknown_schema_total", service=SERVICE, topic=settings.topic(INTENTS))
            > counted_before
        )
        assert drain_reports(settings, 1, timeout=2) == []
        assert _committed(settings) < 0  # no offset committed at all
        newer.register(settings)
        worker.join(timeout=60)
    finally:
        shutdown.request()
        worker.join(timeout=30)
    assert "error" not in result, result
    assert (result["stats"].handled, result["stats"].dead_lettered) == (2, 0)
    reports = drain_reports(settings, 2)
    assert [r.intent_id for r in reports] == [first.intent_id, second.intent_id]
    assert [r.status for r in reports] == [ExecutionStatus.FILLED] * 2
    assert _committed(settings) == 2
    assert unknown_schema_waits() == [] and _metric("btcmeta_unknown_schema_waiting", service=SERVICE) == 0.0
    schema_probe()  # readiness green again


def test_every_producer_registers_its_schemas(settings: Settings) -> None:
    """A producer's start fills the store with every schema its build ships (idempotently)."""
    EventProducer(settings, "any-service")
    engine = make_engine(settings.database_url.get_secret_value())
    want = {sv.fingerprint.hex() for sv in serde.shipped_schemas()}
    deadline = time.monotonic() + 20
    have: set[str] = set()
    while time.monotonic() < deadline and not want <= have:
        with session_scope(engine) as s:
            have = set(s.scalars(select(AvroSchema.fingerprint)))
        time.sleep(0.2)
    engine.dispose()
    assert want <= have


def test_a_wait_mid_batch_rewinds_every_partition(settings: Settings) -> None:
    """A batched loop on a 3-partition topic (like the meta consumer's): after a wait, the messages
    fetched behind the unknown one are fetched again, not skipped (the loop seeks every partition
    of the rest of the batch back). Every message is handled exactly once, each partition in order,
    the unknown one only once the store knows it. Without the seek this fails (messages skipped)."""
    from common import testkit
    from common.events import Recommendation
    from common.kafka.consumer import ConsumerLoop
    from common.kafka.topics import RECOMMENDATIONS

    topic = settings.topic(RECOMMENDATIONS)
    raw = copy.deepcopy(serde.load_schema_set().get(Recommendation.SCHEMA_NAME).raw)
    extra = f"note_{uuid.uuid4().hex[:8]}"
    raw["fields"].append({"name": extra, "type": "string", "default": ""})
    fingerprint = serde.schema_fingerprint(raw)
    # Explicit partitions (a plain librdkafka producer): the unknown one early on partition 0, so
    # its batch holds messages after it.
    raw_producer = Producer(producer_config(settings))
    sent: list[str] = []
    for i in range(30):
        rec = testkit.sample_recommendation(tick_id=f"BTC/USD:USD|2022-08-20T00:{i:02d}Z")
        sent.append(rec.tick_id)
        value = serde.encode(rec)
        if i == 3:
            buf = io.BytesIO()
            buf.write(serde.MAGIC + fingerprint)
            schemaless_writer(buf, parse_schema(raw, named_schemas={}), rec.to_dict() | {extra: "x"})
            value = buf.getvalue()
        raw_producer.produce(
            topic,
            value=value,
            key=rec.tick_id,
            partition=i % 3,
            headers={"schema": Recommendation.SCHEMA_NAME},
        )
    assert raw_producer.flush(30) == 0
    producer = EventProducer(settings, "test-rewind")

    seen: list[tuple[int, int, str]] = []

    def handler(event: Recommendation, msg: Any) -> None:
        seen.append((msg.partition(), msg.offset(), event.tick_id))

    shutdown = GracefulShutdown()
    loop = ConsumerLoop(
        settings,
        service="test-rewind",
        group_id=f"{settings.kafka.topic_prefix}rewind",
        topics=[topic],
        handler=handler,
        producer=producer,
        expected=Recommendation,
        batch_size=100,
        shutdown=shutdown,
        schema_backoff=(0.2, 1.0),
    )
    worker = threading.Thread(target=lambda: loop.run(max_messages=30), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while loop.ready and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not loop.ready
        time.sleep(1.0)
        assert sent[3] not in {t for _, _, t in seen}
        import json

        engine = make_engine(settings.database_url.get_secret_value())
        with session_scope(engine) as s:
            s.add(
                AvroSchema(
                    fingerprint=fingerprint.hex(),
                    name=Recommendation.SCHEMA_NAME,
                    schema_json=json.dumps(raw),
                    registered_by="strategy-v9",
                )
            )
        engine.dispose()
        worker.join(timeout=60)
    finally:
        shutdown.request()
        worker.join(timeout=30)
    assert sorted(t for _, _, t in seen) == sorted(sent)  # each exactly once
    for partition in {p for p, _, _ in seen}:
        offsets = [o for p, o, _ in seen if p == partition]
        assert offsets == sorted(offsets) == list(range(offsets[0], offsets[0] + len(offsets)))
    assert loop.ready
