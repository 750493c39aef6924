"""A side reader for a range of one partition: how a consumer rebuilds a bar chain.

Why not the consumer's own client: seeking it back would re-deliver everything after the
keyframe to the handler and move the group's position. A second, group-less client assigned to
the range reads what is needed and is closed again; it commits nothing (``common.bar_stream``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, TopicPartition

from common.kafka.configuration import consumer_config
from common.logging import get_logger
from config import Settings

log = get_logger(__name__)


class ReadBackError(RuntimeError):
    """The range could not be read in time (the broker is unreachable or the range is gone)."""


class PartitionReadBack:
    """``(topic, partition, start, stop)`` -> the committed messages at offsets ``[start, stop)``."""

    def __init__(self, settings: Settings, service: str, *, timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._service = service
        self._timeout_s = timeout_s

    def __call__(self, topic: str, partition: int, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        if stop <= start:
            return
        conf = consumer_config(self._settings, f"{self._service}-readback") | {"enable.partition.eof": True}
        client = Consumer(conf)
        started = time.monotonic()
        try:
            client.assign([TopicPartition(topic, partition, start)])
            while True:
                if time.monotonic() - started > self._timeout_s:
                    why = f"not read within {self._timeout_s}s"
                    raise ReadBackError(f"{topic}[{partition}] {start}..{stop}: {why}")
                msg = client.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return  # nothing more is committed: the range ends before ``stop``
                    raise ReadBackError(f"{topic}[{partition}] {start}..{stop}: {err}")
                at = msg.offset() or 0
                if at >= stop:
                    return
                yield at, msg.value() or b""
                if at == stop - 1:
                    return
        finally:
            client.close()
            log.info(
                "chain_read_back",
                topic=topic,
                partition=partition,
                start=start,
                stop=stop,
                seconds=round(time.monotonic() - started, 3),
            )
