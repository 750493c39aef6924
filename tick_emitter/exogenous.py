"""Exogenous inputs on the bars: which series each due strategy reads, cut at the tick, read once.

A strategy declares its inputs in code (``Strategy.exogenous_inputs``) and how far back before its
window's first bar close they can still matter (``Strategy.exogenous_reach``). At a tick, every
bars message of a timeframe carries, per series read by a strategy due on that timeframe, the
observations published in ``[earliest first bar close of those strategies' windows - their reach,
tick]``: a superset of what ``Strategy.cut_exogenous`` keeps for any of those windows (the runner applies
that cut, so live sees exactly what the full-history path sees). Nothing published after the tick
is ever attached: the feed is asked for ``published_at <= tick`` and the result is checked again.

Cost: one read per series per tick, shared by every timeframe and strategy that needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from sqlalchemy import Engine

from common.events import to_epoch_ms
from common.logging import get_logger
from common.registry import Registry, StrategySpec
from common.serde_bars import ExogenousArrays
from common.timeframes import parse_timeframe
from tick_emitter.core import MINUTE_MS, BarPayload, DuePlan

log = get_logger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExogenousLeak(RuntimeError):
    """An observation published after the tick was about to be sent (a feed bug): never published."""


@dataclass(frozen=True, slots=True)
class ExogenousNeed:
    """One strategy's inputs: the series it reads and how far before its window they matter (ms)."""

    strategy: str
    timeframe: str
    series: tuple[str, ...]
    reach_ms: int
    #: Bars of the strategy's own window (the last ones of its timeframe's message).
    bars: int


def exogenous_needs(specs: Registry | Iterable[StrategySpec]) -> tuple[ExogenousNeed, ...]:
    """The needs of every enabled strategy that declares exogenous inputs (imports their classes).

    The reach comes from the strategy instance built with its registry params, exactly as the
    runner builds it, so the emitter and the strategy agree on the cut. A class that cannot be
    imported here is logged and gets no inputs: its runner (which imports the same class) cannot
    start either, and were it to, a missing input makes a strategy say "no opinion", never guess.
    """
    out = []
    enabled = specs.enabled if isinstance(specs, Registry) else tuple(s for s in specs if s.enabled)
    for spec in enabled:
        try:
            cls = spec.load_class()
        except Exception as exc:  # the registry's own check reports it to whoever deploys
            log.error("strategy_class_not_importable", strategy=spec.name, class_path=spec.class_path,
                      error=f"{type(exc).__name__}: {exc}", detail="no exogenous inputs attached for it")
            continue
        inputs = getattr(cls, "exogenous_inputs", None)
        if not inputs:
            continue
        strategy = cls(params=spec.params, lookback_hours=spec.lookback_hours, version=spec.version)
        reach = strategy.exogenous_reach()
        out.append(ExogenousNeed(spec.name, spec.timeframe, tuple(inputs),
                                 int(reach / timedelta(milliseconds=1)),
                                 strategy.bars_needed(spec.timeframe_minutes)))
    return tuple(out)


class ExogenousFeed(Protocol):
    """Where observations come from: per series, its rows published in ``[lo, hi]`` (epoch ms)."""

    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]: ...


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


class DbFeed:
    """Postgres (``exogenous_observations``): one indexed range query per series and tick."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]:
        """One connection checkout per tick, one query per series."""
        from common.exogenous.store import read_published

        with self.engine.connect() as conn:
            return {series: ExogenousArrays.from_frame(series, read_published(conn, series, _dt(lo), _dt(hi)))
                    for series, (lo, hi) in wanted.items()}


class FrameFeed:
    """Whole series held in memory (files or one DB read), cut per tick by binary search.

    For long replays, where a query per tick would dominate; gives the rows ``DbFeed`` gives.
    """

    def __init__(self, frames: Mapping[str, ExogenousArrays]) -> None:
        for name, arrays in frames.items():
            pub = arrays.published_ms
            if pub.size > 1 and not bool(np.all(pub[1:] >= pub[:-1])):
                raise ValueError(f"{name}: observations must be sorted by published_at")
        self.frames = dict(frames)

    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]:
        return {series: self.read(series, lo, hi) for series, (lo, hi) in wanted.items()}

    def read(self, series: str, lo_ms: int, hi_ms: int) -> ExogenousArrays:
        arrays = self.frames[series]
        i0 = int(np.searchsorted(arrays.published_ms, lo_ms, side="left"))
        i1 = int(np.searchsorted(arrays.published_ms, hi_ms, side="right"))
        return arrays.slice(i0, i1)


def attach_exogenous(
    bars: Sequence[BarPayload], plan: DuePlan, needs: Sequence[ExogenousNeed], feed: ExogenousFeed
) -> list[BarPayload]:
    """``bars`` with the exogenous inputs of the strategies due at ``plan`` attached.

    Per series the feed is read once, from the earliest publication any due strategy on any
    timeframe can use up to the tick; each timeframe's message then gets its own (longer or
    shorter) slice of that read.
    """
    due = {s.name for s in plan.strategies}
    tick_ms = to_epoch_ms(plan.tick_time)
    wanted: dict[str, dict[str, int]] = {}  # timeframe -> series -> earliest publication (ms)
    by_tf = {bar.timeframe: bar for bar in bars}
    for need in needs:
        bar = by_tf.get(need.timeframe)
        if need.strategy not in due or bar is None or not len(bar):
            continue
        # The runner hands the strategy the last ``bars`` bars of the message (``window_frame``).
        first_open = int(bar.times[max(0, len(bar) - need.bars)])
        first_close = first_open + parse_timeframe(need.timeframe) * MINUTE_MS
        series_lo = wanted.setdefault(need.timeframe, {})
        for series in need.series:
            lo = first_close - need.reach_ms
            series_lo[series] = min(series_lo.get(series, lo), lo)
    if not wanted:
        return list(bars)
    lows: dict[str, int] = {}
    for series_lo in wanted.values():
        for series, lo in series_lo.items():
            lows[series] = min(lows.get(series, lo), lo)
    read = feed.read_all({series: (lo, tick_ms) for series, lo in lows.items()})
    for series, arrays in read.items():
        if len(arrays) and int(arrays.published_ms[-1]) > tick_ms:
            raise ExogenousLeak(f"{series}: feed returned an observation published after the tick "
                                f"{plan.tick_time.isoformat()}")
    out = []
    for bar in bars:
        cut = wanted.get(bar.timeframe)
        if not cut:
            out.append(bar)
            continue
        frames = []
        for series, lo in cut.items():
            arrays = read[series]
            start = int(np.searchsorted(arrays.published_ms, lo, side="left"))
            frames.append(arrays.slice(start, len(arrays)))
        out.append(replace(bar, exogenous=tuple(frames)))
    return out
