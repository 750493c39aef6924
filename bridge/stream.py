"""Live events for SSE clients: a Kafka consumer thread feeding a bounded ring buffer.

Why a buffer with our own ids rather than Kafka offsets: the bridge reads four topics (one with
several partitions), and a browser-style client can only hand back a single ``Last-Event-ID``.
One monotonically increasing counter over everything the bridge saw gives that, and a
reconnecting client gets exactly what it missed for as long as the buffer still holds it.

On the wire an id is ``<instance>-<counter>``: the instance part is random per bridge process, so
an id handed out by another replica (the Service load-balances reconnects) or by this bridge
before a restart is recognised as foreign instead of being mistaken for a local position. A
client whose id is foreign or no longer in the buffer gets a ``reset`` event first, telling it to
reload state over REST before trusting the stream again, then everything still buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from common import serde
from common.kafka import topics as kt
from common.logging import get_logger
from config import Settings

log = get_logger(__name__)

#: Stream event type per topic (without the deployment prefix).
TOPIC_EVENT_TYPES: dict[str, str] = {
    kt.TICKS: "tick",
    kt.RECOMMENDATIONS: "recommendation",
    kt.INTENTS: "intent",
    kt.EXECUTIONS: "execution",
}
EVENT_TYPES = tuple(TOPIC_EVENT_TYPES.values())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


@dataclass(frozen=True)
class StreamEvent:
    id: int
    type: str
    data: dict[str, Any]

    def to_sse(self, instance: str) -> str:
        """One SSE frame; the JSON payload fits on one ``data:`` line."""
        body = json.dumps(self.data, separators=(",", ":"), allow_nan=False)
        return f"id: {instance}-{self.id}\nevent: {self.type}\ndata: {body}\n\n"


class EventHub:
    """Bounded, thread-safe buffer of recent events with async waiting for SSE handlers."""

    def __init__(self, capacity: int) -> None:
        self._events: deque[StreamEvent] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._last_id = 0
        #: Random per process: tells this bridge's event ids apart from other replicas' and restarts'.
        self.instance = uuid.uuid4().hex[:8]
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.connected = False
        self.closed = False
        self.error: str | None = None

    @property
    def last_id(self) -> int:
        return self._last_id

    def __len__(self) -> int:
        return len(self._events)

    def publish(self, event_type: str, data: dict[str, Any]) -> StreamEvent:
        """Append an event (from the consumer thread) and wake every waiting client."""
        with self._lock:
            self._last_id += 1
            event = StreamEvent(self._last_id, event_type, _jsonable(data))
            self._events.append(event)
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):  # that client's loop closed; it unregisters itself
                loop.call_soon_threadsafe(flag.set)
        return event

    def since(self, last_id: int | None) -> tuple[list[StreamEvent], bool]:
        """Events after ``last_id`` and whether the client must reset (its id is outside the buffer)."""
        with self._lock:
            events = list(self._events)
        if last_id is None:
            return [], False
        oldest = events[0].id if events else self._last_id + 1
        if last_id > self._last_id or last_id < oldest - 1:
            return events, True
        return [e for e in events if e.id > last_id], False

    def close(self) -> None:
        """Tell every open stream to finish (server shutdown must not wait on endless responses)."""
        self.closed = True
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(flag.set)

    def register(self) -> asyncio.Event:
        flag = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), flag))
        return flag

    def unregister(self, flag: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {w for w in self._waiters if w[1] is not flag}


class KafkaFeed:
    """Background thread: consume the live topics from *latest* and publish into the hub.

    Its consumer group is unique per bridge instance (each bridge wants every event, not a share
    of them) and it never commits: where it starts is always "now", so nothing needs remembering.
    """

    def __init__(self, settings: Settings, hub: EventHub, *, poll_timeout: float = 0.5) -> None:
        self._settings = settings
        self._hub = hub
        self._poll_timeout = poll_timeout
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-kafka-feed", daemon=True)
        self._types = {settings.topic(t): name for t, name in TOPIC_EVENT_TYPES.items()}
        self.group_id = f"bridge-{uuid.uuid4().hex[:12]}"

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once partitions are assigned and positioned at their ends (tests wait on this)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        from common.kafka.configuration import consumer_config

        conf = consumer_config(self._settings, self.group_id, from_beginning=False)
        consumer = Consumer(conf)

        def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
            # Position explicitly at the current end, so "ready" really means "will see anything
            # produced from now on" (auto.offset.reset resolves lazily, after the first fetch).
            positioned = []
            for tp in partitions:
                try:
                    _low, high = c.get_watermark_offsets(tp, timeout=5.0)
                    positioned.append(TopicPartition(tp.topic, tp.partition, high))
                except Exception:
                    positioned.append(TopicPartition(tp.topic, tp.partition, OFFSET_END))
            c.assign(positioned)
            self._hub.connected = True
            self._ready.set()

        try:
            consumer.subscribe(list(self._types), on_assign=on_assign)
            while not self._stop.is_set():
                self._poll_once(consumer)
        except Exception as exc:  # the REST side stays up; status shows the stream is broken
            self._hub.error = f"{type(exc).__name__}: {exc}"
            log.error("stream_feed_failed", error=self._hub.error)
        finally:
            self._hub.connected = False
            consumer.close()

    def _poll_once(self, consumer: Any) -> None:
        msg = consumer.poll(self._poll_timeout)
        if msg is None:
            return
        if msg.error():
            self._hub.error = str(msg.error())
            if not msg.error().retriable() and msg.error().fatal():
                raise RuntimeError(self._hub.error)
            return
        self._hub.error = None
        event_type = self._types.get(msg.topic() or "")
        if event_type is None:
            return
        try:
            event = serde.decode(msg.value())
        except Exception as exc:  # a bad message is the producers' problem; skip it, loudly
            log.warning("stream_undecodable", topic=msg.topic(), offset=msg.offset(), error=str(exc))
            return
        data = event.to_dict()
        data["_topic"] = msg.topic()
        data["_received_at"] = datetime.now(UTC)
        self._hub.publish(event_type, data)


#: Returned for an id this bridge did not issue: lower than any buffered id, so it forces a reset.
FOREIGN_ID = -1


def parse_last_event_id(values: Iterable[str | None], instance: str) -> int | None:
    """Counter of the first id given (header before query); FOREIGN_ID for another instance's.

    None means "no id": a fresh client, which starts at the current end of the stream.
    """
    for value in values:
        if value is None or not value.strip():
            continue
        owner, _, counter = value.strip().rpartition("-")
        if owner == instance and counter.isdigit():
            return int(counter)
        return FOREIGN_ID
    return None
