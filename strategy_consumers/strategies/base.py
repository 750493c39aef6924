"""The strategy contract shared by the batch (whole history) and live (one window) paths.

Both paths run the *same* vectorized ``signals`` code; the live path simply gets a shorter frame.
Parity therefore reduces to two facts measured on real data (docs/decisions/0004-strategy-parity.md):
the indicators forget their start within ``warmup_bars`` bars, and the window holds enough bars
after that for the target recursion to coalesce with the full-history one.

Exogenous inputs (funding, on-chain flows, news, ...): a strategy may declare ``exogenous_inputs``
(series name -> :class:`ExogenousInput`) and then receives, next to the OHLCV frame, a mapping
series name -> frame of observations (``about_ts``, ``published_at``, value columns). Both paths
hand those frames to the same :func:`align_exogenous`, which puts them on the bar grid by one rule:
an observation counts at a bar only once ``published_at <= bar close`` (open + timeframe), and only
while ``bar close - about_ts <= max_age`` (never carried beyond the declared staleness limit). Where
an input is missing, stale, NaN or outside its coverage the strategy has no opinion: the base class
forces it flat and names the reason. Everything a strategy computes from the aligned inputs is
either a function of the bar's own close time (counts of items published in a trailing span) or a
rolling statistic over bars, so the warm-up argument of ADR 0004 carries over unchanged.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from common.timeframes import parse_timeframe
from strategy_consumers.strategies.targets import (
    ENTER_LONG,
    ENTER_SHORT,
    SIGNAL_COLUMNS,
    compute_events,
    compute_target,
    event_of,
    transition,
)

if TYPE_CHECKING:
    from strategy_consumers.strategies.stepping import Stepper

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")

#: Reason codes of the ``no_opinion`` indicator (0: the strategy has an opinion).
OPINION = 0
MISSING = 1  # the series was not handed to the strategy at all (or lacks the declared column)
STALE = 2  # no observation within max_age of the bar close: before/after coverage, or a gap
NAN_VALUE = 3  # the only observations within max_age carry no value (empty cell, NaN)
WARMING = 4  # the strategy's own statistic lacks enough usable history (e.g. a trailing z-score)
REASON_NAMES = {OPINION: "", MISSING: "missing", STALE: "stale", NAN_VALUE: "nan", WARMING: "warming"}
NO_OPINION = "no_opinion"
REASON = "reason"

_NS_PER_HOUR = 3_600_000_000_000
_NEVER = np.iinfo(np.int64).min


@dataclass(frozen=True)
class ExogenousInput:
    """One non-price series a strategy reads, with the staleness limit it accepts.

    ``column`` is the value column (``kind="value"``: numeric, the latest usable observation is
    put on each bar) or any column of an event series (``kind="events"``: news items; the strategy
    aggregates the items published in a trailing span, the column is kept for it to read).
    ``max_age``: an observation is usable at a bar while ``bar close - about_ts <= max_age``; after
    that the input is stale and the strategy has no opinion (no forward fill beyond it). For event
    series it is the longest silence after which the feed counts as down (outside coverage).
    ``lookback``: how far before a bar's close the strategy aggregates observations by publication
    time (events); the live path must deliver at least that much (see :meth:`Strategy.exogenous_reach`).
    ``required``: without it the strategy has no opinion; optional inputs (alternative sources)
    only matter when none of them is usable.
    """

    column: str
    max_age: pd.Timedelta
    kind: Literal["value", "events"] = "value"
    lookback: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    required: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_age", pd.Timedelta(self.max_age))
        object.__setattr__(self, "lookback", pd.Timedelta(self.lookback))
        if self.max_age <= pd.Timedelta(0):
            raise ValueError(f"max_age must be positive, got {self.max_age}")
        if self.kind not in ("value", "events"):
            raise ValueError(f"kind must be 'value' or 'events', got {self.kind!r}")


@dataclass(frozen=True)
class AlignedInput:
    """One exogenous series put on the bar grid (one entry per bar of the frame).

    ``value``: the latest usable observation's value at each bar close (NaN where ``status`` != 0);
    ``age_hours``: bar close - that observation's ``about_ts``; ``status``: a reason code.
    ``items`` is the frame as handed over, sorted by publication (row i published at
    ``published_ns[i]``; empty when the series is missing), for strategies that aggregate items
    with :meth:`published_between` (which only ever counts items published by a bar's close).
    """

    name: str
    spec: ExogenousInput
    close_ns: np.ndarray
    value: np.ndarray
    age_hours: np.ndarray
    status: np.ndarray
    published_ns: np.ndarray
    items: pd.DataFrame

    def published_between(self, hours: float) -> tuple[np.ndarray, np.ndarray]:
        """Per bar, the slice [lo, hi) of ``items`` published in (close - hours, close]."""
        span = round(hours * _NS_PER_HOUR)
        hi = np.searchsorted(self.published_ns, self.close_ns, side="right")
        lo = np.searchsorted(self.published_ns, self.close_ns - span, side="right")
        return lo, hi

    def count_in(self, hours: float) -> np.ndarray:
        """Items published in the ``hours`` up to each bar close (exact integers, as float64)."""
        lo, hi = self.published_between(hours)
        return (hi - lo).astype(np.float64)

    def sum_in(self, values: np.ndarray, hours: float) -> np.ndarray:
        """Sum of ``values`` (one per item) over the items published in (close - hours, close].

        Each sum is formed from its own items only (no running sum), so it is bit-identical
        whatever the first item handed over: the parity argument of ADR 0004 for rolling sums.
        """
        lo, hi = self.published_between(hours)
        return segment_sums(np.asarray(values, dtype=np.float64), lo, hi)


def segment_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values[lo[i]:hi[i]].sum()`` for every i (0 for an empty segment), each from its own segment."""
    out = np.zeros(len(lo), dtype=np.float64)
    nonempty = hi > lo
    if not nonempty.any():
        return out
    padded = np.append(values, 0.0)
    # reduceat over interleaved [lo, hi) pairs: the even results are the segment sums we want.
    idx = np.empty(2 * int(nonempty.sum()), dtype=np.int64)
    idx[0::2] = lo[nonempty]
    idx[1::2] = hi[nonempty]
    sums = np.add.reduceat(padded, idx)[0::2]
    # reduceat sums values[lo:hi] when lo < hi; consecutive overlapping pairs do not disturb that.
    out[nonempty] = sums
    return out


_NO_ITEMS = pd.DataFrame()


def _utc_ns(column: pd.Series) -> np.ndarray:
    """Datetime column (tz-aware, naive read as UTC, or ISO text) as int64 epoch ns."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):  # the loader's layout: the fast path
        return np.asarray(column.array.as_unit("ns").asi8, dtype=np.int64)  # type: ignore[attr-defined]
    if not pd.api.types.is_datetime64_dtype(column):
        column = pd.to_datetime(column, utc=True, format="ISO8601")
    values = pd.DatetimeIndex(column)
    values = values.tz_localize("UTC") if values.tz is None else values.tz_convert("UTC")
    return values.as_unit("ns").asi8.astype(np.int64)


def bar_close_ns(index: pd.DatetimeIndex, timeframe: str) -> np.ndarray:
    """Close time (open + timeframe) of every bar, epoch ns: when the bar and its inputs are known."""
    # Epoch ns do not depend on the zone; a naive index is read as UTC.
    return index.as_unit("ns").asi8.astype(np.int64) + parse_timeframe(timeframe) * 60_000_000_000


def align_exogenous(
    name: str, spec: ExogenousInput, frame: pd.DataFrame | None, close_ns: np.ndarray
) -> AlignedInput:
    """Put one series on the bar grid: visible only once published, never older than ``max_age``.

    At each bar close ``c`` the candidates are the observations with ``published_at <= c``; of
    those the one about the latest time (``about_ts``; a later publication wins a tie, so a
    revision replaces what it revises) gives the value, if ``c - about_ts <= max_age``. Rows with
    a NaN value are not candidates, but one within ``max_age`` turns "stale" into "nan".
    Only observations with ``published_at >= first close - max_age`` can matter, which is why the
    live path may hand over a trimmed frame (``Strategy.exogenous_reach``).
    """
    n = len(close_ns)
    columns = set(frame.columns) if frame is not None else set()
    if frame is None or not {spec.column, "about_ts", "published_at"} <= columns:
        return AlignedInput(
            name,
            spec,
            close_ns,
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.full(n, MISSING, dtype=np.int8),
            np.empty(0, dtype=np.int64),
            _NO_ITEMS,
        )
    pub = _utc_ns(frame["published_at"])
    about = _utc_ns(frame["about_ts"])
    if len(pub) > 1 and not bool(np.all(pub[1:] >= pub[:-1])):
        order = np.argsort(pub, kind="stable")
        pub, about, frame = pub[order], about[order], frame.iloc[order]
    raw = frame[spec.column]
    if spec.kind == "value":
        if raw.dtype == np.float64:
            val = raw.to_numpy()
        else:
            val = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        valid = np.isfinite(val)
    else:  # events: an item is an item; its text may be empty, its existence still counts
        val = np.zeros(len(pub), dtype=np.float64)
        valid = np.ones(len(pub), dtype=bool)
    status: np.ndarray = np.full(n, STALE, dtype=np.int8)
    value: np.ndarray = np.full(n, np.nan)
    age: np.ndarray = np.full(n, np.nan)
    if len(pub):
        pos = np.arange(len(pub))
        k = np.searchsorted(pub, close_ns, side="right") - 1  # last published at or before c
        seen = k >= 0
        kk = np.where(seen, k, 0)
        fresh_from = close_ns - spec.max_age.value
        best_valid = np.maximum.accumulate(np.where(valid, about, _NEVER))
        at_best = np.maximum.accumulate(np.where(valid & (about == best_valid), pos, -1))
        best_any = np.maximum.accumulate(about)
        ok = seen & (best_valid[kk] != _NEVER) & (best_valid[kk] >= fresh_from)
        j = at_best[kk]
        value = np.where(ok, val[np.maximum(j, 0)], np.nan)
        age = np.where(ok, (close_ns - best_valid[kk]) / _NS_PER_HOUR, np.nan)
        status = np.where(ok, OPINION, np.where(seen & (best_any[kk] >= fresh_from), NAN_VALUE, STALE))
        status = status.astype(np.int8)
    return AlignedInput(name, spec, close_ns, value, age, status, pub, frame)


def desired_signals(desired: np.ndarray) -> dict[str, np.ndarray]:
    """Signals that make the standalone target equal ``desired`` (-1/0/1) on every bar.

    Stateless rules (the position is a function of the bar) need no target memory: every bar
    exits whatever it does not want and enters what it wants, so a window coalesces at once.
    """
    d = np.asarray(desired)
    return {
        "enter_long": d == 1,
        "exit_long": d != 1,
        "enter_short": d == -1,
        "exit_short": d != -1,
    }


@dataclass(frozen=True)
class RecommendationResult:
    """What a strategy publishes for the latest closed bar."""

    target: int
    event: str
    confidence: float
    horizon_bars: int
    indicators: dict[str, float] = field(default_factory=dict)
    #: Why the strategy has no opinion on this bar ("stale:funding_bitmex_xbtusd_8h"); "" otherwise.
    reason: str = ""


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
    #: Non-price series this strategy reads (series name -> declaration); empty: price only.
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {}

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        lookback_hours: int | None = None,
        version: str | None = None,
    ) -> None:
        if self.exogenous_inputs and not isinstance(self, ExogenousStrategy):
            # Only ExogenousStrategy aligns inputs and goes flat when they are unusable; elsewhere
            # the declaration would be silently ignored.
            raise TypeError(f"{type(self).__name__} declares exogenous_inputs: subclass ExogenousStrategy")
        unknown = set(params or {}) - set(self.default_params)
        if unknown:
            raise ValueError(f"{self.name}: unknown params {sorted(unknown)}")
        self.params: dict[str, Any] = {**self.default_params, **(params or {})}
        self.lookback_hours = int(lookback_hours or self.default_lookback_hours)
        if version is not None:
            self.version = version
        if self.bars_needed() <= self.warmup_bars:
            raise ValueError(f"{self.name}: lookback_hours must exceed warm-up of {self.warmup_bars} bars")
        self._check_params()

    def _check_params(self) -> None:
        """Refuse parameter values the rule cannot use (raise ValueError); called once ``params``
        is merged, so a strategy validates without repeating the constructor."""
        return  # the POC strategies accept any value of their parameters

    # ------------------------------------------------------------------ batch path
    def bars_needed(self, timeframe_minutes: int | None = None) -> int:
        """Window length (bars of ``timeframe_minutes``, default the strategy's own) for ``recommend``."""
        minutes = parse_timeframe(self.timeframe) if timeframe_minutes is None else timeframe_minutes
        return int(self.lookback_hours * 60 // minutes)

    def signals(self, df: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
        """int8 enter/exit columns plus exposed indicator columns, same index as ``df``."""
        return pd.DataFrame(self._columns(df, exogenous), index=df.index)

    def _columns(
        self, df: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame] | None = None
    ) -> dict[str, np.ndarray]:
        cols = self._raw_columns(df, exogenous)
        for col in SIGNAL_COLUMNS:
            cols[col] = np.nan_to_num(np.asarray(cols[col], dtype=np.float64), nan=0.0).astype(np.int8)
        return cols

    def _raw_columns(
        self, df: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame] | None
    ) -> dict[str, np.ndarray]:
        """The rule's own columns before the int8 cast (price-only: ``_signals``)."""
        return self._signals(df)

    # ------------------------------------------------------------------ exogenous inputs
    def align(self, df: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame]) -> dict[str, AlignedInput]:
        """Every declared input on the bar grid of ``df`` (see :func:`align_exogenous`)."""
        index = df.index if isinstance(df.index, pd.DatetimeIndex) else pd.DatetimeIndex(df.index)
        close = bar_close_ns(index, self.timeframe)
        return {
            name: align_exogenous(name, spec, exogenous.get(name), close)
            for name, spec in self.exogenous_inputs.items()
        }

    def exogenous_reach(self) -> pd.Timedelta:
        """How long before a window's first bar close its exogenous observations must start.

        The live path hands each input over as the observations published in
        ``[first bar close - reach, tick time]``; nothing earlier can change any bar of the window.
        """
        spans = [max(s.max_age, s.lookback) for s in self.exogenous_inputs.values()]
        return max(spans, default=pd.Timedelta(0))

    def cut_exogenous(
        self, exogenous: Mapping[str, pd.DataFrame], window: pd.DataFrame
    ) -> dict[str, pd.DataFrame]:
        """What the live path delivers with ``window``: each declared input published within its reach.

        Observations published after the window's last bar close are not known yet; those before
        ``first close - reach`` cannot matter. Series that are absent stay absent.
        """
        if not len(window):
            return {}
        close = bar_close_ns(pd.DatetimeIndex(window.index[[0, -1]]), self.timeframe)
        lo, hi = int(close[0] - self.exogenous_reach().value), int(close[-1])
        out = {}
        for name in self.exogenous_inputs:
            frame = exogenous.get(name)
            if frame is None or "published_at" not in frame.columns:
                if frame is not None:
                    out[name] = frame
                continue
            pub = _utc_ns(frame["published_at"])
            if len(pub) < 2 or bool(np.all(pub[1:] >= pub[:-1])):  # sorted (the loader's order)
                i0, i1 = np.searchsorted(pub, lo, "left"), np.searchsorted(pub, hi, "right")
                out[name] = frame.iloc[int(i0) : int(i1)]
            else:
                out[name] = frame.loc[(pub >= lo) & (pub <= hi)]
        return out

    @abstractmethod
    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Signal arrays (bool or 0/1; NaN reads as 0) and indicator arrays, one value per bar."""

    def evaluate(
        self, df: pd.DataFrame, initial_target: int = 0, exogenous: Mapping[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """Signals plus ``target``, ``event`` and ``confidence`` for every bar of ``df``."""
        cols = self._columns(df, exogenous)
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
    def recommend(
        self,
        window: pd.DataFrame,
        prev_target: int | None = None,
        exogenous: Mapping[str, pd.DataFrame] | None = None,
    ) -> RecommendationResult:
        """Recommendation for the last bar of ``window`` (the last ``bars_needed`` closed bars).

        ``exogenous``: the declared inputs as published up to the window's last bar close (at least
        from ``first close - exogenous_reach()``); ignored by price-only strategies.

        Without ``prev_target`` the target is rebuilt from the window alone, starting flat after the
        warm-up. With ``prev_target`` (the target the service published for the previous bar) only
        the last bar's transition is applied, which carries the full-history state exactly.
        """
        if len(window) == 0:
            raise ValueError("empty window")
        if prev_target not in (None, -1, 0, 1):
            raise ValueError(f"prev_target must be -1, 0, 1 or None, got {prev_target!r}")
        if prev_target is None:
            row = self.evaluate(window, exogenous=exogenous).iloc[-1]
            target, event, conf = int(row["target"]), str(row["event"]), float(row["confidence"])
            values = {c: float(row[c]) for c in self.indicator_columns}
            reason = str(row[REASON]) if REASON in row.index else ""
        else:
            # Signals converge within ``warmup_bars``, so the tail is enough once the state is carried.
            tail = window.iloc[-(self.warmup_bars + 1) :]
            cols = self._columns(tail, exogenous)
            trusted = len(tail) > self.warmup_bars
            return self.warm_result({k: v[-1:] for k, v in cols.items()}, int(prev_target), trusted)
        return RecommendationResult(
            target=target,
            event=event,
            confidence=0.0 if math.isnan(conf) else conf,
            horizon_bars=self.horizon_bars,
            indicators=values,
            reason=reason,
        )

    def warm_result(
        self, last: Mapping[str, np.ndarray], prev_target: int, trusted: bool = True
    ) -> RecommendationResult:
        """The recommendation for one bar from its columns (one-element arrays) and the carried
        target: the warm path's last step, shared with the incremental steppers."""
        bits = [bool(last[c][0]) and trusted for c in SIGNAL_COLUMNS]
        target = transition(prev_target, *bits)
        event = event_of(prev_target, target)
        conf = float(self._confidence(last, np.array([target]), np.array([event], dtype=object))[0])
        return RecommendationResult(
            target=target,
            event=event,
            confidence=0.0 if math.isnan(conf) else conf,
            horizon_bars=self.horizon_bars,
            indicators={c: float(last[c][0]) for c in self.indicator_columns},
            reason=str(last[REASON][0]) if REASON in last else "",
        )

    def stepper(self) -> Stepper | None:
        """An O(1)-per-bar twin of this strategy's columns (``stepping.Stepper``), or None: the live
        runner then recomputes the warm tail of the window on every bar."""
        return None

    def recommend_run(
        self,
        frame: pd.DataFrame,
        count: int,
        prev_target: int,
        exogenous: Mapping[str, pd.DataFrame] | None = None,
    ) -> list[RecommendationResult]:
        """Warm recommendations for each of the last ``count`` bars of ``frame``, from one computation.

        The consumer's catch-up path (a backlog after downtime, a topic replay): instead of
        ``count`` frames of ``warmup_bars + 1`` bars, one frame of ``warmup_bars + count`` bars.
        Every one of those bars sits at position >= ``warmup_bars`` of the frame, where (ADR 0004)
        signals and indicators no longer depend on where the frame starts, so each result is the
        one :meth:`recommend` gives for that bar's own window with the carried target.
        """
        if count < 1 or len(frame) < self.warmup_bars + count:
            raise ValueError(
                f"{self.name}: a run of {count} needs >= {self.warmup_bars + count} bars, got {len(frame)}"
            )
        if prev_target not in (-1, 0, 1):
            raise ValueError(f"prev_target must be -1, 0 or 1, got {prev_target!r}")
        cols = self._columns(frame.iloc[-(self.warmup_bars + count) :], exogenous)
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
            out.append(
                RecommendationResult(
                    target=targets[j],
                    event=events[j],
                    confidence=0.0 if math.isnan(conf_j) else conf_j,
                    horizon_bars=self.horizon_bars,
                    indicators={c: float(cols[c][first + j]) for c in self.indicator_columns},
                    reason=str(cols[REASON][first + j]) if REASON in cols else "",
                )
            )
        return out


