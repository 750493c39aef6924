"""BarClosed as a chain: keyframes carry the whole window, continuations only its changed tail.

Why: a strategy's window is up to 4,200 bars, and consecutive ticks' windows share all but one.
Sending the whole window every tick cost ~3-4.6 ms of the tick-to-intent p50 (encode, broker,
fetch, decode: ``bench_tick_to_intent.py --lookback``) and made a replay move ~200 KB per bar
message. Since BarClosed v3 the tick emitter sends the whole window only as a *keyframe* (on
start, after any failure, and once the last keyframe is ``bar_keyframe_hours`` old in tick time);
in between, a *continuation* carries the bars from the first one that differs from the previous
message's window (normally just the new bar) plus what a consumer needs to rebuild and check the
whole window: the previous message's tick_id, the keyframe's offset, the window's first open time,
its bar count and a CRC-32 of it (ADR 0028).

Consumers never see the difference: :class:`WindowAssembler` turns every message back into the
whole window, bit for bit what a keyframe would have carried (the CRC proves it per message). A
consumer without the previous window (first message after a start, a rebalance, a rewind) reads
the chain back from its keyframe with a side reader (no consumer group, nothing committed).

The emitter half (:class:`BarChain`) lives here too, so both ends of the contract sit in one file.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from common import serde
from common.serde_bars import COLUMNS, BarWindow, WindowLink, decode_bar_window

__all__ = [
    "BarChain",
    "ChainBroken",
    "ReadBack",
    "WindowAssembler",
    "window_crc",
]

_HOUR_MS = 3_600_000


def window_crc(times: npt.NDArray[Any], columns: Sequence[npt.NDArray[Any]]) -> int:
    """CRC-32 of a window: open times as little-endian int64, then each OHLCV column as float64.

    Bytes, not values: -0.0 and 0.0 (or two NaN payloads) differ here, so a rebuilt window that
    passes is the keyframe's bytes, which is what the parity tests compare.
    """
    crc = zlib.crc32(np.ascontiguousarray(times, dtype="<i8").data)
    for col in columns:
        crc = zlib.crc32(np.ascontiguousarray(col, dtype="<f8").data, crc)
    return crc


# ----------------------------------------------------------------------------- emitter side


@dataclass
class _Sent:
    """What the emitter last sent on one topic, and the keyframe its chain starts from."""

    tick_id: str
    times: npt.NDArray[Any]
    values: npt.NDArray[Any]
    keyframe_tick_ms: int
    #: The keyframe's offset once Kafka acknowledged it; None while unknown (next: a keyframe).
    keyframe_offset: int | None


class BarChain:
    """The emitter's memory of each bars topic: which message the next one continues.

    ``link`` is called just before a bar is produced and assumes it will be delivered; the
    caller calls :meth:`reset` when a produce or flush fails, so the next message of every
    topic is a keyframe again (a consumer can always rebuild from the topic alone).
    """

    def __init__(self, keyframe_hours: float) -> None:
        #: 0: every message is a keyframe (the wire as it was before BarClosed v3).
        self.keyframe_ms = int(keyframe_hours * _HOUR_MS)
        self._sent: dict[str, _Sent] = {}

    def reset(self) -> None:
        self._sent.clear()

    def link(
        self, topic: str, tick_id: str, tick_ms: int, times: npt.NDArray[Any], values: npt.NDArray[Any]
    ) -> tuple[int, WindowLink]:
        """Where the message for this window starts (index into ``times``) and its chain fields.

        ``values`` is ``[n, 5]`` in ``COLUMNS`` order. Index 0 with ``keyframe_offset == -1`` is a
        keyframe; otherwise the message carries ``times[start:]`` and ``values[start:]``.
        """
        crc = window_crc(times, list(values.T))
        n = int(times.shape[0])
        first = int(times[0])
        prev = self._sent.get(topic)
        start = None
        if (
            prev is not None
            and prev.keyframe_offset is not None
            and self.keyframe_ms > 0
            and tick_ms - prev.keyframe_tick_ms < self.keyframe_ms
        ):
            start = _first_change(prev.times, prev.values, times, values)
        # Copies: the caller's arrays may be views of a cache that is later revised in place.
        times, values = np.array(times, dtype=np.int64), np.array(values, dtype=np.float64)
        if start is None:
            self._sent[topic] = _Sent(tick_id, times, values, tick_ms, None)
            return 0, WindowLink(-1, "", first, n, crc)
        assert prev is not None and prev.keyframe_offset is not None
        self._sent[topic] = replace(prev, tick_id=tick_id, times=times, values=values)
        return start, WindowLink(prev.keyframe_offset, prev.tick_id, first, n, crc)

    def delivered(self, topic: str, tick_id: str, offset: int) -> None:
        """Kafka acknowledged ``tick_id``'s message on ``topic`` at ``offset``: continuations of a
        keyframe may only be sent once its offset is known."""
        sent = self._sent.get(topic)
        if sent is not None and sent.keyframe_offset is None and sent.tick_id == tick_id:
            sent.keyframe_offset = offset

    def awaiting_keyframe(self) -> bool:
        """Is a keyframe's offset still unknown (flush before the next tick to continue it)?"""
        return any(s.keyframe_offset is None for s in self._sent.values())


