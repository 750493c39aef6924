"""Read a single-partition topic back from the start: tests and benchmarks check what was published.

Assigns partition 0 directly (no group rebalance), so a read takes milliseconds, not seconds.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from common import serde
from common.kafka.configuration import consumer_config
from config import Settings


def read_topic(
    settings: Settings, topic: str, *, expect: int | None = None, timeout: float = 20.0, idle: float = 1.5
) -> list[tuple[str | None, Any]]:
    """(key, decoded event) pairs in offset order; stops at ``expect`` messages or after ``idle`` s quiet."""
    consumer = Consumer(consumer_config(settings, f"readback-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[str | None, Any]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and (expect is None or len(out) < expect):
            msgs = consumer.consume(num_messages=500, timeout=0.2)
            if not msgs:
                if expect is None and time.monotonic() - last > idle:
                    break
                continue
            last = time.monotonic()
            for msg in msgs:
                value = msg.value()
                if msg.error() or value is None:
                    continue
                key = msg.key()
                out.append((key.decode() if key is not None else None, serde.decode(value)))
    finally:
        consumer.close()
    return out
