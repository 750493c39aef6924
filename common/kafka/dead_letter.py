"""Dead-letter path: a message that can never be processed is parked with its original bytes.

Keeping the exact key, value and headers (not a re-encoding) means an operator can inspect or
replay it after a fix; the reason says why it was refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import Message

from common.events import DeadLetter
from common.kafka.producer import EventProducer
from common.kafka.topics import DEAD_LETTERS
from common.logging import get_logger
from common.metrics import DEAD_LETTERS as DEAD_LETTER_COUNT
from config import Settings

log = get_logger(__name__)


def _as_bytes(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode()


class DeadLetterSink:
    def __init__(self, settings: Settings, producer: EventProducer, service: str) -> None:
        self._topic = settings.topic(DEAD_LETTERS)
        self._producer = producer
        self._service = service

    @property
    def topic(self) -> str:
        return self._topic

    def send(self, msg: Message, reason: str, error_type: str) -> None:
        raw_headers = cast(list[tuple[str, Any]], msg.headers() or [])
        headers = {k: (_as_bytes(v) or b"") for k, v in raw_headers}
        letter = DeadLetter(
            original_topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            key=_as_bytes(msg.key()),
            value=_as_bytes(msg.value()) or b"",
            headers=headers,
            reason=reason,
            error_type=error_type,
            service=self._service,
            failed_at=datetime.now(UTC),
        )
        self._producer.send(self._topic, letter, key=msg.key())
        DEAD_LETTER_COUNT.labels(self._service, error_type).inc()
        log.warning(
            "dead_lettered",
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            error_type=error_type,
            reason=reason,
        )