def _first_change(
    prev_times: npt.NDArray[Any],
    prev_values: npt.NDArray[Any],
    times: npt.NDArray[Any],
    values: npt.NDArray[Any],
) -> int | None:
    """Index of the first bar of the new window that the previous window does not hold as is
    (bit for bit), or None when nothing can be shared (the window starts before or after it)."""
    lo = int(np.searchsorted(prev_times, times[0]))
    if lo >= prev_times.shape[0] or prev_times[lo] != times[0]:
        return None
    shared = min(prev_times.shape[0] - lo, times.shape[0])
    same = prev_times[lo : lo + shared] == times[:shared]
    a = np.ascontiguousarray(prev_values[lo : lo + shared]).view(np.int64)
    b = np.ascontiguousarray(values[:shared]).view(np.int64)
    same &= (a == b).all(axis=1)
    diff = np.flatnonzero(~same)
    start = int(diff[0]) if diff.size else shared
    if start == 0:
        return None
    # Always carry the closing bar: its open time is the message's bar_open_time.
    return min(start, int(times.shape[0]) - 1)


# ---------------------------------------------------------------------------- consumer side


class ChainBroken(serde.SerdeError):
    """A continuation cannot be turned into its whole window (the message is dead-lettered)."""


#: ``(topic, partition, start, stop)`` -> the messages at offsets ``[start, stop)``, in order, as
#: ``(offset, value)`` pairs (see ``common.kafka.readback``).
ReadBack = Callable[[str, int, int, int], Iterable[tuple[int, bytes]]]


class WindowAssembler:
    """Turns each BarClosed of one consumer into its whole window.

    Keeps the last few windows per topic partition by tick_id, so a redelivered or rewound
    message continues from memory; anything else reads the chain back from its keyframe.
    """

    def __init__(self, read_back: ReadBack | None, *, keep: int = 8) -> None:
        self._read_back = read_back
        self._keep = keep
        self._recent: dict[tuple[str, int], OrderedDict[str, BarWindow]] = {}
        #: Read-backs done (a metric for tests and logs: continuations should not need them).
        self.read_backs = 0

    def window(self, part: BarWindow, topic: str = "", partition: int = 0, offset: int = -1) -> BarWindow:
        """The whole window of the message ``part`` (decoded from ``topic[partition]@offset``)."""
        if part.is_keyframe:
            self._hold(topic, partition, part)
            return part
        recent = self._recent.get((topic, partition))
        held = recent.get(part.prev_tick_id) if recent else None
        whole = None
        if held is not None:
            try:
                whole = _apply(held, part)
            except ChainBroken:
                whole = None
        if whole is None:
            whole = self._rebuild(part, topic, partition, offset)
        self._hold(topic, partition, whole)
        return whole

    def _hold(self, topic: str, partition: int, window: BarWindow) -> None:
        recent = self._recent.setdefault((topic, partition), OrderedDict())
        recent[window.tick_id] = window
        recent.move_to_end(window.tick_id)
        while len(recent) > self._keep:
            recent.popitem(last=False)

    def _rebuild(self, part: BarWindow, topic: str, partition: int, offset: int) -> BarWindow:
        """Read the chain from its keyframe up to ``part`` and apply it link by link."""
        if self._read_back is None or offset < 0:
            raise ChainBroken(
                f"continuation {part.tick_id} follows {part.prev_tick_id}, which this consumer does not "
                "hold, and it has no way to read the chain back"
            )
        self.read_backs += 1
        start = part.keyframe_offset
        running: BarWindow | None = None
        for at, value in self._read_back(topic, partition, start, offset):
            try:
                msg = decode_bar_window(value)
            except serde.SerdeError:
                continue  # dead-lettered when it was first consumed; not part of any chain
            if msg.symbol != part.symbol or msg.timeframe != part.timeframe:
                continue
            if at == start:
                running = msg if msg.is_keyframe else None
            elif running is not None and msg.keyframe_offset == start and msg.prev_tick_id == running.tick_id:
                running = _apply(running, msg)
            if running is not None:
                self._hold(topic, partition, running)
        if running is None:
            raise ChainBroken(
                f"continuation {part.tick_id}: no keyframe at {topic}[{partition}]@{start} "
                "(deleted by retention, or not a keyframe)"
            )
        if running.tick_id != part.prev_tick_id:
            raise ChainBroken(
                f"continuation {part.tick_id} follows {part.prev_tick_id}, but its chain from "
                f"{topic}[{partition}]@{start} ends at {running.tick_id}"
            )
        return _apply(running, part)


def _apply(prev: BarWindow, part: BarWindow) -> BarWindow:
    """``prev``'s bars from ``window_start`` up to the first carried bar, then the carried bars."""
    lo = int(np.searchsorted(prev.times, part.window_start))
    hi = int(np.searchsorted(prev.times, part.times[0])) if len(part) else prev.times.shape[0]
    times = np.concatenate((prev.times[lo:hi], part.times))
    cols = {c: np.concatenate((prev.columns[c][lo:hi], part.columns[c])) for c in COLUMNS}
    n = int(times.shape[0])
    if n != part.window_bars or (n and int(times[0]) != part.window_start):
        raise ChainBroken(
            f"continuation {part.tick_id}: rebuilt {n} bars from {int(times[0]) if n else None}, "
            f"the message says {part.window_bars} from {part.window_start}"
        )
    if n > 1 and not bool(np.all(times[1:] > times[:-1])):
        raise ChainBroken(f"continuation {part.tick_id}: rebuilt open times are not strictly increasing")
    if window_crc(times, [cols[c] for c in COLUMNS]) != part.window_crc:
        raise ChainBroken(f"continuation {part.tick_id}: rebuilt window fails its CRC-32")
    # The whole window, marked as such: holding it, nothing about it is partial any more.
    return replace(part, times=times, columns=cols, keyframe_offset=-1, prev_tick_id="")
