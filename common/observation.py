"""Observation vector of the meta policy: one definition for live decisions and training.

The meta consumer builds one observation per tick; the training environment builds millions at
once. Both call :func:`build_observations` with arrays (any leading batch shape), so a trained
model sees exactly what it saw in training. The model declares its :class:`FeatureSpec`
(strategy order, scales fitted on the training window only); a live strategy set that differs
from the spec is detected with :meth:`FeatureSpec.missing_from`.

Per strategy (in spec order): target (-1/0/+1), one-hot of the event on its latest bar
(ENTER_LONG, EXIT_LONG, ENTER_SHORT, EXIT_SHORT; NONE is all zeros), confidence, age in ticks
scaled to [0, 1] and a "no recommendation yet" flag. Then the portfolio: exposure (signed
fraction of max), unrealized PnL as a fraction of equity (clipped to +-1), and the realized
volatility of hourly log returns relative to the training window's typical volatility.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from common.events import SignalEvent, Target

EVENT_CODES: dict[SignalEvent, int] = {
    SignalEvent.NONE: 0,
    SignalEvent.ENTER_LONG: 1,
    SignalEvent.EXIT_LONG: 2,
    SignalEvent.ENTER_SHORT: 3,
    SignalEvent.EXIT_SHORT: 4,
}
TARGET_VALUES: dict[Target, int] = {Target.LONG: 1, Target.FLAT: 0, Target.SHORT: -1}
PER_STRATEGY = 8
GLOBALS = ("exposure", "unrealized_pnl", "volatility")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureSpec:
    """What a model was trained on; stored with the model in the registry."""

    strategies: tuple[str, ...]
    max_age_ticks: int = 24
    vol_window: int = 24
    #: Typical realized volatility on the training window (fitted there only: no lookahead).
    vol_scale: float = 0.01
    version: int = 1

    def __post_init__(self) -> None:
        if not self.strategies or len(set(self.strategies)) != len(self.strategies):
            raise ValueError("FeatureSpec.strategies must be non-empty and unique")
        if self.max_age_ticks <= 0 or self.vol_window < 2 or not self.vol_scale > 0:
            raise ValueError("FeatureSpec: max_age_ticks > 0, vol_window >= 2 and vol_scale > 0 required")

    @property
    def dim(self) -> int:
        return len(self.strategies) * PER_STRATEGY + len(GLOBALS)

    def feature_names(self) -> list[str]:
        per = [
            "target",
            "ev_enter_long",
            "ev_exit_long",
            "ev_enter_short",
            "ev_exit_short",
            "confidence",
            "age",
            "missing",
        ]
        return [f"{s}.{f}" for s in self.strategies for f in per] + list(GLOBALS)

    def missing_from(self, live: Iterable[str]) -> tuple[list[str], list[str]]:
        """(strategies the model needs but the registry lacks, live strategies the model ignores)."""
        live_set = set(live)
        return [s for s in self.strategies if s not in live_set], sorted(live_set - set(self.strategies))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        data = json.loads(text)
        data["strategies"] = tuple(data["strategies"])
        return cls(**data)


def build_observations(
    spec: FeatureSpec,
    *,
    targets: npt.ArrayLike,
    events: npt.ArrayLike,
    confidence: npt.ArrayLike,
    age: npt.ArrayLike,
    present: npt.ArrayLike,
    exposure: npt.ArrayLike,
    unrealized_pnl: npt.ArrayLike,
    volatility: npt.ArrayLike,
) -> npt.NDArray[np.float32]:
    """Observations for a batch: strategy arrays have shape (..., S), portfolio arrays shape (...)."""
    t = np.asarray(targets, dtype=np.float64)
    n_strat = len(spec.strategies)
    if t.shape[-1:] != (n_strat,):
        raise ValueError(f"expected {n_strat} strategies in the last axis, got shape {t.shape}")
    ev = np.asarray(events, dtype=np.int64)
    pres = np.asarray(present, dtype=bool)
    batch = t.shape[:-1]
    out = np.zeros((*batch, n_strat, PER_STRATEGY), dtype=np.float64)
    out[..., 0] = np.where(pres, t, 0.0)
    for code in range(1, 5):
        out[..., code] = (ev == code) & pres
    out[..., 5] = np.where(pres, np.asarray(confidence, dtype=np.float64), 0.0)
    clipped_age = np.minimum(np.asarray(age, dtype=np.float64), spec.max_age_ticks)
    out[..., 6] = np.where(pres, clipped_age / spec.max_age_ticks, 1.0)
    out[..., 7] = ~pres
    flat = out.reshape(*batch, n_strat * PER_STRATEGY)
    vol = np.asarray(volatility, dtype=np.float64) / spec.vol_scale - 1.0
    glob = np.stack(
        [
            np.broadcast_to(np.asarray(exposure, dtype=np.float64), batch),
            np.broadcast_to(np.clip(np.asarray(unrealized_pnl, dtype=np.float64), -1.0, 1.0), batch),
            np.broadcast_to(np.clip(np.nan_to_num(vol, nan=0.0), -5.0, 5.0), batch),
        ],
        axis=-1,
    )
    return np.concatenate([flat, glob], axis=-1).astype(np.float32)


def observation_row(
    spec: FeatureSpec,
    *,
    targets: Sequence[int],
    events: Sequence[int],
    confidence: Sequence[float],
    age: Sequence[float],
    present: Sequence[bool],
    exposure: float,
    unrealized_pnl: float,
    volatility: float,
) -> npt.NDArray[np.float32]:
    """:func:`build_observations` for one observation (shape (1, dim)), in plain float arithmetic.

    The meta consumer decides one tick at a time, where the batch builder's ~25 array operations
    cost more than the arithmetic (~0.2 ms per tick). The same operations on Python floats, cast to
    float32 once, give the same bits (tests/unit/test_observation.py compares both on random
    and real states); the training env keeps the batch builder.
    """
    n_strat = len(spec.strategies)
    if not (len(targets) == len(events) == len(confidence) == len(age) == len(present) == n_strat):
        raise ValueError(f"expected {n_strat} strategies per input")
    max_age = spec.max_age_ticks
    row: list[float] = []
    for t, ev, conf, a, pres in zip(targets, events, confidence, age, present, strict=True):
        if pres:
            clipped = min(float(a), float(max_age))
            row += [float(t), float(ev == 1), float(ev == 2), float(ev == 3), float(ev == 4)]
            row += [float(conf), clipped / max_age, 0.0]
        else:
            row += [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    vol = float(volatility) / spec.vol_scale - 1.0
    vol = 0.0 if vol != vol else min(max(vol, -5.0), 5.0)
    pnl = min(max(float(unrealized_pnl), -1.0), 1.0)
    row += [float(exposure), pnl, vol]
    return np.array([row], dtype=np.float64).astype(np.float32)


def rolling_volatility(close: npt.ArrayLike, window: int) -> FloatArray:
    """Population std of the last ``window`` log returns at every bar (NaN before enough data).

    Summation runs over window offsets in a fixed order, so the value at bar t is bit-identical
    whether computed on the full history (training) or on a window ending at t (live).
    """
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape, np.nan)
    std = window_std(np.diff(np.log(c)), window)
    if std.size:
        out[window:] = std
    return out


def window_std(x: npt.ArrayLike, window: int, ddof: int = 0) -> FloatArray:
    """Std of every run of ``window`` consecutive values of ``x`` (``size - window + 1`` values).

    The sums run over the window's offsets in a fixed order with element-wise operations, so a
    value has the same bits whether ``x`` is the whole history or only the last ``window`` values
    (pandas' rolling std, an online update, does not): what lets a live tick equal the backtest.
    """
    r = np.asarray(x, dtype=np.float64)
    n = r.size - window + 1
    if n <= 0:
        return np.zeros(0)
    total = np.zeros(n)
    for j in range(window):
        total += r[j : j + n]
    mean = total / window
    sq = np.zeros(n)
    for j in range(window):
        d = r[j : j + n] - mean
        sq += d * d
    out: FloatArray = np.sqrt(sq / (window - ddof))
    return out


def last_window_std(x: npt.ArrayLike, window: int, ddof: int = 0) -> float:
    """:func:`window_std`'s value for the last ``window`` values of ``x``, with the same bits.

    The same additions in the same order, from 0.0 (``np.add.accumulate`` is sequential: each
    partial sum is the previous one plus the next value), without :func:`window_std`'s Python loop
    over the offsets: one value over 720 hours costs ~20 us instead of ~1 ms (ADR 0027's live step).
    """
    r = np.asarray(x, dtype=np.float64)[-window:]
    if r.size < window:
        raise ValueError(f"last_window_std: {r.size} values, window {window}")
    zero = np.zeros(1)
    total = np.add.accumulate(np.concatenate([zero, r]))[-1]
    d = r - total / window
    sq = np.add.accumulate(np.concatenate([zero, d * d]))[-1]
    return float(np.sqrt(sq / (window - ddof)))
