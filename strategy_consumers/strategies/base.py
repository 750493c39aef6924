"""The strategy contract shared by the batch (whole history) and live (one window) paths.

Both paths run the *same* vectorized ``signals`` code; the live path simply gets a shorter frame.
Parity therefore reduces to two facts measured on real data (docs/decisions/0004-strategy-parity.md):
the indicators forget their start within ``warmup_bars`` bars, and the window holds enough bars
after that for the target recursion to coalesce with the full-history one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies.targets import (
    ENTER_LONG,
    ENTER_SHORT,
    SIGNAL_COLUMNS,
    compute_events,
    compute_target,
    event_of,
    transition,
)

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class RecommendationResult:
    """What a strategy publishes for the latest closed bar."""

    target: int
    event: str
    confidence: float
    horizon_bars: int
    indicators: dict[str, float] = field(default_factory=dict)


class Strategy(ABC):
    """A signal generator over hourly OHLCV bars indexed by UTC open time.

    Subclasses set the class attributes and implement ``_signals``. ``warmup_bars`` is the number of
    leading bars of any frame whose signals are not trusted (indicators still depend on where the
    frame starts); the target recursion ignores signals there in both paths, so a window and the
    full history apply the same rule.
    """

    name: ClassVar[str]
    version: str = "1"  # instance attribute; the registry entry may override it
    timeframe: ClassVar[str] = "1h"
    default_lookback_hours: ClassVar[int]
    warmup_bars: ClassVar[int]
    horizon_bars: ClassVar[int]
    default_params: ClassVar[Mapping[str, Any]] = {}
    indicator_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        lookback_hours: int | None = None,
        version: str | None = None,
    ) -> None:
        unknown = set(params or {}) - set(self.default_params)
        if unknown:
            raise ValueError(f"{self.name}: unknown params {sorted(unknown)}")
        self.params: dict[str, Any] = {**self.default_params, **(params or {})}
        self.lookback_hours = int(lookback_hours or self.default_lookback_hours)
        if version is not None:
            self.version = version
        if self.bars_needed() <= self.warmup_bars:
            raise ValueError(f"{self.name}: lookback_hours must exceed warm-up of {self.warmup_bars} bars")

    # ------------------------------------------------------------------ batch path
    def bars_needed(self, timeframe_minutes: int = 60) -> int:
        """Window length the live path must hand to ``recommend``."""
        return int(self.lookback_hours * 60 // timeframe_minutes)

    def signals(self, df: pd.DataFrame) -> pd.DataFrame:
        """int8 enter/exit columns plus exposed indicator columns, same index as ``df``."""
        return pd.DataFrame(self._columns(df), index=df.index)

    def _columns(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        cols = self._signals(df)
        for col in SIGNAL_COLUMNS:
            cols[col] = np.nan_to_num(np.asarray(cols[col], dtype=np.float64), nan=0.0).astype(np.int8)
        return cols

    @abstractmethod
    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Signal arrays (bool or 0/1; NaN reads as 0) and indicator arrays, one value per bar."""

    def evaluate(self, df: pd.DataFrame, initial_target: int = 0) -> pd.DataFrame:
        """Signals plus ``target``, ``event`` and ``confidence`` for every bar of ``df``."""
        cols = self._columns(df)
        masked = [cols[c].copy() for c in SIGNAL_COLUMNS]
        for arr in masked:
            arr[: self.warmup_bars] = 0
        el, xl, es, xs = masked
        target = compute_target(el, xl, es, xs, initial=initial_target)
        cols["target"] = target
        cols["event"] = compute_events(target, initial=initial_target)
        cols["confidence"] = self._confidence(cols, target, cols["event"])
        return pd.DataFrame(cols, index=df.index)

    def _confidence(
        self, cols: Mapping[str, np.ndarray], target: np.ndarray, event: np.ndarray
    ) -> np.ndarray:
        entry = (event == ENTER_LONG) | (event == ENTER_SHORT)
        holding = np.clip(np.nan_to_num(self._holding_confidence(cols, target), nan=0.0), 0.0, 1.0)
        return np.where(entry, 1.0, np.where(target == 0, 0.0, holding))

    @abstractmethod
    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        """Confidence in [0, 1] while a position is held without a fresh entry on the bar."""

    # ------------------------------------------------------------------ live path
    def recommend(self, window: pd.DataFrame, prev_target: int | None = None) -> RecommendationResult:
        """Recommendation for the last bar of ``window`` (the last ``bars_needed`` closed bars).

        Without ``prev_target`` the target is rebuilt from the window alone, starting flat after the
        warm-up. With ``prev_target`` (the target the service published for the previous bar) only
        the last bar's transition is applied, which carries the full-history state exactly.
        """
        if len(window) == 0:
            raise ValueError("empty window")
        if prev_target not in (None, -1, 0, 1):
            raise ValueError(f"prev_target must be -1, 0, 1 or None, got {prev_target!r}")
        if prev_target is None:
            row = self.evaluate(window).iloc[-1]
            target, event, conf = int(row["target"]), str(row["event"]), float(row["confidence"])
            values = {c: float(row[c]) for c in self.indicator_columns}
        else:
            # Signals converge within ``warmup_bars``, so the tail is enough once the state is carried.
            tail = window.iloc[-(self.warmup_bars + 1) :]
            cols = self._columns(tail)
            trusted = len(tail) > self.warmup_bars
            bits = [bool(cols[c][-1]) and trusted for c in SIGNAL_COLUMNS]
            target = transition(int(prev_target), *bits)
            event = event_of(int(prev_target), target)
            last = {k: v[-1:] for k, v in cols.items()}
            conf = float(self._confidence(last, np.array([target]), np.array([event], dtype=object))[0])
            values = {c: float(cols[c][-1]) for c in self.indicator_columns}
        return RecommendationResult(
            target=target,
            event=event,
            confidence=0.0 if math.isnan(conf) else conf,
            horizon_bars=self.horizon_bars,
            indicators=values,
        )


    def recommend_run(self, frame: pd.DataFrame, count: int, prev_target: int) -> list[RecommendationResult]:
        """Warm recommendations for each of the last ``count`` bars of ``frame``, from one computation.

        The consumer's catch-up path (a backlog after downtime, a topic replay): instead of
        ``count`` frames of ``warmup_bars + 1`` bars, one frame of ``warmup_bars + count`` bars.
        Every one of those bars sits at position >= ``warmup_bars`` of the frame, where (ADR 0004)
        signals and indicators no longer depend on where the frame starts, so each result is the
        one :meth:`recommend` gives for that bar's own window with the carried target.
        """
        if count < 1 or len(frame) < self.warmup_bars + count:
            raise ValueError(f"{self.name}: a run of {count} needs >= {self.warmup_bars + count} bars, "
                             f"got {len(frame)}")
        if prev_target not in (-1, 0, 1):
            raise ValueError(f"prev_target must be -1, 0 or 1, got {prev_target!r}")
        cols = self._columns(frame.iloc[-(self.warmup_bars + count):])
        first = self.warmup_bars
        prev = int(prev_target)
        targets, events, out = [], [], []
        for p in range(first, first + count):
            target = transition(prev, *(bool(cols[c][p]) for c in SIGNAL_COLUMNS))
            targets.append(target)
            events.append(event_of(prev, target))
            prev = target
        rows = {k: v[first:] for k, v in cols.items()}
        conf = self._confidence(rows, np.array(targets), np.array(events, dtype=object))
        for j in range(count):
            conf_j = float(conf[j])
            out.append(RecommendationResult(
                target=targets[j],
                event=events[j],
                confidence=0.0 if math.isnan(conf_j) else conf_j,
                horizon_bars=self.horizon_bars,
                indicators={c: float(cols[c][first + j]) for c in self.indicator_columns},
            ))
        return out


def ohlcv_arrays(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """float64 numpy views of open, high, low, close, volume."""
    return tuple(df[c].to_numpy(dtype=np.float64) for c in OHLCV_COLUMNS)
