"""Read a single-partition topic back from the start: tests and benchmarks check what was published.

Assigns partition 0 directly (no group rebalance), so a read takes milliseconds, not seconds.
A BarClosed comes back as its whole window (``common.bar_stream.WindowAssembler``), whether it
was sent as a keyframe or as a continuation: what every consumer sees, bit for bit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from common import serde
from common.bar_stream import WindowAssembler
from common.events import BarClosed
from common.kafka.configuration import consumer_config
from common.serde_bars import BarWindow, decode_bar_window
from config import Settings


def read_topic(
    settings: Settings, topic: str, *, expect: int | None = None, timeout: float = 20.0, idle: float = 1.5
) -> list[tuple[str | None, Any]]:
    """(key, decoded event) pairs in offset order; stops at ``expect`` messages or after ``idle`` s quiet.

    BarClosed events are whole windows (a continuation assembled onto its chain, then marked as a
    keyframe, like ``WindowAssembler`` hands them to consumers); every other event as decoded.
    """
    consumer = Consumer(consumer_config(settings, f"readback-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[str | None, Any]] = []
    seen: dict[int, bytes] = {}  # offset -> value: what a chain read back needs is already here

    def read_back(_topic: str, _partition: int, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        return ((at, seen[at]) for at in range(start, stop) if at in seen)

    assembler = WindowAssembler(read_back)
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
                at = msg.offset() or 0
                seen[at] = value
                event = serde.decode(value)
                if isinstance(event, BarClosed):
                    part = decode_bar_window(value)
                    event = assembler.window(part, topic, 0, at).to_event()
                out.append((key.decode() if key is not None else None, event))
    finally:
        consumer.close()
    return out


def read_bar_messages(settings: Settings, topic: str, n: int, *, timeout: float = 20.0) -> list[BarWindow]:
    """The first ``n`` bar messages of ``topic`` as sent, in offset order: a continuation is only
    its tail (what tests of the chain itself look at; consumers use :func:`read_topic`'s windows)."""
    consumer = Consumer(consumer_config(settings, f"raw-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[BarWindow] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=500, timeout=0.2)
            out += [decode_bar_window(m.value() or b"") for m in msgs if m.error() is None]
    finally:
        consumer.close()
    return out
