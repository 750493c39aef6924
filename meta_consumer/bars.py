"""Reads the decision timeframe's BarClosed topic for the model portfolio's marks.

Why a separate consumer that never commits: a bar is part of a tick's join state, but there is no
table for it, and the shared consume loop commits every message it handles. Kafka itself is the
durable store instead: each decision row records the offset of the bar it used, and after a
restart this reader resumes from there (bars are single-partition and in tick order, so every bar
of an undecided tick lies after that offset).
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from common import serde
from common.bar_stream import WindowAssembler
from common.kafka.configuration import consumer_config
from common.kafka.readback import PartitionReadBack, ReadBackError
from common.kafka.topics import bars_topic
from common.logging import get_logger
from common.serde_bars import decode_bar_window
from config import Settings
from meta_consumer.decide import BAR_CLOSES, Mark

log = get_logger(__name__)


class BarReader:
    def __init__(self, settings: Settings, timeframe: str, group_id: str, start_offset: int | None) -> None:
        self.topic = settings.topic(bars_topic(timeframe))
        self._symbol = settings.symbol
        self._consumer = Consumer(consumer_config(settings, f"{group_id}-bars"))
        offset = start_offset if start_offset is not None and start_offset >= 0 else OFFSET_BEGINNING
        self._consumer.assign([TopicPartition(self.topic, 0, offset)])
        self._warned_at = 0.0
        #: Continuations (BarClosed v3) become whole windows; resuming at a stored offset reads the
        #: chain back from its keyframe first (ADR 0028).
        self._assembler = WindowAssembler(PartitionReadBack(settings, f"{group_id}-bars"))
        self._closes = SharedCloses()
        log.info("bar_reader_started", topic=self.topic, offset=offset)

    def poll(self, max_messages: int = 50) -> list[Mark]:
        """Marks of the bars that arrived since the last call (never blocks)."""
        marks: list[Mark] = []
        for msg in self._consumer.consume(num_messages=max_messages, timeout=0):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF and time.monotonic() - self._warned_at > 60:
                    self._warned_at = time.monotonic()  # polled every 20 ms: say it once a minute
                    log.warning("bar_reader_error", topic=self.topic, error=str(err))
                continue
            try:
                part = decode_bar_window(msg.value() or b"")
                bar = self._assembler.window(part, self.topic, 0, msg.offset() or 0)
            except (serde.SerdeError, ReadBackError) as exc:  # ChainBroken is a SerdeError
                log.error("bar_undecodable", offset=msg.offset(), error=str(exc))
                continue
            if bar.symbol != self._symbol or not len(bar):
                continue
            marks.append(Mark(bar.tick_id, self._closes(bar.close[-BAR_CLOSES:]), msg.offset() or 0))
        return marks

    def close(self) -> None:
        self._consumer.close()


class SharedCloses:
    """Close windows as tuples of floats, sharing the float objects of the previous tuple.

    Consecutive windows overlap in all but one close. Building each mark's 721 floats anew
    made every tick allocate and free ~17 KB of small objects between the service's long-lived
    ones; over a long replay the allocator's arenas fragmented, and the meta consumer's resident
    memory grew ~8-10 KB per tick (517 MB over the whole dataset; the Python heap itself stayed
    flat). The values are equal bit for bit, so the marks are exactly as before.
    """

    def __init__(self) -> None:
        #: The last window, as an array and as the tuple handed out.
        self._last: tuple[npt.NDArray[np.float64], tuple[float, ...]] | None = None

    def __call__(self, window: npt.NDArray[np.float64]) -> tuple[float, ...]:
        last = self._last
        if (
            last is not None
            and len(window) == len(last[0])
            and len(window) > 1
            and window[:-1].tobytes() == last[0][1:].tobytes()  # bit for bit: -0.0, NaN
        ):
            closes = (*last[1][1:], float(window[-1]))
        else:
            closes = tuple(window.tolist())
        self._last = (window.copy(), closes)
        return closes
