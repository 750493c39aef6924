"""Idempotent Avro producer: encode with the shared serde, deliver with acks=all, fail loudly.

A delivery failure is raised at ``flush`` so the caller's consume loop never commits the input
whose output was lost (at-least-once; downstream deduplicates by deterministic ids).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from common import serde
from common.kafka.configuration import producer_config
from common.logging import get_logger
from common.metrics import MESSAGES_PRODUCED, PRODUCE_ERRORS
from common.schema_store import register_in_background
from config import Settings

log = get_logger(__name__)


class ProduceError(RuntimeError):
    """One or more messages were not delivered; the input that caused them must not be committed."""


class EventProducer:
    def __init__(
        self,
        settings: Settings,
        service: str,
        *,
        linger_ms: float = 0.0,
        compression: str = "lz4",
        batch_bytes: int | None = None,
    ) -> None:
        conf = producer_config(
            settings, linger_ms=linger_ms, compression=compression, batch_bytes=batch_bytes
        )
        self._producer = Producer(conf)
        self._service = service
        self._failures: list[str] = []
        # Consumers older than this build must be able to resolve what it writes (schema store).
        register_in_background(settings, service)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        if err is not None:
            PRODUCE_ERRORS.labels(self._service, topic).inc()
            self._failures.append(f"{topic}: {err}")
            log.error("delivery_failed", topic=topic, error=str(err))
        else:
            MESSAGES_PRODUCED.labels(self._service, topic).inc()

    def send(
        self,
        topic: str,
        event: Any,
        key: str | bytes | None = None,
        *,
        on_delivered: Callable[[Message], None] | None = None,
    ) -> None:
        """Encode ``event`` (a ``common.events`` dataclass) and queue it for ``topic``."""
        headers = {"schema": event.SCHEMA_NAME, "producer": self._service}
        self.send_raw(topic, serde.encode(event), key, headers, on_delivered=on_delivered)

    def send_raw(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        headers: dict[str, Any] | None = None,
        *,
        on_delivered: Callable[[Message], None] | None = None,
    ) -> None:
        """Queue ``value``; ``on_delivered`` gets the acknowledged message (its offset) on success."""
        report = self._on_delivery
        if on_delivered is not None:

            def report(err: KafkaError | None, msg: Message) -> None:
                self._on_delivery(err, msg)
                if err is None:
                    on_delivered(msg)

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry this message.
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything queued is acknowledged; raise if anything failed or is still pending."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise ProduceError(f"{remaining} message(s) not delivered within {timeout}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise ProduceError("; ".join(failures[:5]))

    def close(self) -> None:
        self.flush()
