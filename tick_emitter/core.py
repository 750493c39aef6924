"""The pure heart of the emitter: what is due, the bars each timeframe gets, the events to publish.

The live tick, the catch-up after downtime and the replay all call these three functions and
nothing else to decide content, so a replay publishes byte-for-byte the bars the live path would
have. No I/O, no clock: every input is an argument.

Alignment: a timeframe of ``m`` minutes closes a bar at tick time ``T`` when the epoch minute of
``T`` is a multiple of ``m``. For every timeframe dividing a day this is the same as "minutes since
midnight UTC mod m == 0" (1h at every :00, 4h at 00/04/.../20 UTC, 1d at 00:00); UTC has no DST.

Gaps: a resampled bin is built only from a complete set of base candles. Incomplete bins are left
out of the window (never invented or forward-filled); if the bin closing at ``T`` itself is
incomplete, that timeframe is not published at this tick and is reported as degraded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from common.events import BarClosed, DueStrategy, TickPlan, to_epoch_ms
from common.ids import make_tick_id
from common.registry import Registry, StrategySpec
from common.serde_bars import KEYFRAME, ExogenousArrays, WindowLink
from common.timeframes import MINUTE_MS, parse_timeframe, resample

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY_T = np.empty(0, dtype=np.int64)
_EMPTY_V = np.empty((0, 5), dtype=np.float64)


def is_due(tick_time: datetime, timeframe_minutes: int) -> bool:
    """Does a ``timeframe_minutes`` bar close at ``tick_time``? (epoch-minute alignment, UTC)."""
    ms = to_epoch_ms(tick_time)
    return ms % MINUTE_MS == 0 and (ms // MINUTE_MS) % timeframe_minutes == 0


@dataclass(frozen=True, slots=True)
class DuePlan:
    """The strategies due at one tick and, per timeframe, the bars to send (max over its strategies)."""

    tick_time: datetime
    strategies: tuple[StrategySpec, ...]
    bars: Mapping[str, int] = field(default_factory=dict)

    @property
    def timeframes(self) -> tuple[str, ...]:
        return tuple(sorted(self.bars, key=lambda tf: (parse_timeframe(tf), tf)))

    def __bool__(self) -> bool:
        return bool(self.strategies)

    @property
    def earliest_start(self) -> datetime:
        """Oldest base candle any due window needs (the single DB/array read covers from here)."""
        spans = [parse_timeframe(tf) * n for tf, n in self.bars.items()]
        return self.tick_time - timedelta(minutes=max(spans, default=0))


_SPEC_CACHE: dict[int, tuple[object, tuple[tuple[StrategySpec, int], ...]]] = {}


def _enabled_with_minutes(
    registry: Registry | Iterable[StrategySpec],
) -> tuple[tuple[StrategySpec, int], ...]:
    """(spec, minutes) of enabled strategies, memoised per registry object (replay plans ~10^5 ticks)."""
    hit = _SPEC_CACHE.get(id(registry))
    if hit is not None and hit[0] is registry:
        return hit[1]
    specs = registry.enabled if isinstance(registry, Registry) else tuple(s for s in registry if s.enabled)
    out = tuple((s, s.timeframe_minutes) for s in specs)
    if isinstance(registry, Registry):
        if len(_SPEC_CACHE) > 64:
            _SPEC_CACHE.clear()
        _SPEC_CACHE[id(registry)] = (registry, out)
    return out


def candidate_step(registry: Registry | Iterable[StrategySpec], tick_minutes: int) -> int:
    """Spacing (minutes) of the only tick times where anything can be due: lcm(GLOBAL_TICK, gcd(tfs)).

    Every due time is a multiple of some strategy timeframe (hence of their gcd) and lies on the
    GLOBAL_TICK grid, so scanning this coarser grid skips nothing and spares ~59 of 60 plans per hour.
    """
    minutes = [m for _, m in _enabled_with_minutes(registry)]
    return math.lcm(tick_minutes, math.gcd(*minutes)) if minutes else tick_minutes


def plan_tick(tick_time: datetime, registry: Registry | Iterable[StrategySpec]) -> DuePlan:
    """Enabled strategies whose timeframe closes a bar at ``tick_time``, in registry order."""
    ms = to_epoch_ms(tick_time)
    if ms % MINUTE_MS:
        return DuePlan(tick_time, ())
    minute = ms // MINUTE_MS
    due = tuple(s for s, m in _enabled_with_minutes(registry) if minute % m == 0)
    bars: dict[str, int] = {}
    for s in due:
        bars[s.timeframe] = max(bars.get(s.timeframe, 0), s.bars)
    return DuePlan(tick_time, due, bars)


@dataclass(frozen=True, slots=True)
class BaseCandles:
    """Base (MIN_TIMEFRAME) candles in memory: sorted unique epoch-ms times and [n, 5] OHLCV."""

    times: np.ndarray
    values: np.ndarray
    timeframe_minutes: int

    def __post_init__(self) -> None:
        if self.times.shape[0] != self.values.shape[0]:
            raise ValueError("times and values differ in length")
        if self.times.size > 1 and not bool(np.all(np.diff(self.times) > 0)):
            raise ValueError("base candle times must be strictly increasing")

    @classmethod
    def empty(cls, timeframe_minutes: int) -> BaseCandles:
        return cls(_EMPTY_T, _EMPTY_V, timeframe_minutes)

    def slice(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Views (no copy) of the candles with ``start_ms <= open time < end_ms``."""
        i0, i1 = np.searchsorted(self.times, [start_ms, end_ms], side="left")
        return self.times[i0:i1], self.values[i0:i1]