class ExogenousStrategy(Strategy):
    """A strategy that reads declared ``exogenous_inputs`` besides price.

    Implement :meth:`_exogenous_signals`; the base class aligns the inputs, forces "no opinion"
    where they are unusable, and runs the same code in the batch and the live path. Called without
    inputs (``signals(df)``), every required input reads as missing: flat with the reason.
    """

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        lookback_hours: int | None = None,
        version: str | None = None,
    ) -> None:
        if not self.exogenous_inputs:
            raise TypeError(f"{type(self).__name__} declares no exogenous_inputs")
        super().__init__(params, lookback_hours, version)

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        return self._exogenous_columns(df, {})

    def _raw_columns(
        self, df: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame] | None
    ) -> dict[str, np.ndarray]:
        return self._exogenous_columns(df, exogenous or {})

    def _exogenous_columns(
        self, df: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame]
    ) -> dict[str, np.ndarray]:
        """The strategy's columns, forced flat (with the reason) wherever it has no opinion."""
        inputs = self.align(df, exogenous)
        cols = self._exogenous_signals(df, inputs)
        n = len(df)
        code: np.ndarray = np.zeros(n, dtype=np.int8)
        which: np.ndarray = np.full(n, "", dtype=object)
        required = [a for a in inputs.values() if a.spec.required]
        if required:
            for a in required:
                first = (code == OPINION) & (a.status != OPINION)
                code[first] = a.status[first]
                which[first] = a.name
        else:  # alternatives: no opinion only when none of them is usable
            alive = np.zeros(n, dtype=bool)
            for a in inputs.values():
                alive |= a.status == OPINION
            first_input = next(iter(inputs.values()))
            code = np.where(alive, OPINION, first_input.status).astype(np.int8)
            which = np.where(alive, "", first_input.name).astype(object)
        own = np.asarray(cols.pop(NO_OPINION, np.zeros(n)), dtype=np.int8)
        use_own = (code == OPINION) & (own != OPINION)
        code[use_own] = own[use_own]
        which[use_own] = self.name
        quiet = code != OPINION
        if quiet.any():
            for col in SIGNAL_COLUMNS:
                cols[col] = np.where(quiet, col.startswith("exit"), np.asarray(cols[col], dtype=bool))
        cols[NO_OPINION] = code.astype(np.float64)
        reasons = np.full(n, "", dtype=object)
        for i in np.flatnonzero(quiet):
            reasons[i] = f"{REASON_NAMES[int(code[i])]}:{which[i]}"
        cols[REASON] = reasons
        return cols

    @abstractmethod
    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        """Signals and indicators from the price frame and the aligned inputs (see Strategy)."""


def ohlcv_arrays(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """float64 numpy views of open, high, low, close, volume."""
    return tuple(df[c].to_numpy(dtype=np.float64) for c in OHLCV_COLUMNS)
