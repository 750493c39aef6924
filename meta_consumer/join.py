"""When is a tick ready? The in-memory half of the join (the durable half is Postgres).

The joiner only decides *when* to decide: a tick is ready when every due strategy has answered and
(when the decision timeframe closed at this tick) its bar has arrived, or when its wall-clock
deadline has passed. *What* is decided is read from the database at that moment, so the joiner can
be rebuilt after a restart from the tables alone.

Ticks are decided strictly in tick order, because each decision continues the previous one's
portfolio: a complete tick waits behind an older one until that one is complete or timed out.
Recommendations may arrive before their TickPlan (different topics and partitions); they are
remembered by tick id until the plan shows up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from common.ids import parse_tick_id


class Arrival(StrEnum):
    """How a recommendation relates to the ticks known here."""

    PENDING = "pending"  # its tick is waiting for it
    EARLY = "early"  # its TickPlan has not arrived yet
    LATE = "late"  # its tick was already decided: stored, never applied


@dataclass
class PendingTick:
    tick_id: str
    tick_time: datetime
    due: frozenset[str]
    needs_bar: bool
    #: Wall-clock (epoch seconds) moment after which the tick is decided with what arrived.
    deadline: float
    #: Wall-clock moment the plan arrived (for the tick-to-decision latency metric).
    arrived_at: float


@dataclass(frozen=True)
class Ready:
    tick: PendingTick
    timed_out: bool


def tick_time_of(tick_id: str) -> datetime:
    return parse_tick_id(tick_id)[1]


@dataclass
class Joiner:
    last_decided: datetime | None = None
    pending: dict[str, PendingTick] = field(default_factory=dict)
    answered: dict[str, set[str]] = field(default_factory=dict)
    bars: set[str] = field(default_factory=set)

    def is_decided(self, tick_time: datetime) -> bool:
        return self.last_decided is not None and tick_time <= self.last_decided

    def add_plan(self, tick: PendingTick, answered: Iterable[str] = ()) -> bool:
        """Track a tick (``answered``: strategies already stored for it); False if already decided."""
        if self.is_decided(tick.tick_time) or tick.tick_id in self.pending:
            return False
        self.pending[tick.tick_id] = tick
        self.answered.setdefault(tick.tick_id, set()).update(answered)
        return True

    def add_recommendation(self, tick_id: str, strategy: str) -> Arrival:
        if self.is_decided(tick_time_of(tick_id)):
            return Arrival.LATE
        self.answered.setdefault(tick_id, set()).add(strategy)
        return Arrival.PENDING if tick_id in self.pending else Arrival.EARLY

    def add_bar(self, tick_id: str) -> None:
        if not self.is_decided(tick_time_of(tick_id)):
            self.bars.add(tick_id)

    def is_complete(self, tick: PendingTick) -> bool:
        got = self.answered.get(tick.tick_id, set())
        return tick.due <= got and (not tick.needs_bar or tick.tick_id in self.bars)

    def ready(self, now: float) -> list[Ready]:
        """Ticks to decide now, oldest first; stops at the first one that must still wait."""
        out: list[Ready] = []
        for tick in sorted(self.pending.values(), key=lambda t: t.tick_time):
            if self.is_complete(tick):
                out.append(Ready(tick, timed_out=False))
            elif now >= tick.deadline:
                out.append(Ready(tick, timed_out=True))
            else:
                break
        return out

    def next_deadline(self) -> float | None:
        return min((t.deadline for t in self.pending.values()), default=None)

    def mark_decided(self, tick_id: str, tick_time: datetime) -> None:
        """Forget the tick and everything at or before it (later arrivals for those are late)."""
        self.pending.pop(tick_id, None)
        if self.last_decided is None or tick_time > self.last_decided:
            self.last_decided = tick_time
        for tid in [t for t in self.answered if tick_time_of(t) <= tick_time]:
            del self.answered[tid]
        self.bars = {t for t in self.bars if tick_time_of(t) > tick_time}
        for tid in [t for t, p in self.pending.items() if p.tick_time <= tick_time]:
            del self.pending[tid]
