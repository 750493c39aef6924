"""The consume loop every service uses: decode, handle, flush outputs, then commit.

Order of operations is the whole point. Offsets are committed only after the handler's work and
every message it produced are acknowledged, so a crash at any moment re-delivers (never loses) the
input; outputs carry deterministic ids so downstream ignores the re-delivery. Input that can never
be processed (undecodable bytes, a :class:`PoisonMessage`) goes to the dead-letter topic with its
original bytes and the reason, and the loop keeps going.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from common import serde
from common.heartbeat import Heartbeat
from common.kafka.configuration import consumer_config
from common.kafka.dead_letter import DeadLetterSink
from common.kafka.producer import EventProducer
from common.logging import get_logger
from common.metrics import CONSUMER_LAG, HANDLE_SECONDS, HEARTBEAT, MESSAGES_CONSUMED
from common.shutdown import GracefulShutdown
from config import Settings

log = get_logger(__name__)

Handler = Callable[[Any, Message], None]


class PoisonMessage(Exception):
    """Raised by a handler for input that will never succeed (bad content, not a transient failure)."""


class OnError(StrEnum):
    #: Unexpected handler errors dead-letter the message and the loop goes on (strategies, meta).
    DEAD_LETTER = "dead_letter"
    #: Unexpected handler errors stop the loop without committing the message (the executor:
    #: when in doubt, do not trade, and do not skip an order either).
    STOP = "stop"


@dataclass
class LoopStats:
    handled: int = 0
    dead_lettered: int = 0


class ConsumerLoop:
    def __init__(
        self,
        settings: Settings,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        handler: Handler,
        producer: EventProducer,
        expected: type | None = None,
        on_error: OnError = OnError.DEAD_LETTER,
        batch_size: int = 100,
        shutdown: GracefulShutdown | None = None,
        from_beginning: bool = True,
        after_batch: Callable[[], None] | None = None,
        extra_config: dict[str, Any] | None = None,
        poll_timeout: float = 0.05,
        heartbeat: bool = True,
        decoder: Callable[[bytes], Any] | None = None,
    ) -> None:
        # decoder: bytes -> event, raising serde.SerdeError for bad input (dead-lettered); default
        # is the generic serde.decode with ``expected``. Strategies pass the array bar decoder.
        # extra_config: e.g. group.instance.id (static membership) so a restarted singleton gets
        # its partitions back at once instead of waiting out the old session.
        conf = consumer_config(settings, group_id, from_beginning=from_beginning) | (extra_config or {})
        self._consumer = Consumer(conf)
        self._poll_timeout = poll_timeout
        self._topics = topics
        self._handler = handler
        self._producer = producer
        self._dlq = DeadLetterSink(settings, producer, service)
        self._expected = expected
        self._decode = decoder or self._decode_generic
        self._on_error = on_error
        self._batch_size = batch_size
        self._service = service
        self.shutdown = shutdown or GracefulShutdown()
        self._after_batch = after_batch
        self.stats = LoopStats()
        self._last_lag_check = 0.0
        self._heartbeat = Heartbeat(settings, service) if heartbeat else None
        self._last_msg_ts: float | None = None

    def run(self, *, max_messages: int | None = None, idle_timeout: float | None = None) -> LoopStats:
        """Consume until shutdown, ``max_messages`` handled, or nothing arrived for ``idle_timeout`` s."""
        self._consumer.subscribe(self._topics)
        log.info("consumer_started", topics=self._topics)
        last_activity = time.monotonic()
        try:
            while not self.shutdown.requested:
                if max_messages is not None and self.stats.handled + self.stats.dead_lettered >= max_messages:
                    break
                want = self._batch_size
                if max_messages is not None:
                    want = min(want, max_messages - self.stats.handled - self.stats.dead_lettered)
                batch = self._next_batch(want)
                HEARTBEAT.labels(self._service).set_to_current_time()
                self._beat()
                if not batch:
                    if idle_timeout is not None and time.monotonic() - last_activity > idle_timeout:
                        break
                    continue
                last_activity = time.monotonic()
                self._process_batch(batch)
                self._report_lag()
        finally:
            self._close()
        return self.stats

    def _next_batch(self, want: int) -> list[Message]:
        """Whatever is already fetched (up to ``want``), else wait for the first message only.

        librdkafka's ``consume(n, timeout)`` returns when ``n`` messages are there or the timeout
        passed, so asking for a batch with a timeout waited out the whole timeout whenever fewer
        than ``n`` messages came (every live tick). Here the wait ends at the first message; what
        arrived with it is taken without waiting, so batches still form under load.
        """
        batch = self._consumer.consume(num_messages=want, timeout=0)
        if batch:
            return batch
        batch = self._consumer.consume(num_messages=1, timeout=self._poll_timeout)
        if batch and want > 1:
            batch += self._consumer.consume(num_messages=want - 1, timeout=0)
        return batch

    def _process_batch(self, batch: list[Message]) -> None:
        done: list[Message] = []
        try:
            for msg in batch:
                if self._is_transport_event(msg):
                    continue
                self._process_one(msg)
                done.append(msg)
        finally:
            # Commit what is fully done even when a later message stops the loop.
            if done:
                self._producer.flush()
                if self._after_batch is not None:
                    self._after_batch()
                self._commit(done)

    def dead_letter(self, msg: Message, reason: str, error_type: str) -> None:
        """Dead-letter a message the handler accepted but the after-batch step could not process
        (a handler that answers per batch); it is counted as dead-lettered instead of handled."""
        self._dlq.send(msg, reason, error_type)
        self.stats.dead_lettered += 1
        self.stats.handled -= 1

    def _is_transport_event(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.code() == KafkaError._PARTITION_EOF:
            return True
        if err.fatal() or not err.retriable():
            raise KafkaException(err)
        log.warning("consumer_transient_error", error=str(err))
        return True

    def _process_one(self, msg: Message) -> None:
        topic = msg.topic() or "?"
        started = time.perf_counter()
        try:
            event = self._decode(msg.value() or b"")
        except serde.SerdeError as exc:
            self._dlq.send(msg, str(exc), "SerdeError")
            self.stats.dead_lettered += 1
            return
        try:
            self._handler(event, msg)
        except PoisonMessage as exc:
            self._dlq.send(msg, str(exc), "PoisonMessage")
            self.stats.dead_lettered += 1
            return
        except Exception as exc:
            if self._on_error is OnError.STOP:
                log.error("handler_failed_stopping", topic=topic, offset=msg.offset(), error=repr(exc))
                raise
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
            self._dlq.send(msg, reason, type(exc).__name__)
            self.stats.dead_lettered += 1
            return
        ts_type, ts_ms = msg.timestamp()
        if ts_type and ts_ms > 0:
            self._last_msg_ts = ts_ms / 1000.0
        MESSAGES_CONSUMED.labels(self._service, topic).inc()
        HANDLE_SECONDS.labels(self._service, topic).observe(time.perf_counter() - started)
        self.stats.handled += 1

    def _decode_generic(self, data: bytes) -> Any:
        return serde.decode(data, self._expected)

    def _commit(self, done: list[Message]) -> None:
        latest: dict[tuple[str, int], int] = {}
        for msg in done:
            tp = (msg.topic() or "", msg.partition() or 0)
            latest[tp] = max(latest.get(tp, -1), msg.offset() or 0)
        offsets = [TopicPartition(t, p, off + 1) for (t, p), off in latest.items()]
        self._consumer.commit(offsets=offsets, asynchronous=False)

    def _beat(self) -> None:
        """Liveness row for the bridge: seconds behind = age of the last message while a backlog exists."""
        if self._heartbeat is None or not self._heartbeat.due():
            return
        backlog = 0
        for tp in self._consumer.assignment():
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=True)
            pos = self._consumer.position([tp])[0].offset
            if pos >= 0 and high >= 0:
                backlog += max(0, high - pos)
        behind = (
            0.0 if backlog == 0 or self._last_msg_ts is None else max(0.0, time.time() - self._last_msg_ts)
        )
        self._heartbeat.beat(
            behind,
            {
                "backlog_messages": backlog,
                "handled": self.stats.handled,
                "dead_lettered": self.stats.dead_lettered,
                "topics": self._topics,
            },
        )

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag_check < 5.0:
            return
        self._last_lag_check = now
        for tp in self._consumer.assignment():
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=True)
            pos = self._consumer.position([tp])[0].offset
            if pos >= 0 and high >= 0:
                CONSUMER_LAG.labels(self._service, tp.topic).set(max(0, high - pos))

    def _close(self) -> None:
        try:
            self._producer.flush()
        finally:
            self._consumer.close()
            log.info("consumer_stopped", handled=self.stats.handled, dead_lettered=self.stats.dead_lettered)
