"""Time and price sources the executor is given, never ones it reaches for.

Live runs use the wall clock and the candles table; replays and tests hand in their own clock and
prices so a historical run fills at historical prices and ages intents against historical time.
Waiting goes through the clock as well (``Clock.sleep``): a test on a :class:`ManualClock` waits
by moving time, not by blocking, so nothing in the executor depends on the hour the wall clock
shows when a test runs.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, select

from common.db.models import Candle
from config import FillPrice


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (giving a venue time to catch up, polling another process)."""
        ...


class SystemClock:
    """Wall-clock UTC; ``sleep`` blocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when.isoformat()}: a clock keeps tz-aware UTC time")
    return when.astimezone(UTC)


class ManualClock:
    """A clock only its owner moves (tests): ``set`` and ``advance`` move it, and ``sleep`` advances
    it instead of blocking, so a test can stand a second before an hour's or a day's turn, step
    over it, and see what the executor does on either side, in no wall time and on any day.

    Unlike :class:`ReplayClock` it ignores the intents (the executor's ``advance_to`` hook is
    absent): the test alone says what time it is, which is what staleness tests need.
    ``slept`` lists every ``sleep`` asked for, so a test can check that something waited.
    """

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (also backwards: a test may go back to replay a moment)."""
        self._now = _aware(when)

    def advance(self, by: timedelta | float) -> datetime:
        """Move forward by ``by`` (a timedelta or seconds); returns the new time."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"advance by {step}: time only moves forward (use set() to go back)")
        self._now += step
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:  # as time.sleep: a negative wait is a caller's bug, not a no-op
            raise ValueError(f"sleep length must be non-negative, got {seconds}")
        self.slept.append(seconds)
        self.advance(seconds)


class ReplayClock:
    """Replayed time: the caller moves it, or (``follow_intents``) each intent moves it to its
    tick's time, so hourly order counts and funding hours are those of the replayed past.

    The risk engine ages intents against this clock too (tick time vs ``now``): a replay decided
    in order is always fresh, while an intent for a tick well behind the replay's present (sent
    late, or again) is refused as stale, exactly as the wall clock would refuse it live.
    """

    def __init__(self, start: datetime, *, follow_intents: bool = True) -> None:
        self._now = start
        self.follow_intents = follow_intents

    def set(self, when: datetime) -> None:
        self._now = when

    def advance_to(self, when: datetime) -> None:
        """Called by the executor per intent; never moves backwards (time in a replay is monotonic)."""
        if self.follow_intents and when > self._now:
            self._now = when

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Blocks on the wall clock and leaves replayed time where it is: what a replay waits
        for (a venue catching up) happens in real time, while replayed time moves with ticks."""
        time.sleep(seconds)


class PriceFeed(Protocol):
    def price_at(self, when: datetime) -> float | None:
        """Price to trade at for a decision made at ``when``; None when unknown."""
        ...


class CandlePriceFeed:
    """The venue's price from ``candles`` under the fill-price model (``common.fills``, the rule the
    backtest and the replay comparison apply to arrays):

    * ``next_open`` (default): the open of the first bar at/after ``when``, else the last close
      before it. The open of the next bar is what a market order sent at ``when`` could really get;
      the last close is the best we know live, before that bar exists (and at the end of a series).
    * ``signal_close``: the close of the last bar that opened before ``when`` (the bar whose close
      the decision was computed from), else the open of the first bar.

    ``prefetch`` (replays): on a miss, read the bar before ``when`` and the next N bars at/after it
    at once and answer later times inside that span from memory. The span holds every candle in it,
    so the answer is the query's; live runs keep 0 (a time past the newest candle is never cached
    either way).
    """

    def __init__(
        self,
        engine: Engine,
        symbol: str,
        timeframe: str,
        *,
        prefetch: int = 0,
        fill_price: FillPrice = FillPrice.NEXT_OPEN,
    ) -> None:
        self._engine = engine
        self._symbol = symbol
        self._timeframe = timeframe
        self._prefetch = prefetch
        self.fill_price = FillPrice(fill_price)
        # A span of consecutive stored candles (open times, opens, closes) and the lowest time it
        # answers: inclusive for ``next_open`` (the query time), exclusive for ``signal_close`` (the
        # open time of the candle before the query, whose close it needs).
        self._span: tuple[datetime, bool, list[datetime], list[float], list[float]] | None = None

    def _answer(
        self, when: datetime, times: list[datetime], opens: list[float], closes: list[float]
    ) -> float:
        i = bisect_left(times, when)
        if self.fill_price is FillPrice.SIGNAL_CLOSE:
            return closes[i - 1] if i > 0 else opens[0]
        return opens[i] if i < len(times) else closes[-1]

    def _cached(self, when: datetime) -> float | None:
        if self._span is None:
            return None
        low, inclusive, times, opens, closes = self._span
        if not ((low <= when) if inclusive else (low < when)) or when > times[-1]:
            return None
        return self._answer(when, times, opens, closes)

    def _keep(self, low: datetime, inclusive: bool, rows: Sequence[Any]) -> None:
        """Remember ``rows`` (candle rows: open_time, open, close) as the span answering from ``low``."""
        times = [r.open_time for r in rows]
        self._span = (low, inclusive, times, [float(r.open) for r in rows], [float(r.close) for r in rows])

    def price_at(self, when: datetime) -> float | None:
        hit = self._cached(when)
        if hit is not None:
            return hit
        cols = (Candle.open_time, Candle.open, Candle.close)
        mine = (Candle.symbol == self._symbol, Candle.timeframe == self._timeframe)
        after = select(*cols).where(*mine, Candle.open_time >= when).order_by(Candle.open_time)
        before = (
            select(*cols).where(*mine, Candle.open_time < when).order_by(Candle.open_time.desc()).limit(1)
        )
        with self._engine.connect() as conn:
            if self.fill_price is FillPrice.NEXT_OPEN:
                rows = conn.execute(after.limit(max(1, self._prefetch))).all()
                if rows:
                    if self._prefetch:
                        self._keep(when, True, rows)
                    return float(rows[0].open)
                last = conn.execute(before).first()
                return float(last.close) if last is not None else None
            last = conn.execute(before).first()
            if last is None:  # nothing before ``when``: the first bar's open is the first price
                first = conn.execute(after.limit(1)).first()
                return float(first.open) if first is not None else None
            if self._prefetch:
                rows = conn.execute(after.limit(self._prefetch)).all()
                if rows:
                    self._keep(last.open_time, False, [last, *list(rows)])
            return float(last.close)


class FixedPriceFeed:
    """A price the caller supplies (replays driven by their own bar stream, tests)."""

    def __init__(self, price: float | None) -> None:
        self.price = price

    def set(self, price: float | None) -> None:
        self.price = price

    def price_at(self, when: datetime) -> float | None:
        return self.price
