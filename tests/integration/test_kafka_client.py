"""The Kafka client layer against the real broker: every event type, DLQ, commit-after-work, topics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from common import serde
from common.events import DeadLetter, OrderIntent
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.consumer import ConsumerLoop, OnError, PoisonMessage
from common.kafka.producer import EventProducer
from common.kafka.topics import (
    DEAD_LETTERS,
    EXECUTIONS,
    INTENTS,
    RECOMMENDATIONS,
    TICKS,
    TopicMismatch,
    TopicSpec,
    bars_topic,
    ensure_topics,
    topic_specs,
)
from common.testkit import all_samples, sample_order_intent
from config import Settings

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

TOPIC_FOR = {
    "btcmeta.TickPlan": TICKS,
    "btcmeta.BarClosed": bars_topic("1h"),
    "btcmeta.Recommendation": RECOMMENDATIONS,
    "btcmeta.OrderIntent": INTENTS,
    "btcmeta.ExecutionReport": EXECUTIONS,
    "btcmeta.DeadLetter": DEAD_LETTERS,
}


def _drain(settings: Settings, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    """Read ``n`` raw messages from the start of ``topic`` with a throwaway group."""
    consumer = Consumer(consumer_config(settings, f"drain-{time.monotonic_ns()}"))
    consumer.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            got.append(msg)
    consumer.close()
    return got


def _committed(settings: Settings, group: str, topic: str) -> int:
    consumer = Consumer(consumer_config(settings, group))
    [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    consumer.close()
    return tp.offset


def test_every_event_type_round_trips_through_kafka(settings: Settings) -> None:
    producer = EventProducer(settings, "test")
    samples = all_samples()
    for event in samples:
        producer.send(settings.topic(TOPIC_FOR[event.SCHEMA_NAME]), event, key="k")
    producer.flush()
    assert {e.SCHEMA_NAME for e in samples} == set(TOPIC_FOR)
    for event in samples:
        [msg] = _drain(settings, settings.topic(TOPIC_FOR[event.SCHEMA_NAME]), 1)
        assert serde.decode(msg.value(), type(event)) == event
        assert dict(msg.headers())["schema"] == event.SCHEMA_NAME.encode()


def test_garbage_and_poison_go_to_dead_letter_with_original_bytes(settings: Settings) -> None:
    topic = settings.topic(INTENTS)
    producer = EventProducer(settings, "test")
    good = sample_order_intent()
    poison = sample_order_intent(intent_id="poison|1", tick_id="poison")
    garbage = b"\xc3\x01not-avro-at-all"
    producer.send(topic, good, key=good.tick_id)
    producer.send_raw(topic, garbage, key=b"g")
    producer.send_raw(topic, b"\x00", key=b"t")
    producer.send(topic, poison, key=poison.tick_id)
    producer.send(topic, good, key=good.tick_id)
    producer.flush()

    seen: list[str] = []

    def handler(event: OrderIntent, _msg: Any) -> None:
        if event.tick_id == "poison":
            raise PoisonMessage("tick 'poison' is not a tick")
        seen.append(event.intent_id)

    loop = ConsumerLoop(
        settings,
        service="test",
        group_id="g-dlq",
        topics=[topic],
        handler=handler,
        producer=producer,
        expected=OrderIntent,
    )
    stats = loop.run(max_messages=5, idle_timeout=20)
    assert seen == [good.intent_id, good.intent_id]
    assert (stats.handled, stats.dead_lettered) == (2, 3)

    letters = [serde.decode(m.value(), DeadLetter) for m in _drain(settings, settings.topic(DEAD_LETTERS), 3)]
    assert [dl.value for dl in letters] == [garbage, b"\x00", serde.encode(poison)]
    assert [dl.error_type for dl in letters] == ["SerdeError", "SerdeError", "PoisonMessage"]
    assert "truncated" in letters[1].reason and "not a tick" in letters[2].reason
    assert all(dl.original_topic == topic for dl in letters)
    assert [dl.offset for dl in letters] == [1, 2, 3]
    assert _committed(settings, "g-dlq", topic) == 5


def test_offsets_are_committed_only_after_the_work(settings: Settings) -> None:
    topic = settings.topic(INTENTS)
    producer = EventProducer(settings, "test")
    for i in range(4):
        producer.send(topic, sample_order_intent(intent_id=f"i{i}"), key="k")
    producer.flush()

    def failing(event: OrderIntent, _msg: Any) -> None:
        if event.intent_id == "i2":
            raise RuntimeError("exchange unreachable")

    loop = ConsumerLoop(
        settings,
        service="test",
        group_id="g-stop",
        topics=[topic],
        handler=failing,
        producer=producer,
        expected=OrderIntent,
        on_error=OnError.STOP,
        batch_size=10,
    )
    with pytest.raises(RuntimeError, match="exchange unreachable"):
        loop.run(max_messages=4, idle_timeout=20)
    # i0 and i1 are done and committed; i2 failed and must be delivered again.
    assert _committed(settings, "g-stop", topic) == 2
    again: list[str] = []
    ConsumerLoop(
        settings,
        service="test",
        group_id="g-stop",
        topics=[topic],
        handler=lambda e, _m: again.append(e.intent_id),
        producer=producer,
        expected=OrderIntent,
    ).run(max_messages=2, idle_timeout=20)
    assert again == ["i2", "i3"]


def test_topic_creation_is_idempotent_and_checks_partitions(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings))
    specs = topic_specs(settings, ["1h", "2h"])  # 2h: a timeframe no registry entry uses
    first = ensure_topics(admin, specs)
    assert first == [settings.topic(bars_topic("2h"))]  # the rest was created by the fixture
    assert ensure_topics(admin, specs) == []
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[settings.topic(INTENTS)].partitions) == 1
    assert len(meta[settings.topic(RECOMMENDATIONS)].partitions) == 3
    with pytest.raises(TopicMismatch, match="partitions"):
        ensure_topics(admin, [TopicSpec(settings.topic(INTENTS), 2)])


def test_a_loop_started_before_its_topic_exists_waits_not_ready_then_consumes(settings: Settings) -> None:
    """A strategy started before ``ops topics`` (or the replay) made its bars topic used to exit
    with UNKNOWN_TOPIC_OR_PART; it must wait, alive and not ready, and consume once the topic exists."""
    from common.health import HEALTH

    topic = settings.topic(bars_topic("7h"))  # no registry timeframe: the fixture did not create it
    producer = EventProducer(settings, "test")
    handled: list[str] = []
    loop = ConsumerLoop(
        settings,
        service="test-late-topic",
        group_id="g-late-topic",
        topics=[topic],
        handler=lambda e, _m: handled.append(e.intent_id),
        producer=producer,
        expected=OrderIntent,
    )
    failed: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:  # the old loop raised KafkaException here
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while loop.waiting_for_topics is None and not failed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not failed, failed
        assert loop.waiting_for_topics == topic
        time.sleep(1.5)  # a few retries: still waiting, still alive, not ready
        assert thread.is_alive() and not failed and loop.waiting_for_topics == topic
        assert HEALTH.live().ok
        ready = HEALTH.ready()
        assert not ready.ok and "waiting for topics" in str(ready.detail["dependencies"]["topics"]["error"])

        ensure_topics(AdminClient(admin_config(settings)), [TopicSpec(topic, 1)])
        producer.send(topic, sample_order_intent(intent_id="late-1"), key="k")
        producer.flush()
        deadline = time.monotonic() + 30
        while handled != ["late-1"] and not failed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not failed, failed
        assert handled == ["late-1"] and loop.waiting_for_topics is None
        deadline = time.monotonic() + 10  # the probe runs every second
        while not HEALTH.ready().detail["dependencies"]["topics"]["ok"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert HEALTH.ready().detail["dependencies"]["topics"]["ok"]
    finally:
        loop.shutdown.request()
        thread.join(timeout=15)
    assert not thread.is_alive() and not failed


def test_sigterm_finishes_batch_commits_and_exits_cleanly(settings: Settings, tmp_path: Path) -> None:
    topic = settings.topic(INTENTS)
    producer = EventProducer(settings, "test")
    for i in range(3):
        producer.send(topic, sample_order_intent(intent_id=f"s{i}"), key="k")
    producer.flush()
    marker = tmp_path / "handled"
    script = tmp_path / "svc.py"
    script.write_text(
        "import sys\n"
        "from common.kafka.consumer import ConsumerLoop\n"
        "from common.kafka.producer import EventProducer\n"
        "from common.logging import configure_logging\n"
        "from config import load_settings\n"
        "configure_logging('svc')\n"
        "s = load_settings()\n"
        "def h(e, m):\n"
        f"    open({str(marker)!r}, 'a').write(e.intent_id + chr(10))\n"
        f"loop = ConsumerLoop(s, service='svc', group_id='g-term', topics=[{topic!r}], handler=h,\n"
        "                    producer=EventProducer(s, 'svc'))\n"
        "loop.shutdown.install()\n"
        "loop.run()\n"
        "print('clean-exit', loop.stats.handled)\n"
    )
    env = os.environ | {
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),  # heartbeats: the test's DB
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60  # a subprocess's imports and group join, on a loaded box
    while time.monotonic() < deadline and (not marker.exists() or len(marker.read_text().split()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "clean-exit 3" in out
    assert marker.read_text().split() == ["s0", "s1", "s2"]
    assert _committed(settings, "g-term", topic) == 3


def test_consume_loop_writes_a_heartbeat_the_bridge_can_show(settings: Settings) -> None:
    from sqlalchemy import select

    from common.db.models import ServiceHeartbeat
    from common.db.session import make_engine, session_scope

    topic = settings.topic(INTENTS)
    producer = EventProducer(settings, "test")
    producer.send(topic, sample_order_intent(intent_id="hb1"), key="k")
    producer.flush()
    loop = ConsumerLoop(
        settings,
        service="hb-svc",
        group_id="g-hb",
        topics=[topic],
        handler=lambda _e, _m: None,
        producer=producer,
        expected=OrderIntent,
    )
    loop.run(max_messages=1, idle_timeout=20)
    with session_scope(make_engine(settings.database_url.get_secret_value())) as s:
        rows = s.scalars(
            select(ServiceHeartbeat).where(ServiceHeartbeat.service == f"{settings.kafka.topic_prefix}hb-svc")
        ).all()
    assert len(rows) == 1
    assert rows[0].info is not None and rows[0].info["topics"] == [topic]
    assert rows[0].lag is not None and rows[0].lag >= 0


def test_loop_hands_over_a_lone_message_at_once_and_still_batches_a_backlog(settings: Settings) -> None:
    """A partial batch must not wait out the poll timeout (that was 50 ms on every live tick)."""
    import threading

    topic = settings.topic(INTENTS)
    producer = EventProducer(settings, "test")
    for i in range(50):  # a backlog before the loop starts: taken in a few batches, not 50
        producer.send(topic, sample_order_intent(intent_id=f"b{i}"), key="k")
    producer.flush()
    handled: dict[str, float] = {}
    batches: list[int] = []
    loop = ConsumerLoop(
        settings,
        service="test",
        group_id="g-latency",
        topics=[topic],
        handler=lambda e, _m: handled.__setitem__(e.intent_id, time.monotonic()),
        producer=producer,
        expected=OrderIntent,
        batch_size=100,
        poll_timeout=5.0,  # the old loop would hold a lone message this long
        after_batch=lambda: batches.append(len(handled)),
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(handled) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(handled) == 50
        assert len(batches) < 10, f"the backlog was taken one message at a time: {batches}"
        for i in range(3):
            producer.send(topic, sample_order_intent(intent_id=f"lone{i}"), key="k")
            producer.flush()
            sent = time.monotonic()
            while f"lone{i}" not in handled and time.monotonic() - sent < 10:
                time.sleep(0.001)
            assert f"lone{i}" in handled
            # The old loop held a lone message for the whole poll_timeout (5 s).
            assert handled[f"lone{i}"] - sent < 2.5, "a lone message waited for the batch to fill"
    finally:
        loop.shutdown.request()
        thread.join(timeout=15)


def test_a_commit_that_never_returns_replaces_the_client_and_loses_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka's synchronous commit can wait forever on a coordinator connection that never
    recovers (chaos suite, after a frozen broker). The loop must give up on that client, join again
    with a fresh one and re-read from the last committed offset: every message handled, none lost.
    """
    from common.kafka import consumer as consumer_mod

    topic = settings.topic(INTENTS)
    producer = EventProducer(settings, "test")
    for i in range(6):
        producer.send(topic, sample_order_intent(intent_id=f"w{i}"), key="k")
    producer.flush()
    seen: list[str] = []
    loop = ConsumerLoop(
        settings,
        service="test-wedge",
        group_id="g-wedge",
        topics=[topic],
        handler=lambda e, _m: seen.append(e.intent_id),
        producer=producer,
        expected=OrderIntent,
        batch_size=3,
    )
    monkeypatch.setattr(consumer_mod, "COMMIT_TIMEOUT_S", 2.0)
    # The commit worker is busy with something that never ends: the first commit cannot return,
    # exactly what a wedged client looks like from the loop.
    stuck = threading.Event()
    first_client = loop._consumer
    loop._committer.submit(stuck.wait)
    try:
        loop.run(max_messages=9, idle_timeout=20)  # 3 handled then re-read after the switch, +6
    finally:
        stuck.set()
    assert loop._consumer is not first_client
    assert set(seen) == {f"w{i}" for i in range(6)}
    assert seen[:3] == seen[3:6] == ["w0", "w1", "w2"]  # the uncommitted batch came back once
    assert _committed(settings, "g-wedge", topic) == 6
    assert consumer_mod.COMMITS_LOST.labels("test-wedge")._value.get() == 1