@dataclass(frozen=True, slots=True)
class Window:
    """Closed, complete bars of one timeframe, oldest first, ending with the bar that closes at the tick."""

    timeframe: str
    times: np.ndarray
    values: np.ndarray
    #: False when the bar closing at the tick is incomplete: then the timeframe is not published.
    closing_bar_complete: bool


def prepare_bars(base: BaseCandles, tick_time: datetime, plan: DuePlan) -> dict[str, Window]:
    """One window per due timeframe, cut from the same base candles (loaded once per tick)."""
    end_ms = to_epoch_ms(tick_time)
    windows: dict[str, Window] = {}
    for tf in plan.timeframes:
        minutes = parse_timeframe(tf)
        if minutes % base.timeframe_minutes:
            raise ValueError(f"timeframe {tf} is not a multiple of the base ({base.timeframe_minutes}m)")
        start_ms = end_ms - plan.bars[tf] * minutes * MINUTE_MS
        t, v = base.slice(start_ms, end_ms)
        rt, rv = resample(t, v, base.timeframe_minutes, minutes, start_ms)
        complete = bool(rt.size) and int(rt[-1]) == end_ms - minutes * MINUTE_MS
        windows[tf] = Window(tf, rt, rv, complete)
    return windows


class _TimeCache:
    """Epoch-ms -> datetime, memoised: a replay re-sends each bar time hundreds of times."""

    def __init__(self, limit: int = 2_000_000) -> None:
        self._cache: dict[int, datetime] = {}
        self._limit = limit

    def __call__(self, ms_values: list[int]) -> tuple[datetime, ...]:
        cache = self._cache
        if len(cache) > self._limit:
            cache.clear()
        out = []
        for ms in ms_values:
            dt = cache.get(ms)
            if dt is None:
                dt = cache[ms] = _EPOCH + timedelta(milliseconds=ms)
            out.append(dt)
        return tuple(out)


_to_datetimes = _TimeCache()


@dataclass(frozen=True, slots=True)
class BarPayload:
    """One BarClosed's content, still as arrays: live turns it into the event, replay encodes it directly."""

    tick_id: str
    symbol: str
    timeframe: str
    times: np.ndarray
    values: np.ndarray
    #: Exogenous inputs of the strategies due on this timeframe, cut at the tick (see tick_emitter.exogenous).
    exogenous: tuple[ExogenousArrays, ...] = ()
    #: Keyframe (the default) or continuation of the topic's previous message (common.bar_stream).
    link: WindowLink = KEYFRAME

    @property
    def bar_open_time(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=int(self.times[-1]))

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def to_event(self) -> BarClosed:
        cols = self.values.T.tolist()
        open_times = _to_datetimes(self.times.tolist())
        return BarClosed(
            tick_id=self.tick_id,
            symbol=self.symbol,
            timeframe=self.timeframe,
            bar_open_time=open_times[-1],
            open_time=open_times,
            open=cols[0],
            high=cols[1],
            low=cols[2],
            close=cols[3],
            volume=cols[4],
            exogenous=tuple(a.to_event() for a in self.exogenous),
            keyframe_offset=self.link.keyframe_offset,
            prev_tick_id=self.link.prev_tick_id,
            window_start=self.link.window_start,
            window_bars=self.link.window_bars,
            window_crc=self.link.window_crc,
        )


def build_events(
    symbol: str,
    plan: DuePlan,
    windows: Mapping[str, Window],
    *,
    published_at: datetime,
    deadline: timedelta,
    namespace: str = "",
) -> tuple[TickPlan, list[BarPayload], list[str]]:
    """The TickPlan and one BarClosed payload per publishable timeframe, plus the degraded timeframes.

    ``deadline`` is measured from the tick time (not the wall clock) so the plan is the same whether
    it is published live, late in a catch-up, or in a replay; only ``published_at`` and the
    namespace differ between those paths.
    """
    tick_time = plan.tick_time
    ok = [tf for tf in plan.timeframes if windows[tf].closing_bar_complete]
    degraded = [tf for tf in plan.timeframes if tf not in ok]
    due = [DueStrategy(s.name, s.version, s.timeframe) for s in plan.strategies if s.timeframe in ok]
    tick = TickPlan.create(
        symbol, tick_time, due, deadline=tick_time + deadline, published_at=published_at, namespace=namespace
    )
    tick_id = make_tick_id(symbol, tick_time)
    bars = [BarPayload(tick_id, symbol, tf, windows[tf].times, windows[tf].values) for tf in ok]
    return tick, bars, degraded


def tick_times(start: datetime, end: datetime, step_minutes: int) -> list[datetime]:
    """Grid tick times in ``[start, end]`` (inclusive), aligned to epoch multiples of the step."""
    step_ms = step_minutes * MINUTE_MS
    first = -(-to_epoch_ms(start) // step_ms) * step_ms
    last = to_epoch_ms(end) // step_ms * step_ms
    return [_EPOCH + timedelta(milliseconds=ms) for ms in range(first, last + 1, step_ms)]
