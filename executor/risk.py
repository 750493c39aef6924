"""Pre-trade risk: a pure function from (intent, book, switches, clock) to a plan of orders.

Pure on purpose: no database, no exchange, no clock of its own. The service gathers the facts and
this module decides, so every limit can be property-tested exhaustively and a replay decides
exactly as live did for the same facts.

Decisions taken here (see docs/decisions/0007-executor-exactly-once.md):

* Position limit: the target is ``clip(target_exposure, ±max_exposure) * max_position_btc``, so
  the planned position can never exceed the limit. A book already beyond the limit (limits were
  lowered) may only move towards it.
* Order size: a move larger than ``max_order_btc`` is SPLIT into equal-or-smaller legs of at most
  ``max_order_btc`` (not clipped): the policy asked for a position, and clipping would silently
  leave the book somewhere nobody chose. Legs are still bounded by the hourly order budget.
* Hourly order budget: when the budget cannot cover every leg, only the legs it covers are sent
  (the book moves part of the way, each leg within limits); with no budget left the intent is
  refused. Flattening under the kill switch ignores the budget: getting out must not be blocked.
* Daily loss cap: once today's P&L is at or below ``-daily_loss_cap_usd`` (or a halt set earlier is
  still running), risk may only be reduced until the next UTC midnight: the target is clipped
  between zero and the current position; an intent that only adds risk is refused.
* Kill switch: every intent becomes "flatten"; once flat, every intent is refused until an operator
  resumes. The kill switch is checked FIRST: getting out is never blocked, not by a pause, the
  intent's age or symbol, the hourly budget or an unknown mark. Paused trading (without the kill
  switch) refuses everything and flattens nothing (pausing is not panic).
* Staleness: an intent is judged by the TICK it decides (the bar close in its ``tick_id``), not by
  its ``created_at`` (the wall clock of whoever wrote it, trivially fresh on a replayed or delayed
  message). Age = executor clock - tick time; older than ``max_intent_age_s`` is refused, and a
  tick more than ``max_clock_skew_s`` ahead of the executor's clock (negative age) is refused too:
  nobody can have decided a bar that has not closed.
* Unknown mark (``Book.mark_error``: missing, NaN, non-positive or stale): today's P&L cannot be
  known, so it must not look better than it is: new risk is refused, only moves towards flat pass
  (and they still need a valid fill price on the venue).
* Quantities are rounded to the venue's lot (0.0001 BTC) towards the current position, so rounding
  can never push the book past a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from common.events import OrderIntent
from common.ids import parse_tick_id
from config import RiskLimits

#: Kraken Futures PF_XBTUSD contract size step (BTC); also what the paper exchange accepts.
LOT_BTC = 0.0001
_EPS = 1e-12


class Verdict(StrEnum):
    """What the service should do with the intent."""

    TRADE = "TRADE"
    NOOP = "NOOP"
    REFUSED = "REFUSED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class RiskState:
    """Operator switches and halts as read from ``risk_state`` (defaults: all clear)."""

    kill_switch: bool = False
    kill_reason: str | None = None
    trading_paused: bool = False
    halted_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Book:
    """The executor's view of its account right before the intent."""

    position_btc: float
    daily_pnl_usd: float
    orders_last_hour: int
    #: Why the venue's mark is unusable (None: the mark was valid, ``daily_pnl_usd`` is current).
    mark_error: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome: signed leg quantities (BTC, + buys) and why."""

    verdict: Verdict
    reason: str
    target_position: float
    legs: tuple[float, ...] = field(default_factory=tuple)
    #: Set when the daily loss cap was hit now: the service persists it into ``risk_state``.
    halt_until: datetime | None = None

    @property
    def position_after(self) -> float:
        return self.target_position


def _towards_flat(target: float, cur: float) -> float:
    """``target`` clipped between zero and ``cur``: the largest move that only reduces risk."""
    return min(max(target, min(0.0, cur)), max(0.0, cur))


def next_utc_midnight(now: datetime) -> datetime:
    """Start of the next UTC day: when a daily-loss halt ends."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def round_lot(qty: float) -> float:
    """Round a magnitude DOWN to the lot, so a rounded move never exceeds the unrounded one."""
    lots = math.floor(abs(qty) / LOT_BTC + 1e-9)
    return math.copysign(round(lots * LOT_BTC, 8), qty) if lots else 0.0


def split_legs(delta: float, max_order: float) -> tuple[float, ...]:
    """Split a move into legs of at most ``max_order`` BTC (each a whole number of lots)."""
    size = round_lot(abs(delta))
    if size <= 0:
        return ()
    max_lots = max(1, math.floor(max_order / LOT_BTC + 1e-9))
    lots = round(size / LOT_BTC)
    sign = 1.0 if delta > 0 else -1.0
    legs: list[float] = []
    while lots > 0:
        take = min(lots, max_lots)
        legs.append(sign * round(take * LOT_BTC, 8))
        lots -= take
    return tuple(legs)


class RiskEngine:
    """Applies :class:`config.RiskLimits` to one intent at a time."""

    def __init__(self, limits: RiskLimits, *, symbol: str, max_exposure: float = 1.0) -> None:
        self.limits = limits
        self.symbol = symbol
        self.max_exposure = max_exposure

    def evaluate(self, intent: OrderIntent, book: Book, state: RiskState, now: datetime) -> Plan:
        """Decide the legs for ``intent``; every refusal names the limit that caused it."""
        cur = book.position_btc
        lim = self.limits
        if state.kill_switch:
            return self._flatten(cur, state)  # before every other check: getting out is never blocked
        if intent.symbol != self.symbol:
            return Plan(Verdict.REJECTED, f"symbol: executor trades {self.symbol}, not {intent.symbol}", cur)
        if state.trading_paused:
            return Plan(Verdict.REFUSED, "trading_paused: an operator paused trading", cur)
        try:
            _, tick_time = parse_tick_id(intent.tick_id)
        except ValueError as exc:
            return Plan(Verdict.REJECTED, f"tick_id: {exc}", cur)
        stale = self.staleness(tick_time, now)
        if stale is not None:
            return Plan(Verdict.REFUSED, stale, cur)
        exposure = min(max(intent.target_exposure, -self.max_exposure), self.max_exposure)
        target = round(exposure * lim.max_position_btc, 8)
        notes: list[str] = []
        if exposure != intent.target_exposure:
            notes.append(f"max_exposure: target_exposure {intent.target_exposure:g} clipped to {exposure:g}")
        halt_until: datetime | None = None
        halted = state.halted_until is not None and now < state.halted_until
        if not halted and book.daily_pnl_usd <= -lim.daily_loss_cap_usd:
            halted, halt_until = True, next_utc_midnight(now)
        if halted:
            until = halt_until or state.halted_until
            cap = (
                f"daily_loss_cap_usd: daily P&L {book.daily_pnl_usd:.2f} vs cap -{lim.daily_loss_cap_usd:g}, "
                f"only risk reduction until {until.isoformat() if until else '?'}"
            )
            reduced = _towards_flat(target, cur)
            if abs(reduced) >= abs(cur) - _EPS:
                return Plan(Verdict.REFUSED, cap, cur, halt_until=halt_until)
            target = reduced
            notes.append(cap)
        if book.mark_error is not None:
            # Unknown mark: today's P&L is unknown, so the loss cap cannot vouch for new risk.
            bad = f"bad_mark: {book.mark_error}; only risk reduction until the venue's mark is valid"
            reduced = _towards_flat(target, cur)
            if abs(reduced) >= abs(cur) - _EPS:
                return Plan(Verdict.REFUSED, "; ".join([bad, *notes]), cur, halt_until=halt_until)
            target = reduced
            notes.append(bad)
        return self._legs(cur, target, book, notes, halt_until=halt_until)

    def staleness(self, tick_time: datetime, now: datetime) -> str | None:
        """Why an intent for ``tick_time`` may not trade at ``now`` (None: fresh enough).

        The tick time is when the decided bar closed; ``now`` is the executor's clock. Both limits
        are named in the reason so a refusal says which one fired.
        """
        lim = self.limits
        age = (now - tick_time).total_seconds()
        if age < -lim.max_clock_skew_s:
            return (
                f"max_clock_skew_s: tick {tick_time.isoformat()} is {-age:.1f}s ahead of the executor "
                f"clock {now.isoformat()}, tolerance {lim.max_clock_skew_s:g}s"
            )
        if age > lim.max_intent_age_s:
            return (
                f"max_intent_age_s: tick {tick_time.isoformat()} is {age:.1f}s old by the executor "
                f"clock, limit {lim.max_intent_age_s:g}s"
            )
        return None

    def _flatten(self, cur: float, state: RiskState) -> Plan:
        why = f"kill_switch: {state.kill_reason or 'engaged'}; halted until an operator resumes"
        legs = split_legs(-cur, self.limits.max_order_btc)
        if not legs:
            return Plan(Verdict.REFUSED, why, cur)
        return Plan(Verdict.TRADE, f"{why}; flattening", round(cur + sum(legs), 8), legs)

    def _legs(
        self, cur: float, target: float, book: Book, notes: list[str], *, halt_until: datetime | None
    ) -> Plan:
        lim = self.limits
        legs = split_legs(target - cur, lim.max_order_btc)
        if not legs:
            notes.append("already at target (within one lot)")
            return Plan(Verdict.NOOP, "; ".join(notes), cur, halt_until=halt_until)
        budget = lim.max_orders_per_hour - book.orders_last_hour
        if budget <= 0:
            why = (
                f"max_orders_per_hour: {book.orders_last_hour} orders in the last hour, "
                f"limit {lim.max_orders_per_hour}"
            )
            return Plan(Verdict.REFUSED, "; ".join([*notes, why]), cur, halt_until=halt_until)
        if len(legs) > budget:
            notes.append(
                f"max_orders_per_hour: sending {budget} of {len(legs)} legs "
                f"(limit {lim.max_orders_per_hour}/h)"
            )
            legs = legs[:budget]
        if len(legs) > 1:
            notes.append(f"max_order_btc: move split into {len(legs)} orders of <= {lim.max_order_btc:g} BTC")
        return Plan(Verdict.TRADE, "; ".join(notes), round(cur + sum(legs), 8), legs, halt_until=halt_until)
